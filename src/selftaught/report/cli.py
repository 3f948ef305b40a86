"""`selftaught report RUN_DIR [RUN_DIR ...] [--out DIR]`: the argparse hook `selftaught.cli` wires in."""

from __future__ import annotations

import argparse
from typing import Any

from selftaught.report.render import compare_runs, render_report

DESCRIPTION = (
    "Plot a run's metrics.jsonl (reward, accuracy, lengths, entropy, staleness, loss, ... against the step) "
    "into PNGs and a report.md + self-contained report.html. Several run directories are overlaid on one "
    "page, one line per run (e.g. offline vs semi-online vs online)."
)


def add_report_parser(subparsers: Any) -> None:
    """Add the `report` command to an argparse subparsers object (`parser.add_subparsers()`)."""
    parser = subparsers.add_parser(
        "report", help="plots and an HTML/markdown page of runs", description=DESCRIPTION
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directory holding metrics.jsonl")
    parser.add_argument(
        "--out", default=None, help="output directory (default: <RUN_DIR>/report; required with several runs)"
    )
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Render the report of `args.run_dirs` (one: `render_report`, several: `compare_runs`); print the page."""
    if len(args.run_dirs) == 1:
        page = render_report(args.run_dirs[0], args.out)
    elif args.out is None:
        raise ValueError("--out is required with several run directories, e.g. --out runs/compare")
    else:
        page = compare_runs(args.run_dirs, args.out)
    print(page)
    return 0
