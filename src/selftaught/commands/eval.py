"""`selftaught eval`: accuracy with its standard error on a tiny-world split or a GSM8K-format file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from selftaught.commands.common import (
    add_model_arg,
    add_sampling_args,
    check_out_file,
    hf_engine,
    require,
    sampling,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="accuracy on a tiny-world split or a GSM8K-format JSONL",
        description="Accuracy (mean over problems of the per-problem mean over --n samples) "
        "with its standard error, and a per-level table for the tiny world.",
    )
    add_model_arg(p)
    p.add_argument(
        "--data",
        default="world:test",
        help="world:<split> (train/valid/test) or a GSM8K-format file (question, answer with ####)",
    )
    p.add_argument("--limit", type=int, default=None, help="GSM8K: only the first N problems")
    p.add_argument("--per-level", type=int, default=200, help="world: problems per level (default: 200)")
    p.add_argument("--levels", default="1,2,3", help="world: comma-separated levels (default: 1,2,3)")
    p.add_argument("--num-shots", type=int, default=8, help="GSM8K: few-shot exemplars (default: 8)")
    p.add_argument("--out", default=None, help="also write the result (and completions) as JSON here")
    add_sampling_args(p, temperature=0.0, max_new_tokens=None)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Load the eval set (before the model, so a bad file fails fast), sample, print the table."""
    from selftaught.data.gsm8k import EXEMPLARS
    from selftaught.evals.accuracy import evaluate_accuracy
    from selftaught.evals.sets import load_eval_set

    require(args.limit is None or args.limit >= 1, "--limit", ">= 1", args.limit)
    require(args.per_level >= 1, "--per-level", ">= 1", args.per_level)
    shots = len(EXEMPLARS)
    require(0 <= args.num_shots <= shots, "--num-shots", f"between 0 and {shots}", args.num_shots)
    if args.out:
        check_out_file("--out", args.out)
    eval_set = load_eval_set(
        args.data,
        per_level=args.per_level,
        levels=parse_levels(args.levels),
        limit=args.limit,
        num_shots=args.num_shots,
        seed=args.seed,
    )
    if not eval_set.prompts:
        raise ValueError(f"--data {args.data} holds no problems; nothing to evaluate")
    params = sampling(args, eval_set.stop, eval_set.max_new_tokens)  # bad flags fail before the model load
    engine = hf_engine(args)
    result = evaluate_accuracy(engine, eval_set.prompts, eval_set.is_correct, params)
    print(
        f"model {args.model} on {args.data}: {result.num_problems} problems x {args.n} samples, "
        f"{result.seconds:.1f}s, mean completion {result.mean_completion_tokens:.1f} tokens"
    )
    print(result.table())
    if args.out:
        write_eval(args, eval_set.prompts, result)
    return 0


def parse_levels(text: str) -> list[int]:
    """`--levels 1,2,3` as distinct integers >= 1; a ValueError naming the flag otherwise."""
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        levels = []
    require(
        bool(levels) and len(set(levels)) == len(levels) and min(levels) >= 1,
        "--levels",
        "distinct comma-separated integers >= 1, e.g. 1,2,3",
        text,
    )
    return levels


def write_eval(args: argparse.Namespace, prompts: list[Any], result: Any) -> None:
    """The accuracy, its groups and every sample as JSON at `--out`."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": args.model,
        "data": args.data,
        "accuracy": result.accuracy,
        "stderr": result.stderr,
        "num_problems": result.num_problems,
        "n": args.n,
        "seconds": result.seconds,
        "groups": {k: vars(v) for k, v in result.groups.items()},
        "samples": [
            {"prompt_id": p.id, "answer": p.answer, "completions": [c.text for c in cs]}
            for p, cs in zip(prompts, result.completions, strict=True)
        ],
    }
    out.write_text(json.dumps(summary, indent=2))
