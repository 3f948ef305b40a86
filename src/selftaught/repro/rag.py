"""`selftaught repro rag-self-demos`: RA-IT against self-demo SFT and DPO on the tiny world's
knowledge base (papers_A.md §4.6).

Every seed runs the `rag-self-demos` flow's `tiny` preset into `<out>/seed-<k>/` with `seed = k`:
the same base model (`tiny-world-facts`), candidates sampled, judged, trained on and evaluated
under that seed (a finished stage is reused, so an interrupted reproduction resumes). The flow
evaluates the base model and each arm (RA-IT, self-demo SFT, self-demo DPO) on the 245 test
questions with and without their passages; `<out>/table.md` gives, for % correct, % incorrect and %
refuse, the mean +- standard error over the seeds in each (answer present in the passages?) x
(fact known to the base model?) cell, and the tournament's winners by strategy.

`selftaught list` builds this module's parser, so the flow and torch are imported inside the
functions that run them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from selftaught.presets import RECIPES

FLOW = RECIPES["rag-self-demos"]
LABELS = ("correct", "incorrect", "refuse")
CELLS = ("all", "present/known", "present/unknown", "absent/known", "absent/unknown")


def rag_table(
    out_dir: str, *, seeds: list[int], preset: str = "tiny", overrides: list[str] | None = None
) -> str:
    """Run the flow once per seed and write `<out_dir>/table.md`; returns the table."""
    from selftaught.config import apply_overrides

    summaries = []
    for seed in seeds:
        cfg = replace(FLOW.preset(preset), out_dir=f"{out_dir}/seed-{seed}", seed=seed)
        cfg = apply_overrides(cfg, list(overrides or []))
        print(f"== rag-self-demos, seed {seed}", flush=True)
        FLOW.run(cfg)
        summaries.append(_read_summary(cfg.out_dir))
    table = format_table(summaries, seeds, preset)
    Path(out_dir, "table.md").write_text(table)
    return table


def _read_summary(run_dir: str) -> dict[str, Any]:
    import json

    return json.loads(Path(run_dir, "summary.json").read_text())


def format_table(summaries: list[dict[str, Any]], seeds: list[int], preset: str) -> str:
    """Markdown: one table per label (rows: model and setting; columns: the cells, with their
    question counts), mean +- se over the seeds in percent; then the tournament's winners."""
    from selftaught.evals.accuracy import mean_and_stderr

    rows = list(summaries[0]["rates"])
    first = summaries[0]["rates"][rows[0]]
    cells = [c for c in CELLS if c in first]
    lines = [
        f"`rag-self-demos --preset {preset}` over seeds {seeds} (mean +- se, %); cells: answer "
        "present in the passages / fact known to the base model (questions per cell in the header).",
    ]
    for label in LABELS:
        header = " | ".join(f"{c} ({int(first[c]['n'])})" for c in cells)
        lines += ["", f"**% {label}**", "", f"| model, setting | {header} |", "|---" * (len(cells) + 1) + "|"]
        for row in rows:
            values = []
            for cell in cells:
                mean, se = mean_and_stderr([100 * s["rates"][row][cell][label] for s in summaries])
                values.append(f"{mean:.1f} +- {se:.1f}")
            lines.append(f"| {row} | " + " | ".join(values) + " |")
    strategies = sorted({k for s in summaries for k in s["winners"]})
    lines += [
        "",
        "Tournament winners by strategy (mean over seeds): "
        + ", ".join(
            f"{k} {sum(s['winners'].get(k, 0) for s in summaries) / len(summaries):.0f}" for k in strategies
        ),
    ]
    return "\n".join(lines) + "\n"


# --- command line ----------------------------------------------------------------------------------


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "rag-self-demos", help="RA-IT vs self-demo SFT / DPO on the knowledge base, over seeds"
    )
    parser.add_argument("--out", default="runs/repro-rag-self-demos", help="output directory")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", default="tiny", help="the flow's preset (default tiny)")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="flow config overrides, e.g. sft.num_steps=100"
    )
    parser.set_defaults(func=_cmd)


def _cmd(args: Any) -> None:
    from selftaught.train.loop import check_out_dir

    check_out_dir(args.out, "--out")
    table = rag_table(args.out, seeds=args.seeds, preset=args.preset, overrides=args.overrides)
    print(f"{table}\ntable written to {Path(args.out) / 'table.md'}")
