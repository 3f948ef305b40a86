"""`selftaught repro j1`: single order vs both orders vs both orders + consistency reward (papers_B
§2.9; J1's position-bias ablation, §2.7: flips 44.1% -> 28.7% with the consistency reward).

Every run starts from the tiny-world seed judge (`tiny-world-judge`: the arithmetic student SFT-ed on
a position-biased teacher's judgments) and is the `j1` recipe's `tiny` preset (GRPO, s = 1, no KL,
8 judge prompts x 8 samples a step, lr 1e-4) with one arm's overrides (`RECIPES["j1"].arms`):

    single-order              4 + 4 pairs a step, each in one random order
    both-orders               4 pairs a step, each in both orders (siblings in the same step)
    both-orders-consistency   the same, reward = 1 only when sample i of both orders is right
    both-orders-thinking      (`--arms`) verdict reward + 0.5 x the judge's own answer is right

`--world lists` starts from the list-task seed judge (`tiny-world-list-judge`, element-wise check
traces) on near-miss list pairs (the `tiny-lists` preset) and adds

    pointwise                 `world-pointwise@1`: each response scored alone (1 or 0), both halves
                              rewarded 1 when chosen scores above rejected (J1 PoS from pairwise labels)
    no-thinking               both orders from a judge trained on the same pool with
                              verdict-only judgments (`tiny-world-list-judge-nothink`): `[[B]]` alone

Each arm is validated greedily in both orders on the same held-out pairs (`world:valid`, or
`world-lists:valid`) before and after training: accuracy per order, position-consistent accuracy,
flip rate, A share, thinking accuracy (lists: also the tie rate, and the accuracy of the judgments
whose own computed output is right, which says whether the verdict follows the thinking). Runs go to `<out>/<arm>/seed-<k>/` (a finished run of the same config is reused,
`data.shards.run_once`); `<out>/table.md` has mean +- se over seeds and, with `--results FILE`,
the table goes between this study's markers in FILE (docs/results.md by default).
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
    from selftaught.recipes.online_rl import OnlineRLConfig

J1 = RECIPES["j1"]
METRICS = (
    "accuracy",
    "accuracy_chosen_first",
    "accuracy_chosen_second",
    "consistent_accuracy",
    "flip_rate",
    "a_rate",
    "thinking_accuracy",
)
"""The table's columns (`val_<name>` of the judge validation)."""
LIST_METRICS = (*METRICS, "tie_rate", "accuracy_when_thinking_right")
"""The lists table adds the tie rate (pointwise) and whether the verdict follows the thinking."""
BEGIN, END = "<!-- repro j1: begin -->", "<!-- repro j1: end -->"
MAIN_ARMS = ["single-order", "both-orders", "both-orders-consistency"]
"""The arms run by default (the position-bias ablation of J1 §2.7)."""
LIST_ARMS: dict[str, tuple[str, ...]] = {
    **J1.arms,
    "pointwise": ("judge.template=world-pointwise@1", "judge.rewards={pointwise_pair: 1.0}"),
    "no-thinking": (
        "model=tiny-world-list-judge-nothink",
        "rollouts.max_new_tokens=8",
        "judge.eval_max_new_tokens=8",
    ),
}
WORLDS: dict[str, tuple[str, dict[str, tuple[str, ...]], list[str]]] = {
    "arith": ("tiny", dict(J1.arms), MAIN_ARMS),
    "lists": ("tiny-lists", LIST_ARMS, [*MAIN_ARMS, "pointwise", "no-thinking"]),
}
"""World -> the j1 preset, its arms, the arms run by default."""


def markers(world: str) -> tuple[str, str]:
    """The results-file markers of a world's table (arith keeps the original ones)."""
    return (
        (BEGIN, END)
        if world == "arith"
        else (f"<!-- repro j1 {world}: begin -->", f"<!-- repro j1 {world}: end -->")
    )


def base_config(num_steps: int, num_pairs: int, world: str = "arith") -> OnlineRLConfig:
    """The world's j1 preset, validated on `num_pairs` valid pairs every 50 steps (the table: first
    and last; the trajectory is in each run's metrics.jsonl)."""
    cfg = J1.preset(WORLDS[world][0])
    return replace(
        cfg,
        num_steps=num_steps,
        judge=replace(cfg.judge, eval_num_pairs=num_pairs),
        checkpoint_every=0,
    )


def run_arm(cfg: OnlineRLConfig) -> dict[str, Any]:
    """One j1 run, or the result of the finished run of the same config in `cfg.out_dir`."""
    fingerprint = compute_fingerprint({k: v for k, v in to_dict(cfg).items() if k != "out_dir"})
    return run_once(cfg.out_dir, fingerprint, partial(_run_and_summarize, cfg))


def _run_and_summarize(cfg: OnlineRLConfig) -> dict[str, Any]:
    from selftaught.runlog import read_metrics

    start = time.perf_counter()
    J1.run(cfg)
    wall = time.perf_counter() - start
    rows = read_metrics(cfg.out_dir)
    validations = [r for r in rows if "val_accuracy" in r]
    rewards = [r["reward"] for r in rows if "reward" in r][-10:]
    return {
        "initial": {m: validations[0].get(f"val_{m}") for m in LIST_METRICS},
        "final": {m: validations[-1].get(f"val_{m}") for m in LIST_METRICS},
        "train_reward_last10": sum(rewards) / len(rewards) if rewards else None,
        "wall_seconds": wall,
    }


def j1_table(
    out_dir: str,
    *,
    seeds: list[int],
    arms: list[str],
    num_steps: int,
    num_pairs: int,
    overrides: dict[str, Any] | None = None,
    world: str = "arith",
) -> str:
    """Run the arms of `world` over the seeds; write `<out_dir>/table.md`; the table. `overrides`:
    config fields replaced in the shared base (tests: a smaller model and batch)."""
    world_arms = WORLDS[world][1]
    unknown = sorted(set(arms) - set(world_arms))
    if unknown:
        raise ValueError(f"unknown arms {unknown} of --world {world}; choose from {sorted(world_arms)}")
    base = replace(base_config(num_steps, num_pairs, world), **(overrides or {}))
    runs: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        for seed in seeds:
            print(f"== {arm}, seed {seed}", flush=True)
            cfg = replace(base, out_dir=f"{out_dir}/{arm}/seed-{seed}", seed=seed)
            runs.setdefault(arm, []).append(run_arm(apply_overrides(cfg, list(world_arms[arm]))))
    table = format_table(base, seeds, runs, METRICS if world == "arith" else LIST_METRICS)
    Path(out_dir, "table.md").write_text(table)
    return table


def _cell(values: list[Any]) -> str:
    from selftaught.evals.accuracy import mean_and_stderr

    present = [v for v in values if v is not None]
    if not present:
        return "-"
    mean, se = mean_and_stderr(present)
    return f"{mean:.3f} +- {se:.3f}"


COLUMNS = {
    "accuracy": "acc",
    "accuracy_chosen_first": "acc(c=A)",
    "accuracy_chosen_second": "acc(c=B)",
    "consistent_accuracy": "consistent",
    "flip_rate": "flip",
    "a_rate": "says A",
    "thinking_accuracy": "thinking",
    "tie_rate": "ties",
    "accuracy_when_thinking_right": "acc when thinking right",
}


def format_table(
    base: OnlineRLConfig,
    seeds: list[int],
    runs: dict[str, list[dict[str, Any]]],
    metrics: tuple[str, ...] = METRICS,
) -> str:
    """Markdown: the seed judge, then one row per arm (mean +- se over seeds)."""
    first = next(iter(runs.values()))[0]["initial"]
    lines = [
        f"Seed judge `{base.model}`; {base.num_steps} GRPO steps (s = 1, KL {base.kl_coef:g}) of "
        f"{base.rollouts.num_prompts} judge prompts x {base.rollouts.samples_per_prompt} samples at T = "
        f"{base.rollouts.temperature:g}, lr {base.optim.lr:g}, seeds {seeds}; greedy, both orders of "
        f"{base.judge.eval_num_pairs} `{base.judge.eval_pairs}` pairs. acc(c=A) / acc(c=B): accuracy with "
        "the correct answer shown first / second; flip: same letter in both orders; thinking: the judge's "
        "own answer (`Answer:`, or a list trace's computed output) is right.",
        "",
        f"| arm | {' | '.join(COLUMNS[m] for m in metrics)} | train reward | wall s |",
        "|---" * (len(metrics) + 3) + "|",
        "| seed judge | "
        + " | ".join("-" if first.get(m) is None else f"{first[m]:.3f}" for m in metrics)
        + " | | |",
    ]
    for arm, results in runs.items():
        if results[0]["initial"] != first:  # another seed judge, or the seed validated another way
            seed_cells = [_cell([r["initial"].get(m) for r in results]) for m in metrics]
            lines.append(f"| {arm}, before training | {' | '.join(seed_cells)} | | |")
        cells = [_cell([r["final"].get(m) for r in results]) for m in metrics]
        reward = _cell([r["train_reward_last10"] for r in results])
        wall = sum(r["wall_seconds"] for r in results) / len(results)
        lines.append(f"| {arm} | {' | '.join(cells)} | {reward} | {wall:.0f} |")
    return "\n".join(lines) + "\n"


def write_results(path: Path, table: str, command: str, world: str = "arith") -> None:
    """Put `table` between the world's markers in `path` (appending a section when they are absent)."""
    begin, end = markers(world)
    block = f"{begin}\n_Regenerated by `{command}`._\n\n{table}{end}"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        title = "J1 in the tiny world" + ("" if world == "arith" else f", {world}")
        text = text.rstrip("\n") + f"\n\n## {title} (`selftaught repro j1 --world {world}`)\n\n{block}\n"
    path.write_text(text)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "j1", help="J1: single order vs both orders vs + consistency reward, over seeds"
    )
    parser.add_argument(
        "--out", default=None, help="output directory (default: runs/repro-j1, or runs/repro-j1-<world>)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--world", choices=list(WORLDS), default="arith", help="arith or lists (default: arith)"
    )
    parser.add_argument(
        "--arms",
        nargs="+",
        default=None,
        choices=list(LIST_ARMS),
        help=f"arms (default: arith {MAIN_ARMS}, lists {WORLDS['lists'][2]}; pointwise: lists only)",
    )
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per run (default 300)")
    parser.add_argument("--pairs", type=int, default=300, help="validation pairs, both orders (default 300)")
    parser.add_argument("--results", default="docs/results.md", help="markdown file to update ('' = none)")
    parser.set_defaults(func=_cmd)


def _cmd(args: Any) -> None:
    from selftaught.train.loop import check_out_dir

    for flag, value in (("--steps", args.steps), ("--pairs", args.pairs)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    args.out = args.out or ("runs/repro-j1" if args.world == "arith" else f"runs/repro-j1-{args.world}")
    check_out_dir(args.out, "--out")
    arms = args.arms or WORLDS[args.world][2]
    table = j1_table(
        args.out, seeds=args.seeds, arms=arms, num_steps=args.steps, num_pairs=args.pairs, world=args.world
    )
    print(f"{table}\ntable written to {Path(args.out) / 'table.md'}")
    if args.results:
        seeds = " ".join(str(s) for s in args.seeds)
        world = "" if args.world == "arith" else f" --world {args.world}"
        command = f"selftaught repro j1{world} --steps {args.steps} --pairs {args.pairs} --seeds {seeds}"
        write_results(Path(args.results), table, command, args.world)
        print(f"and to {args.results}")
