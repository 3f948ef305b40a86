"""`selftaught repro self-taught-evaluator`: judge accuracy per iteration of the Self-Taught Evaluator
loop, against its variants and a judge trained on gold judgments (papers_A §5.6), in one of two worlds.

`--world arith` (the flow's `tiny` preset): the tiny-world seed judge (`tiny-world-judge`) on fixed
answer-mismatch pairs; `--world lists` (`tiny-lists`): the list-task seed judge
(`tiny-world-list-judge`) on list tasks with near-miss instructions (`world.list_tasks`), evaluated
on near-miss test pairs, random-corruption test pairs, held-out families and majority@k. Each run is
the preset with one arm's overrides:

    ste              A/B-balanced kept judgments (the paper); lists: modified-instruction pairs
    ste-unbalanced   arith: `balance_labels=false` (the judge's own A/B mix); lists: 80% of the pairs
                     shown with the right output as A and no balancing
    ste-corruption   lists: random-corruption pairs instead of modified instructions
    ste-dpo          lists: SFT then DPO + NLL on correct vs wrong judgments (the released recipe)
    gold             one iteration on perfect judgments

Runs go to `<out>/<arm>/seed-<k>/` (every stage of a finished run is reused); `<out>/table.md` has
mean +- se over seeds per arm and iteration and, with `--results FILE`, the table goes between the
world's markers in FILE (docs/results.md by default).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selftaught.config import apply_overrides
from selftaught.presets import RECIPES

if TYPE_CHECKING:
    from selftaught.configs.judge import SelfTaughtEvaluatorConfig

STE = RECIPES["self-taught-evaluator"]
ARMS: dict[str, tuple[str, ...]] = {
    "ste": (),
    "ste-unbalanced": ("balance_labels=false",),
    "gold": ("annotator=gold", "iterations=1"),
}
LIST_ARMS: dict[str, tuple[str, ...]] = {
    "ste": (),
    "ste-corruption": ("pairs=world-lists:train:random_corruption",),
    "ste-unbalanced": ("chosen_first_share=0.8", "balance_labels=false"),
    "ste-dpo": ("dpo_steps=100",),
    "gold": ("annotator=gold", "iterations=1"),
}
WORLDS: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "arith": ("tiny", ARMS),
    "lists": ("tiny-lists", LIST_ARMS),
}
"""World -> the flow preset and the arms."""
METRICS = (
    "accuracy",
    "accuracy_chosen_first",
    "accuracy_chosen_second",
    "consistent_accuracy",
    "flip_rate",
    "a_rate",
)
LIST_COLUMNS = {
    "acc": "accuracy",
    "consistent": "consistent_accuracy",
    "flip": "flip_rate",
    "says A": "a_rate",
    "acc corruption": "world-lists:test:random_corruption/accuracy",
    "acc held-out families": "world-lists:heldout/accuracy",
    "maj@5 acc": "maj_accuracy",
    "computes right": "thinking_accuracy",
    "acc when it computes right": "accuracy_when_thinking_right",
}
"""Columns of the lists table -> summary keys."""
BEGIN, END = "<!-- repro self-taught-evaluator: begin -->", "<!-- repro self-taught-evaluator: end -->"


def markers(world: str) -> tuple[str, str]:
    """The results-file markers of a world's table (arith keeps the original ones)."""
    if world == "arith":
        return BEGIN, END
    return (
        f"<!-- repro self-taught-evaluator {world}: begin -->",
        f"<!-- repro self-taught-evaluator {world}: end -->",
    )


def ste_table(
    out_dir: str,
    *,
    seeds: list[int],
    arms: list[str],
    overrides: dict[str, Any] | None = None,
    world: str = "arith",
) -> str:
    """Run the arms of `world` over the seeds; write `<out_dir>/table.md`; the table."""
    preset, world_arms = WORLDS[world]
    unknown = [arm for arm in arms if arm not in world_arms]
    if unknown:
        raise ValueError(f"--arms {unknown} are not arms of --world {world}: {', '.join(world_arms)}")
    base: SelfTaughtEvaluatorConfig = replace(STE.preset(preset), **(overrides or {}))
    runs: dict[str, list[list[dict[str, Any]]]] = {}
    for arm in arms:
        for seed in seeds:
            print(f"== {arm}, seed {seed}", flush=True)
            cfg = apply_overrides(
                replace(base, out_dir=f"{out_dir}/{arm}/seed-{seed}", seed=seed), list(world_arms[arm])
            )
            STE.run(cfg)
            rows = json.loads(Path(cfg.out_dir, "summary.json").read_text())["iterations"]
            runs.setdefault(arm, []).append(rows)
    table = format_table(base, seeds, runs) if world == "arith" else format_list_table(base, seeds, runs)
    Path(out_dir, "table.md").write_text(table)
    return table


def _cell(values: list[Any]) -> str:
    from selftaught.evals.accuracy import mean_and_stderr

    present = [v for v in values if v is not None]
    if not present:
        return "-"
    mean, se = mean_and_stderr(present)
    return f"{mean:.3f} +- {se:.3f}"


def format_table(
    base: SelfTaughtEvaluatorConfig, seeds: list[int], runs: dict[str, list[list[dict[str, Any]]]]
) -> str:
    """Markdown: one row per arm and iteration (0 = the seed judge), mean +- se over seeds."""
    lines = [
        f"Seed judge `{base.model}`; {base.num_pairs} `{base.pairs}` pairs, {base.samples_per_pair} judgments "
        f"each at T {base.temperature:g} / top-p {base.top_p:g}, {base.sft_steps} SFT steps of "
        f"{base.sft_batch_size} at lr {base.sft_lr:g} from the seed each iteration; seeds {seeds}; greedy, "
        f"both orders of {base.eval_num_pairs} `{base.eval_pairs}` pairs.",
        "",
        "| arm | iteration | acc | acc(c=A) | acc(c=B) | consistent | flip | says A | annotator sample acc | kept |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, results in runs.items():
        for i in range(len(results[0])):
            rows = [r[i] for r in results if i < len(r)]
            cells = [
                _cell([row.get(m) for row in rows])
                for m in (*METRICS, "annotator_sample_accuracy", "num_kept")
            ]
            lines.append(f"| {arm} | {i} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_list_table(
    base: SelfTaughtEvaluatorConfig, seeds: list[int], runs: dict[str, list[list[dict[str, Any]]]]
) -> str:
    """Markdown for the lists world: near-miss test accuracy and position metrics, random-corruption
    and held-out-family accuracy, majority@k; one row per arm and iteration, mean +- se over seeds."""
    lines = [
        f"Seed judge `{base.model}`; {base.num_pairs} `{base.pairs}` pairs, {base.samples_per_pair} judgments "
        f"each at T {base.temperature:g} / top-p {base.top_p:g}, {base.sft_steps} SFT steps of "
        f"{base.sft_batch_size} at lr {base.sft_lr:g} from the seed each iteration; seeds {seeds}; greedy, "
        f"both orders of {base.eval_num_pairs} pairs per set (`{base.eval_pairs}`, near-miss negatives, "
        f"unless named); majority of {base.eval_majority_k} samples at T {base.temperature:g}.",
        "",
        "| arm | iteration | " + " | ".join(LIST_COLUMNS) + " | annotator sample acc | kept |",
        "|---" * (len(LIST_COLUMNS) + 4) + "|",
    ]
    for arm, results in runs.items():
        for i in range(len(results[0])):
            rows = [r[i] for r in results if i < len(r)]
            keys = [*LIST_COLUMNS.values(), "annotator_sample_accuracy", "num_kept"]
            cells = [_cell([row.get(key) for row in rows]) for key in keys]
            lines.append(f"| {arm} | {i} | " + " | ".join(cells) + " |")
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
        text = (
            text.rstrip("\n")
            + f"\n\n## Self-Taught Evaluator in the tiny world (`selftaught repro self-taught-evaluator --world {world}`)"
            + f"\n\n{block}\n"
        )
    path.write_text(text)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "self-taught-evaluator",
        help="Self-Taught Evaluator: accuracy per iteration, unbalanced labels, gold judge",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output directory (default: runs/repro-self-taught-evaluator, or ...-<world> for lists)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--world", choices=list(WORLDS), default="arith", help="arith or lists (default: arith)"
    )
    parser.add_argument(
        "--arms",
        nargs="+",
        default=None,
        help=f"arms (default: all of the world's; arith {list(ARMS)}, lists {list(LIST_ARMS)})",
    )
    parser.add_argument("--results", default="docs/results.md", help="markdown file to update ('' = none)")
    parser.set_defaults(func=_cmd)


def _cmd(args: Any) -> None:
    from selftaught.train.loop import check_out_dir

    args.out = args.out or "runs/repro-self-taught-evaluator" + (
        "" if args.world == "arith" else f"-{args.world}"
    )
    check_out_dir(args.out, "--out")
    arms = args.arms or list(WORLDS[args.world][1])
    table = ste_table(args.out, seeds=args.seeds, arms=arms, world=args.world)
    print(f"{table}\ntable written to {Path(args.out) / 'table.md'}")
    if args.results:
        seeds = " ".join(str(s) for s in args.seeds)
        command = f"selftaught repro self-taught-evaluator --world {args.world} --seeds {seeds}"
        write_results(Path(args.results), table, command, args.world)
        print(f"and to {args.results}")
