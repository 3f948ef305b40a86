"""`selftaught demo`: the self-improvement flywheel on the embedded tiny world (`selftaught.demo`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the demo on the embedded tiny world")
    demo.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from selftaught.demo import run_demo
    from selftaught.train.loop import check_out_dir

    check_out_dir(args.out, "--out")  # before the student is trained or loaded
    run_demo(args.out)
    return 0
