"""`selftaught generate`: sample completions for a prompts file, one JSON line per sample."""

from __future__ import annotations

import argparse
import time
from typing import Any

from selftaught.commands.common import add_model_arg, add_sampling_args, hf_engine, sampling


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="sample completions for a prompts file",
        description="Read prompts (JSONL/Parquet/dataset dir; columns `messages`, or "
        "`prompt` as text or messages, or `question`), write one JSON line per sample.",
    )
    add_model_arg(p)
    p.add_argument("--prompts", required=True, help="prompts file")
    p.add_argument("--out", required=True, help="output JSONL of completions")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    add_sampling_args(p, temperature=1.0, max_new_tokens=256)
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    """Read the prompts (before the slow model load, so a bad file fails fast), sample, write, and
    print the throughput."""
    from selftaught.data.formats import prompts_from_records
    from selftaught.data.sources import read_records, write_jsonl

    prompts = prompts_from_records(read_records(args.prompts, limit=args.limit), args.prompts)
    if not prompts:
        raise ValueError(f"{args.prompts} holds no prompt; nothing to generate")
    params = sampling(args)  # bad sampling flags fail before the model load
    engine = hf_engine(args)
    start = time.perf_counter()
    completions = engine.generate(prompts, params)
    rows = [c.to_dict() for cs in completions for c in cs]
    write_jsonl(args.out, rows)
    num_tokens = sum(len(r["token_ids"]) for r in rows)
    seconds = time.perf_counter() - start
    print(
        f"wrote {len(rows)} completions to {args.out} ({num_tokens} tokens, {seconds:.1f}s, "
        f"{num_tokens / max(seconds, 1e-9):.0f} tok/s)"
    )
    return 0
