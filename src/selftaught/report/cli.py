"""`selftaught report RUN_DIR [RUN_DIR ...] [--out DIR] [--smoothing W] [--x AXIS]`: the argparse hook
`selftaught.cli` wires in."""

from __future__ import annotations

import argparse
from typing import Any

from selftaught.report.curves import DEFAULT_SMOOTHING, X_AXES
from selftaught.report.render import compare_runs, render_report

DESCRIPTION = (
    "Plot a run's metrics.jsonl (reward, accuracy, lengths, entropy, staleness, loss, ... against the step, "
    "samples, tokens or wall time) into PNGs and a report.md + self-contained report.html (plots first, "
    "then the summary table). Several run directories are overlaid on one page, one line per run (e.g. "
    "offline vs semi-online vs online)."
)
X_HELP = (
    "x axis (default step): samples = cumulative num_prompts (online-rl) or num_pairs (dpo, reward-model); "
    "tokens = cumulative trained tokens, num_tokens (sft, world-pretrain) or train_tokens_per_s x "
    "train_seconds (online-rl); time = the `time` of each record, seconds since the run started"
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
    parser.add_argument(
        "--smoothing",
        type=float,
        default=DEFAULT_SMOOTHING,
        metavar="W",
        help=f"EMA weight in [0, 1) of the per-step curves, debiased as in TensorBoard, the raw values "
        f"drawn faint behind (default {DEFAULT_SMOOTHING}; 0 = off)",
    )
    parser.add_argument("--x", choices=X_AXES, default="step", help=X_HELP)
    parser.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    """Render the report of `args.run_dirs` (one: `render_report`, several: `compare_runs`); print the page."""
    options = {"smoothing": args.smoothing, "x": args.x}
    if len(args.run_dirs) == 1:
        page = render_report(args.run_dirs[0], args.out, **options)
    elif args.out is None:
        raise ValueError("--out is required with several run directories, e.g. --out runs/compare")
    else:
        page = compare_runs(args.run_dirs, args.out, **options)
    print(page)
    return 0
