"""`selftaught repro online-rl`: the offline / semi-online / online comparison of papers_B §1.12.

Every arm starts from the same seed model (the tiny-world student) and uses the same optimizer
steps, batch (prompts x samples), learning rate and run seed; only the sync schedule and the loss
differ (the arms are data: `RECIPES["online-rl"].arms`, overrides of the `tiny` preset):

    offline-dpo             s = 0: every rollout sampled from the seed before training
    semi-online-dpo-s10     s = 10
    semi-online-dpo-s100    s = 100
    online-dpo              s = 1, reference re-synced every step (papers_B §1.10, fix 1)
    online-dpo-frozen-ref   s = 1, reference frozen at the seed
    grpo                    s = 1, group-mean advantages, KL 0.001

Each arm runs once per seed into `<out>/<arm>/seed-<k>/` (an ordinary online-rl run directory, so
`selftaught report` plots it); every arm is validated greedily on the same held-out test problems
(`world:test`, `eval.seed = 0`). `<out>/table.md` gives accuracy mean +- standard error over the
seeds, the per-seed numbers and the wall time split into generation and training. A finished run
of the same config is not rerun (`data.shards.run_once`: its `done.json` holds the config's
fingerprint and the result), so an interrupted reproduction resumes where it stopped.

`repro online-rl-length` is the non-verifiable arm: online DPO (best vs worst) against a tiny
reward model plus a length bonus; it keeps a checkpoint at every validation and reports the held-out
accuracy of the checkpoint each selection rule picks (last, highest validation reward, highest
validation reward per token).

`selftaught list` builds this module's parser, so recipes and torch are imported inside the
functions that run them, not at the top.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selftaught.config import apply_overrides, to_dict
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.presets import RECIPES
from selftaught.repro import adaptive as repro_adaptive
from selftaught.repro import cocomix as repro_cocomix
from selftaught.repro import divpo as repro_divpo
from selftaught.repro import j1 as repro_j1
from selftaught.repro import natural_reasoning as repro_nr
from selftaught.repro import natural_thoughts as repro_nt
from selftaught.repro import rag as repro_rag
from selftaught.repro import self_taught_evaluator as repro_ste
from selftaught.repro import system2_distill as repro_s2d
from selftaught.runlog import read_metrics

if TYPE_CHECKING:
    from selftaught.recipes.online_rl import OnlineRLConfig

ONLINE_RL = RECIPES["online-rl"]
ARMS: dict[str, tuple[str, ...]] = ONLINE_RL.arms
"""Arm name -> the `key=value` overrides that differ from the shared base config."""


def base_config(num_steps: int, per_level: int, eval_every: int) -> OnlineRLConfig:
    """The shared settings: the `tiny` online-rl preset (32 prompts x 8 samples, lr 3e-5, beta 0.1,
    KL 0.001), validated on `per_level` test problems of levels 1-3 with a fixed problem sample."""
    from selftaught.train.loop import EvalConfig

    evaluation = EvalConfig(data="world:test", per_level=per_level, every=eval_every, seed=0)
    return replace(ONLINE_RL.preset("tiny"), num_steps=num_steps, eval=evaluation, checkpoint_every=0)


def arm_config(base: OnlineRLConfig, out_dir: str, arm: str, seed: int) -> OnlineRLConfig:
    """The config of `arm` for `seed`: the base with the arm's overrides, in `<out_dir>/<arm>/seed-<k>`."""
    return apply_overrides(replace(base, out_dir=f"{out_dir}/{arm}/seed-{seed}", seed=seed), list(ARMS[arm]))


def run_arm(cfg: OnlineRLConfig) -> dict[str, Any]:
    """Run one online-rl run, or reuse it: a directory that holds a finished run of the same config
    (the fingerprint of everything but `out_dir`) returns its result; one of another config is an
    error. The result: final accuracy, wall time and its split into generation and training."""
    fingerprint = compute_fingerprint({k: v for k, v in to_dict(cfg).items() if k != "out_dir"})
    return run_once(cfg.out_dir, fingerprint, partial(_run_and_summarize, cfg))


def _run_and_summarize(cfg: OnlineRLConfig) -> dict[str, Any]:
    """Run `cfg` and summarise its metrics for the table."""
    start = time.perf_counter()
    final = ONLINE_RL.run(cfg)
    wall = time.perf_counter() - start
    rows = read_metrics(cfg.out_dir)
    return {
        "accuracy": final["val_accuracy"],
        "stderr": final["val_stderr"],
        "initial_accuracy": rows[0]["val_accuracy"],
        "wall_seconds": wall,
        "generation_seconds": sum(r.get("generation_seconds", 0.0) for r in rows),
        "train_seconds": sum(r.get("train_seconds", 0.0) for r in rows),
        "final_rollout_length": [r["rollout_length"] for r in rows if "rollout_length" in r][-1],
    }


def online_rl_table(
    out_dir: str,
    *,
    seeds: list[int],
    arms: list[str],
    num_steps: int,
    per_level: int,
    eval_every: int,
    overrides: dict[str, Any] | None = None,
) -> str:
    """Run every arm for every seed and write `<out_dir>/table.md`; returns the table."""
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {sorted(ARMS)}")
    base = replace(base_config(num_steps, per_level, eval_every), **(overrides or {}))
    results: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        for seed in seeds:
            cfg = arm_config(base, out_dir, arm, seed)
            print(f"== {arm}, seed {seed}", flush=True)
            results.setdefault(arm, []).append(run_arm(cfg))
    table = format_table(results, seeds, base)
    Path(out_dir, "table.md").write_text(table)
    return table


def format_table(results: dict[str, list[dict[str, Any]]], seeds: list[int], base: OnlineRLConfig) -> str:
    """Markdown: one row per arm, accuracy mean +- se over seeds, per-seed values, times."""
    from selftaught.evals.accuracy import mean_and_stderr

    first = next(iter(results.values()))[0]
    lines = [
        f"Seed model greedy test accuracy: {first['initial_accuracy']:.3f}; {base.num_steps} steps of "
        f"{base.rollouts.num_prompts} prompts x {base.rollouts.samples_per_prompt} samples, lr "
        f"{base.optim.lr:g}, Adam eps {base.optim.eps:g}, seeds {seeds}, {3 * base.eval.per_level} test "
        "problems (levels 1-3).",
        "",
        "| arm | test accuracy (mean +- se) | per seed | wall s | generation s | training s | final rollout length |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm, runs in results.items():
        mean, se = mean_and_stderr([r["accuracy"] for r in runs])
        per_seed = " ".join(f"{r['accuracy']:.3f}" for r in runs)

        def avg(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return sum(r[key] for r in runs) / len(runs)

        lines.append(
            f"| {arm} | {mean:.3f} +- {se:.3f} | {per_seed} | {avg('wall_seconds'):.0f} | "
            f"{avg('generation_seconds'):.0f} | {avg('train_seconds'):.0f} | {avg('final_rollout_length'):.1f} |"
        )
    return "\n".join(lines) + "\n"


# --- the non-verifiable arm ------------------------------------------------------------------------


def length_arm(
    out_dir: str,
    *,
    seed: int,
    num_steps: int,
    per_level: int,
    eval_every: int,
    length_bonus: float,
    reward: str = "reward_model",
    overrides: dict[str, Any] | None = None,
) -> str:
    """Online DPO against a length-biased reward (a tiny reward model, or the answer check, plus
    `length_bonus` per token); the checkpoint selection table."""
    from selftaught.recipes.online_rl import TaskConfig
    from selftaught.train.loop import EvalConfig

    rm_dir = None
    if reward == "reward_model":
        rm_cfg = replace(RECIPES["reward-model"].preset("tiny"), out_dir=f"{out_dir}/reward-model")
        rm_dir = Path(rm_cfg.out_dir) / "model"
        if not rm_dir.is_dir():
            RECIPES["reward-model"].run(rm_cfg)
    task = TaskConfig(
        name="arith_rm" if rm_dir else "arith",
        reward=reward,
        reward_model=str(rm_dir) if rm_dir else None,
        pair_rule="best_vs_worst",
        length_bonus=length_bonus,
    )
    cfg = replace(
        ONLINE_RL.preset("tiny-online-dpo"),
        out_dir=f"{out_dir}/online-dpo-{task.name}-length",
        tasks=[task],
        num_steps=num_steps,
        seed=seed,
        eval=EvalConfig(data="world:valid", per_level=per_level, every=eval_every, seed=0),
        checkpoint_every=eval_every,
        keep_last=None,
        **(overrides or {}),
    )
    if not (Path(cfg.out_dir) / "model").is_dir():
        ONLINE_RL.run(cfg)
    table = selection_table(cfg, per_level)
    Path(out_dir, "length-table.md").write_text(table)
    return table


def selection_table(cfg: OnlineRLConfig, per_level: int) -> str:
    """Held-out test accuracy at every validated checkpoint, and the checkpoint each rule picks."""
    from safetensors.torch import load_model as load_weights

    from selftaught.models.policy import load_policy
    from selftaught.train.checkpoint import checkpoint_dirs
    from selftaught.train.evaluation import evaluate_policy
    from selftaught.train.loop import EvalConfig

    task = cfg.tasks[0].name
    rows = [r for r in read_metrics(cfg.out_dir) if f"val_reward_{task}" in r]
    checkpoints = {int(p.name.split("-")[1]): p for p in checkpoint_dirs(Path(cfg.out_dir) / "checkpoints")}
    policy, tokenizer = load_policy(cfg.model, cfg.lora)
    seed_state = {k: v.clone() for k, v in policy.state_dict().items()}
    test = EvalConfig(data="world:test", per_level=per_level, seed=0)
    lines = [
        "| step | val reward | val reward / token | val mean tokens | val accuracy | test accuracy |",
        "|---|---|---|---|---|---|",
    ]
    scored: list[dict[str, float]] = []
    for row in rows:
        step = int(row["step"])
        if step == 0:
            policy.load_state_dict(seed_state)
        elif step in checkpoints:
            load_weights(policy, checkpoints[step] / "model.safetensors")
        else:
            continue
        scored.append({**row, "test_accuracy": evaluate_policy(policy, tokenizer, test).accuracy})
        lines.append(
            f"| {step} | {row[f'val_reward_{task}']:.3f} | {row[f'val_reward_per_token_{task}']:.4f} | "
            f"{row['val_mean_tokens']:.1f} | {row['val_accuracy']:.3f} | {scored[-1]['test_accuracy']:.3f} |"
        )
    picks = {
        "last": scored[-1],
        "highest val reward": max(scored, key=lambda r: r[f"val_reward_{task}"]),
        "highest val reward per token": max(scored, key=lambda r: r[f"val_reward_per_token_{task}"]),
    }
    lines += ["", "| selection rule | step | test accuracy |", "|---|---|---|"]
    lines += [f"| {rule} | {int(r['step'])} | {r['test_accuracy']:.3f} |" for rule, r in picks.items()]
    return "\n".join(lines) + "\n"


# --- command line ----------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    """`selftaught repro online-rl`, `selftaught repro online-rl-length`, and `repro divpo` and
    `repro divpo-keywords` (`selftaught.repro.divpo`), `repro adaptive-decoding(-cstory)` (`selftaught.repro.adaptive`), `repro rag-self-demos`
    (`selftaught.repro.rag`)."""
    repro = sub.add_parser("repro", help="reproduce a paper's claim in the tiny world")
    commands = repro.add_subparsers(metavar="COMMAND", required=True)
    table = commands.add_parser("online-rl", help="offline vs semi-online vs online DPO vs GRPO, over seeds")
    table.add_argument("--out", default="runs/repro-online-rl", help="output directory")
    table.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    table.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    _add_common(table, steps=200)
    table.set_defaults(func=_cmd_table)
    length = commands.add_parser("online-rl-length", help="length-biased reward model, checkpoint selection")
    length.add_argument("--out", default="runs/repro-online-rl-length", help="output directory")
    length.add_argument("--seed", type=int, default=0)
    length.add_argument("--length-bonus", type=float, default=0.05, help="reward per completion token")
    length.add_argument(
        "--reward",
        choices=["reward_model", "world_answer"],
        default="reward_model",
        help="reward_model: a tiny Bradley-Terry RM trained first; world_answer: the answer check",
    )
    _add_common(length, steps=200)
    length.set_defaults(func=_cmd_length)
    repro_divpo.add_parser(commands)
    repro_adaptive.add_parser(commands)
    repro_cocomix.add_parser(commands)
    repro_rag.add_parser(commands)
    repro_j1.add_parser(commands)
    repro_ste.add_parser(commands)
    repro_nt.add_parser(commands)
    repro_nr.add_parser(commands)
    repro_s2d.add_parser(commands)


def _add_common(parser: Any, steps: int) -> None:
    parser.add_argument("--steps", type=int, default=steps, help=f"optimizer steps per run (default {steps})")
    parser.add_argument("--per-level", type=int, default=200, help="test problems per level (levels 1-3)")
    parser.add_argument("--eval-every", type=int, default=50, help="validation interval in steps")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the preset's)")
    parser.add_argument("--adam-eps", type=float, default=None, help="AdamW epsilon (default: the preset's)")


def _shared(args: Any) -> dict[str, Any]:
    """The arguments both commands take: run length, evaluation, and the optimizer overrides; a
    ValueError naming the flag, before any work, when one is out of range or `--out` is unusable."""
    from selftaught.train.loop import check_out_dir

    for flag, value, ok, must in (
        ("--steps", args.steps, args.steps >= 1, ">= 1"),
        ("--per-level", args.per_level, args.per_level >= 1, ">= 1"),
        ("--eval-every", args.eval_every, args.eval_every >= 0, ">= 0 (0: only before and after training)"),
        ("--lr", args.lr, args.lr is None or 0 < args.lr < float("inf"), "a finite number > 0"),
        (
            "--adam-eps",
            args.adam_eps,
            args.adam_eps is None or 0 < args.adam_eps < float("inf"),
            "a finite number > 0",
        ),
    ):
        if not ok:
            raise ValueError(f"{flag} must be {must}, got {value!r}")
    check_out_dir(args.out, "--out")
    optim = ONLINE_RL.preset("tiny").optim
    optim = replace(
        optim,
        lr=optim.lr if args.lr is None else args.lr,
        eps=optim.eps if args.adam_eps is None else args.adam_eps,
    )
    return {
        "num_steps": args.steps,
        "per_level": args.per_level,
        "eval_every": args.eval_every,
        "overrides": {"optim": optim},
    }


def _cmd_table(args: Any) -> None:
    table = online_rl_table(args.out, seeds=args.seeds, arms=args.arms, **_shared(args))
    print(f"{table}\ntable written to {Path(args.out) / 'table.md'}")


def _cmd_length(args: Any) -> None:
    table = length_arm(
        args.out, seed=args.seed, length_bonus=args.length_bonus, reward=args.reward, **_shared(args)
    )
    print(f"{table}\ntable written to {Path(args.out) / 'length-table.md'}")
