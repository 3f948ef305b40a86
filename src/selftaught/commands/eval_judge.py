"""`selftaught eval-judge`: a judge's accuracy and position bias on preference pairs."""

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
        "eval-judge",
        help="judge accuracy and position bias on preference pairs",
        description="Judge every pair in both orders (pairwise templates) or score both "
        "responses (pointwise) and report accuracy per order, position-consistent accuracy, "
        "flip, tie and unparsed rates. With --n k, verdicts are the majority of k samples.",
    )
    add_model_arg(p)
    p.add_argument(
        "--data",
        default="world:test",
        help="world:<split> (tiny-world judge pairs) or a prompt/chosen/rejected file (default: world:test)",
    )
    p.add_argument(
        "--template",
        default="j1-pairwise-verdict@1",
        help="versioned judge template, e.g. j1-pointwise@1 or world-pairwise-verdict@1; a wrong name lists "
        "them all (default: j1-pairwise-verdict@1)",
    )
    p.add_argument(
        "--prompt-style",
        choices=["chat", "text"],
        default="chat",
        help="chat: the model's chat template; text: a raw-text prompt, for base models (default: chat)",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="pairs: the first N of a file, N world pairs (default 300)"
    )
    p.add_argument("--out", default=None, help="also write the metrics and every judgment as JSON here")
    add_sampling_args(p, temperature=0.0, max_new_tokens=1024)
    p.set_defaults(func=cmd_eval_judge)


def cmd_eval_judge(args: argparse.Namespace) -> int:
    """Judge the pairs with `--model` and print the metrics table (and write them with `--out`)."""
    from selftaught.judges import build_judge, evaluate_judge, get_template, load_judge_pairs

    template = get_template(args.template)  # before the slow model load: a typo fails fast
    require(args.limit is None or args.limit >= 1, "--limit", ">= 1", args.limit)
    if args.out:
        check_out_file("--out", args.out)
    params = sampling(args)
    pairs = load_judge_pairs(args.data, limit=args.limit, seed=args.seed)
    if not pairs:
        raise ValueError(f"--data {args.data} holds no pairs; nothing to judge")
    judge = build_judge(hf_engine(args), template, params, args.prompt_style)
    result = evaluate_judge(judge, pairs)
    print(
        f"judge {args.model} ({result.template}, {args.prompt_style}) on {args.data}: {len(pairs)} pairs, "
        f"{result.num_judgments} judgments, {result.seconds:.1f}s, mean {result.mean_tokens:.1f} tokens, "
        f"{result.truncated_rate:.0%} truncated"
    )
    print(result.metrics.table())
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        summary = {"model": args.model, "data": args.data, "prompt_style": args.prompt_style, **vars(result)}
        out.write_text(json.dumps(summary, indent=2, default=vars))
    return 0
