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

`selftaught repro adaptive-decoding-cstory` does the same from the `tiny-cstory` preset (a token-level
head, loss (c), over `tiny-world-lpo-cstory`; MATH, STORY and CSTORY prompts, where a designated digit
must open each of three parts) against a sequence-level head (`lpo-seq`, loss (b)), and adds the
argmax temperature by position: quarters of each response and, on CSTORY, each part's first token
against the other tokens, with its histogram over the grid.
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
CSTORY_ARMS: dict[str, tuple[str, ...]] = {
    "lpo-token": (),
    "lpo-seq": ("head.level=sequence", "loss=tokens_only"),
}
"""`repro adaptive-decoding-cstory`: the `tiny-cstory` preset (a token-level head, loss (c)) against a
sequence-level head (loss (b)) on MATH, STORY and constrained stories."""
STUDIES: dict[str, tuple[str, dict[str, tuple[str, ...]], str]] = {
    "adaptive-decoding": (
        "tiny",
        ARMS,
        "LPO vs the NLL baseline for a temperature head; win rates vs fixed temperatures",
    ),
    "adaptive-decoding-cstory": (
        "tiny-cstory",
        CSTORY_ARMS,
        "a token-level temperature head on constrained stories: temperature at the constrained tokens",
    ),
}
"""Each reproduction: the preset its runs start from, its arms and its help line."""


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
    rewards, taus, positions = decode_rewards(cfg, num_eval, head=head)
    return {"rewards": rewards, "taus": taus, "positions": positions, "wall_seconds": wall}


def decode_rewards(
    cfg: AdaptiveDecodingConfig, num_eval: int, *, head: Any = None, temperature: float = 0.0
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, dict[str, list[float]]]]:
    """Per task, the reward of one sample per held-out prompt (with the head's argmax temperature,
    or at `temperature`), the temperatures used, and (a token-level head) the temperatures by position:
    by quarter of the response (`q1`..`q4`) and, for a task with a constraint at known tokens
    (`CONSTRAINED_POSITIONS`), there and elsewhere."""
    from selftaught.engines.base import SamplingParams
    from selftaught.engines.hf import HFEngine
    from selftaught.evals.sets import load_eval_set
    from selftaught.models.io import load_model
    from selftaught.recipes.adaptive_decoding import CONSTRAINED_POSITIONS
    from selftaught.train.rollouts import build_rubric

    model, tokenizer = load_model(cfg.model)
    prompts = load_eval_set(cfg.eval.data, per_level=num_eval, levels=cfg.eval.levels, seed=0).prompts
    engine = HFEngine(model, tokenizer, temperature_head=head, head_sample=False)
    sampling = SamplingParams(temperature=temperature, max_new_tokens=cfg.rollouts.max_new_tokens, seed=0)
    completions = [cs[0] for cs in engine.generate(prompts, sampling)]
    scores = build_rubric(cfg.tasks).score(prompts, completions).values
    rewards: dict[str, list[float]] = {}
    taus: dict[str, list[float]] = {}
    positions: dict[str, dict[str, list[float]]] = {}
    for prompt, completion, score in zip(prompts, completions, scores, strict=True):
        task = str(prompt.task)
        rewards.setdefault(task, []).append(score or 0.0)
        used = completion.meta.get("temperatures", [temperature])
        taus.setdefault(task, []).extend(used)
        if head is None or head.level != "token" or not used:
            continue
        groups = positions.setdefault(task, {})
        for position, tau in enumerate(used):
            groups.setdefault(f"q{4 * position // len(used) + 1}", []).append(tau)
        if task in CONSTRAINED_POSITIONS:
            name, flags_of = CONSTRAINED_POSITIONS[task]
            flags = flags_of([str(tokenizer.decode([t])) for t in completion.token_ids])
            for flag, tau in zip(flags, used, strict=False):
                groups.setdefault(name if flag else "other", []).append(tau)
    return rewards, taus, positions


def fixed_point(
    out_dir: str, cfg: AdaptiveDecodingConfig, temperature: float, num_eval: int
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "model": cfg.model,
        "data": cfg.eval.data,
        "temperature": temperature,
        "num_eval": num_eval,
    }
    if cfg.model != "tiny-world-lpo":  # the first study's sweep is keyed without its tasks
        settings["tasks"] = [task.reward for task in cfg.tasks]
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
    study: str = "adaptive-decoding",
) -> str:
    """Run the arms over seeds and the fixed-temperature sweep; write and return `<out_dir>/table.md`."""
    preset, arm_overrides, _ = STUDIES[study]
    unknown = sorted(set(arms) - set(arm_overrides))
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {sorted(arm_overrides)}")
    base = replace(RECIPE.preset(preset), num_steps=num_steps, **(overrides or {}))
    runs: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        for seed in seeds:
            print(f"== {arm}, seed {seed}", flush=True)
            cfg = apply_overrides(
                replace(base, out_dir=f"{out_dir}/{arm}/seed-{seed}", seed=seed), list(arm_overrides[arm])
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
    lines += position_table(base.head.temperatures, runs)
    return "\n".join(lines) + "\n"


def position_table(grid: list[float], runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Markdown lines: for each token-level arm, task and position group, the mean argmax temperature
    (mean +- se over seeds) and its histogram over the grid (shares, pooled over seeds)."""
    from selftaught.evals.accuracy import mean_and_stderr

    lines: list[str] = []
    for arm, results in runs.items():
        if not all(r.get("positions") for r in results):
            continue
        lines += [
            "",
            f"Argmax temperature of {arm} by position (per task: quarters of the response, and where a "
            "constraint binds):",
            "",
            "| task | position | tokens | mean tau | " + " | ".join(f"share {t:g}" for t in grid) + " |",
            "|---" * (4 + len(grid)) + "|",
        ]
        for task, groups in results[0]["positions"].items():
            for group in groups:
                pooled = [tau for r in results for tau in r["positions"][task].get(group, [])]
                mean, se = mean_and_stderr(
                    [sum(v) / len(v) for r in results if (v := r["positions"][task].get(group))]
                )
                shares = " | ".join(f"{sum(tau == t for tau in pooled) / len(pooled):.2f}" for t in grid)
                lines.append(f"| {task} | {group} | {len(pooled)} | {mean:.3f} +- {se:.3f} | {shares} |")
    return lines


def add_parser(commands: Any) -> None:
    """`selftaught repro adaptive-decoding` and `repro adaptive-decoding-cstory`."""
    for study, (_, arms, help_line) in STUDIES.items():
        parser = commands.add_parser(study, help=help_line)
        parser.add_argument("--out", default=f"runs/repro-{study}", help="output directory")
        parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        parser.add_argument("--arms", nargs="+", default=list(arms), choices=list(arms))
        parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default 300)")
        parser.add_argument(
            "--eval-prompts",
            type=int,
            default=150 if "cstory" in study else 200,
            help="held-out prompts per task (default %(default)s)",
        )
        parser.set_defaults(func=partial(_cmd, study=study))


def _cmd(args: Any, study: str) -> None:
    from selftaught.train.loop import check_out_dir

    for flag, value in (("--steps", args.steps), ("--eval-prompts", args.eval_prompts)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    check_out_dir(args.out, "--out")
    table = adaptive_table(
        args.out,
        seeds=args.seeds,
        arms=args.arms,
        num_steps=args.steps,
        num_eval=args.eval_prompts,
        study=study,
    )
    print(f"{table}\ntable written to {Path(args.out) / 'table.md'}")
