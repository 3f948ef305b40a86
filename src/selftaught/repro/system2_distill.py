"""`selftaught repro system2-distill`: System 2 distillation in the System 2 world (papers_A §3.5).

Every run starts from the same base model (`tiny-world-system2`: `<s1>` direct answers written by
heuristics, `<s2>` a scratchpad slipping on 8% of its steps) and is the flow's `tiny` preset with one
arm's overrides; the arms of a task share its System 2 samples per seed (`samples_dir`):

    letters             last letters (distillable), CoT = the `<s2>` scratchpad x 8 at T 1, majority >= 5/8
    letters-no-filter   the same samples, the first one as the target (no curation)
    letters-distill-s1  "Distill System 1": the same vote over `<s1>`'s own samples
    swaps               ball-under-cups tracking (not distillable, the GSM8K analogue), majority >= 5/8
    judge-swap          the toy pairwise judge, kept when both orders' majorities agree
    judge-no-filter     the same samples of the shown order, the first one as the target

Runs go to `<out>/<arm>/seed-<k>/`; `<out>/table.md` has mean +- se over seeds per arm (System 1,
System 2 and the distilled System 1: greedy test accuracy, generated tokens per input, % inconsistent
for the judge), and with `--results FILE` the table goes between this study's markers in FILE.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from selftaught.config import apply_overrides
from selftaught.presets import RECIPES

S2D = RECIPES["system2-distill"]
ARMS: dict[str, tuple[str, ...]] = {
    "letters": (),
    "letters-no-filter": ("curation=none",),
    "letters-distill-s1": ("method=direct",),
    "swaps": ("task=world-swaps",),
    "judge-swap": ("task=world-judge", "curation=swap"),
    "judge-no-filter": ("task=world-judge", "curation=none"),
}
SHARED_SAMPLES = {
    "letters": "letters",
    "letters-no-filter": "letters",
    "letters-distill-s1": "letters-s1",
    "swaps": "swaps",
    "judge-swap": "judge",
    "judge-no-filter": "judge",
}
"""Arms with the same name here sample System 2 once per seed (`samples_dir`)."""
BEGIN, END = "<!-- repro system2-distill: begin -->", "<!-- repro system2-distill: end -->"
REPRO_OVERRIDES = ("num_inputs=500", "sft_steps=100", "eval_num=300")
"""The repro's scale (about 25 minutes for 6 arms x 3 seeds on two busy cores)."""


def system2_table(
    out_dir: str, *, seeds: list[int], arms: list[str], overrides: tuple[str, ...] = REPRO_OVERRIDES
) -> str:
    """Run the arms over the seeds; write `<out_dir>/table.md`; the table."""
    base = apply_overrides(S2D.preset("tiny"), list(overrides))
    runs: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        for seed in seeds:
            print(f"== {arm}, seed {seed}", flush=True)
            samples = f"{out_dir}/samples/{SHARED_SAMPLES[arm]}-seed-{seed}"
            cfg = replace(base, out_dir=f"{out_dir}/{arm}/seed-{seed}", seed=seed, samples_dir=samples)
            S2D.run(apply_overrides(cfg, list(ARMS[arm])))
            runs.setdefault(arm, []).append(json.loads(Path(cfg.out_dir, "summary.json").read_text()))
    table = format_table(base, seeds, runs)
    Path(out_dir, "table.md").write_text(table)
    return table


def _cell(values: list[Any], digits: int = 3) -> str:
    from selftaught.evals.accuracy import mean_and_stderr

    present = [v for v in values if v is not None]
    if not present:
        return "-"
    mean, se = mean_and_stderr(present)
    return f"{mean:.{digits}f} +- {se:.{digits}f}"


def _column(by_arm: list[dict[str, dict[str, Any]]], name: str, key: str) -> list[Any]:
    return [rows[name].get(key) for rows in by_arm if name in rows]


def format_table(base: Any, seeds: list[int], runs: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown: one row per arm; System 1 / System 2 / distilled columns, mean +- se over seeds."""
    lines = [
        f"Base `{base.model}`; {base.num_inputs} unlabelled train inputs, {base.samples} System 2 samples "
        f"each at T {base.temperature:g}, majority share >= {base.min_share:g}; {base.sft_steps} SFT steps of "
        f"{base.sft_batch_size} at lr {base.sft_lr:g} from the base; seeds {seeds}; greedy on {base.eval_num} "
        "test inputs (judge: both orders). Tokens: generated per input, every call included.",
        "",
        "| arm | S1 acc | S2 acc | distilled S1 acc | S1 tokens | S2 tokens | distilled tokens "
        "| S1 incons. | S2 incons. | distilled incons. | kept | kept targets right |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, results in runs.items():
        by = [{row["arm"].split(" (")[0]: row for row in r["arms"]} for r in results]
        cells = [
            *(_cell(_column(by, n, "accuracy")) for n in ("system1", "system2", "distilled system1")),
            *(_cell(_column(by, n, "tokens"), 1) for n in ("system1", "system2", "distilled system1")),
            *(_cell(_column(by, n, "inconsistent")) for n in ("system1", "system2", "distilled system1")),
            _cell([r["curation"]["num_kept"] / r["curation"]["num_items"] for r in results]),
            _cell([r["curation"]["kept_target_accuracy"] for r in results]),
        ]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(path: Path, table: str, command: str) -> None:
    """Put `table` between this study's markers in `path` (appending a section when they are absent)."""
    block = f"{BEGIN}\n_Regenerated by `{command}`._\n\n{table}{END}"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = (
            text.rstrip("\n")
            + f"\n\n## System 2 distillation in the tiny world (`selftaught repro system2-distill`)\n\n{block}\n"
        )
    path.write_text(text)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "system2-distill",
        help="System 2 distillation: distillable vs not, no filter, distill S1, swap-consistent judge",
    )
    parser.add_argument("--out", default="runs/repro-system2-distill", help="output directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--results", default="docs/results.md", help="markdown file to update ('' = none)")
    parser.set_defaults(func=_cmd)


def _cmd(args: Any) -> None:
    from selftaught.train.loop import check_out_dir

    check_out_dir(args.out, "--out")
    table = system2_table(args.out, seeds=args.seeds, arms=args.arms)
    print(f"{table}\ntable written to {Path(args.out) / 'table.md'}")
    if args.results:
        seeds = " ".join(str(s) for s in args.seeds)
        write_results(Path(args.results), table, f"selftaught repro system2-distill --seeds {seeds}")
        print(f"and to {args.results}")
