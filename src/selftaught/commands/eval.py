"""`selftaught eval`: accuracy with its standard error on a tiny-world split or a GSM8K-format file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from selftaught.commands.common import add_model_arg, add_sampling_args, hf_engine, sampling


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
    from selftaught.evals.accuracy import evaluate_accuracy
    from selftaught.evals.sets import load_eval_set

    eval_set = load_eval_set(
        args.data,
        per_level=args.per_level,
        levels=[int(x) for x in args.levels.split(",")],
        limit=args.limit,
        num_shots=args.num_shots,
        seed=args.seed,
    )
    engine = hf_engine(args)
    params = sampling(args, eval_set.stop, eval_set.max_new_tokens)
    result = evaluate_accuracy(engine, eval_set.prompts, eval_set.is_correct, params)
    print(
        f"model {args.model} on {args.data}: {result.num_problems} problems x {args.n} samples, "
        f"{result.seconds:.1f}s, mean completion {result.mean_completion_tokens:.1f} tokens"
    )
    print(result.table())
    if args.out:
        write_eval(args, eval_set.prompts, result)
    return 0


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
