"""`selftaught repro adaptive-decoding`: LPO against the NLL baseline on the tiny world's MATH + STORY
mix (papers_B §4.7, TINYWORLD_JUDGES_LPO §2-3).

Every run is the `adaptive-decoding` recipe's `tiny` preset (a sequence-level head over the frozen
`tiny-world-lpo` model, 16 prompts x 8 samples per step, Adam lr 3e-3, beta 1) with one arm's
overrides, over seeds:

    lpo        LPO (b): -log sigma(beta (log P(tau_c) - log P(tau_r)))
    nll        the baseline: -log P(tau_c)
    lpo-token  a token-level head (a temperature per generated token) with the marginalised loss (c);
               its "argmax tau" is the mean over generated tokens

Then, on the same held-out `world:lpo` prompts (MATH test problems and STORY prompts, one sample
each, seed 0): the reward of each trained head's argmax-temperature decoding per task, its argmax
temperatures per task, the reward of every fixed temperature of the grid, and the win rate of the
adaptive decoder against each fixed temperature per task (per prompt: win 1, tie 1/2, loss 0).
Runs are reused when finished (as in `repro online-rl`); `<out>/table.md` holds the tables.
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

if TYPE_CHECKING:
    from selftaught.configs.adaptive import AdaptiveDecodingConfig

RECIPE = RECIPES["adaptive-decoding"]
ARMS: dict[str, tuple[str, ...]] = {
    "lpo": (),
    "nll": ("loss=nll",),
    "lpo-token": ("head.level=token", "loss=marginal"),
}


def run_arm(cfg: AdaptiveDecodingConfig, num_eval: int) -> dict[str, Any]:
    """One run and its held-out per-prompt rewards (reused when finished with the same config)."""
    fingerprint = compute_fingerprint(
        {**{k: v for k, v in to_dict(cfg).items() if k != "out_dir"}, "num_eval": num_eval}
    )
    return run_once(cfg.out_dir, fingerprint, partial(_run_and_score, cfg, num_eval))


def _run_and_score(cfg: AdaptiveDecodingConfig, num_eval: int) -> dict[str, Any]:
    from selftaught.models.adaptive import AdaptiveDecoder

    start = time.perf_counter()
    RECIPE.run(cfg)
    wall = time.perf_counter() - start
    head = AdaptiveDecoder.load(Path(cfg.out_dir) / "head")
    rewards, taus = decode_rewards(cfg, num_eval, head=head)
    return {"rewards": rewards, "taus": taus, "wall_seconds": wall}


def decode_rewards(
    cfg: AdaptiveDecodingConfig, num_eval: int, *, head: Any = None, temperature: float = 0.0
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per task, the reward of one sample per held-out prompt (with the head's argmax temperature,
    or at `temperature`), and the temperatures used."""
    from selftaught.engines.base import SamplingParams
    from selftaught.engines.hf import HFEngine
    from selftaught.evals.sets import load_eval_set
    from selftaught.models.io import load_model
    from selftaught.train.rollouts import build_rubric

    model, tokenizer = load_model(cfg.model)
    prompts = load_eval_set(cfg.eval.data, per_level=num_eval, levels=cfg.eval.levels, seed=0).prompts
    engine = HFEngine(model, tokenizer, temperature_head=head, head_sample=False)
    sampling = SamplingParams(temperature=temperature, max_new_tokens=cfg.rollouts.max_new_tokens, seed=0)
    completions = [cs[0] for cs in engine.generate(prompts, sampling)]
    scores = build_rubric(cfg.tasks).score(prompts, completions).values
    rewards: dict[str, list[float]] = {}
    taus: dict[str, list[float]] = {}
    for prompt, completion, score in zip(prompts, completions, scores, strict=True):
        rewards.setdefault(str(prompt.task), []).append(score or 0.0)
        used = completion.meta.get("temperatures", [temperature])
        taus.setdefault(str(prompt.task), []).extend(used)
    return rewards, taus


def fixed_point(
    out_dir: str, cfg: AdaptiveDecodingConfig, temperature: float, num_eval: int
) -> dict[str, Any]:
    settings = {"model": cfg.model, "data": cfg.eval.data, "temperature": temperature, "num_eval": num_eval}
    return run_once(
        out_dir,
        compute_fingerprint(settings),
        lambda: {"rewards": decode_rewards(cfg, num_eval, temperature=temperature)[0]},
    )


def adaptive_table(
    out_dir: str,
    *,
    seeds: list[int],
    arms: list[str],
    num_steps: int,
    num_eval: int,
    overrides: dict[str, Any] | None = None,
) -> str:
    """Run the arms over seeds and the fixed-temperature sweep; write and return `<out_dir>/table.md`."""
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {sorted(ARMS)}")
    base = replace(RECIPE.preset("tiny"), num_steps=num_steps, **(overrides or {}))
    runs: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        for seed in seeds:
            print(f"== {arm}, seed {seed}", flush=True)
            cfg = apply_overrides(
                replace(base, out_dir=f"{out_dir}/{arm}/seed-{seed}", seed=seed), list(ARMS[arm])
            )
            runs.setdefault(arm, []).append(run_arm(cfg, num_eval))
    fixed = {t: fixed_point(f"{out_dir}/fixed/t-{t:g}", base, t, num_eval) for t in base.head.temperatures}
    table = format_table(base, seeds, runs, fixed)
    Path(out_dir, "table.md").write_text(table)
    return table


def win_rate(ours: list[float], theirs: list[float]) -> float:
    """Share of prompts where `ours` is higher, ties counted half."""
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(ours, theirs, strict=True)) / len(
        ours
    )


def format_table(
    base: AdaptiveDecodingConfig,
    seeds: list[int],
    runs: dict[str, list[dict[str, Any]]],
    fixed: dict[float, dict[str, Any]],
) -> str:
    """Markdown: the arms (mean +- se over seeds), the fixed temperatures, and win rates per task."""
    from selftaught.evals.accuracy import mean_and_stderr

    tasks = sorted(next(iter(fixed.values()))["rewards"])

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    def overall(rewards: dict[str, list[float]]) -> float:
        return mean([r for task in tasks for r in rewards[task]])

    cells = " | ".join(f"{t} reward" for t in tasks) + " | " + " | ".join(f"{t} argmax tau" for t in tasks)
    lines = [
        f"{base.num_steps} steps of {base.rollouts.num_prompts} prompts x {base.rollouts.samples_per_prompt} "
        f"samples, {base.head.level} head over {base.head.temperatures}, lr {base.optim.lr:g}, beta "
        f"{base.beta:g}, seeds {seeds}; held-out: {len(next(iter(fixed.values()))['rewards'][tasks[0]])} "
        "prompts per task, one sample each.",
        "",
        f"| decoder | all reward | {cells} |",
        "|---" * (2 + 2 * len(tasks)) + "|",
    ]
    for arm, results in runs.items():
        row = [mean_and_stderr([overall(r["rewards"]) for r in results])]
        row += [mean_and_stderr([mean(r["rewards"][t]) for r in results]) for t in tasks]
        row += [mean_and_stderr([mean(r["taus"][t]) for r in results]) for t in tasks]
        lines.append(f"| {arm} (argmax tau) | " + " | ".join(f"{m:.3f} +- {s:.3f}" for m, s in row) + " |")
    for t, point in fixed.items():
        rewards = point["rewards"]
        per_task = " | ".join(f"{mean(rewards[task]):.3f}" for task in tasks)
        lines.append(
            f"| fixed tau {t:g} | {overall(rewards):.3f} | {per_task} | "
            + " | ".join(["-"] * len(tasks))
            + " |"
        )
    for arm, results in runs.items():
        lines += [
            "",
            f"Win rate of {arm} (argmax tau) against each fixed temperature (ties half; mean over seeds):",
            "",
        ]
        lines.append("| fixed tau | " + " | ".join(tasks) + " | all |")
        lines.append("|---" * (len(tasks) + 2) + "|")
        for t, point in fixed.items():
            per = [
                mean([win_rate(r["rewards"][task], point["rewards"][task]) for r in results])
                for task in tasks
            ]
            every = mean(
                [
                    win_rate(
                        [x for task in tasks for x in r["rewards"][task]],
                        [x for task in tasks for x in point["rewards"][task]],
                    )
                    for r in results
                ]
            )
            lines.append(f"| {t:g} | " + " | ".join(f"{w:.3f}" for w in per) + f" | {every:.3f} |")
    return "\n".join(lines) + "\n"


def add_parser(commands: Any) -> None:
    """`selftaught repro adaptive-decoding`."""
    parser = commands.add_parser(
        "adaptive-decoding",
        help="LPO vs the NLL baseline for a temperature head; win rates vs fixed temperatures",
    )
    parser.add_argument("--out", default="runs/repro-adaptive-decoding", help="output directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default 300)")
    parser.add_argument(
        "--eval-prompts", type=int, default=200, help="held-out prompts per task (default 200)"
    )
    parser.set_defaults(func=_cmd)


def _cmd(args: Any) -> None:
    from selftaught.train.loop import check_out_dir

    for flag, value in (("--steps", args.steps), ("--eval-prompts", args.eval_prompts)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    check_out_dir(args.out, "--out")
    table = adaptive_table(
        args.out, seeds=args.seeds, arms=args.arms, num_steps=args.steps, num_eval=args.eval_prompts
    )
    print(f"{table}\ntable written to {Path(args.out) / 'table.md'}")
