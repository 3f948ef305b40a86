"""`selftaught generate`: sample completions for a prompts file, one JSON line per sample.

The samples are a resumable data stage (`<out>.stage/`, shards of `--shard-size` prompts): an
interrupted run keeps its finished shards and a rerun of the same command samples only the rest.
Each prompt's samples come from their own random stream (`SamplingParams.per_prompt_seeds`), so the
output does not depend on where a run was interrupted or how the prompts are sharded."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
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
        "generate",
        help="sample completions for a prompts file",
        description="Read prompts (JSONL/Parquet/dataset dir; columns `messages`, or "
        "`prompt` as text or messages, or `question`), write one JSON line per sample.",
    )
    add_model_arg(p)
    p.add_argument("--prompts", required=True, help="prompts file")
    p.add_argument("--out", required=True, help="output JSONL of completions")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--shard-size", type=int, default=64, help="prompts per resumable shard (default: 64)")
    add_sampling_args(p, temperature=1.0, max_new_tokens=256)
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    """Read the prompts (before the slow model load, so a bad file fails fast), sample, write, and
    print the throughput."""
    from selftaught.data.formats import prompts_from_records
    from selftaught.data.shards import compute_fingerprint, run_stage
    from selftaught.data.sources import read_records, write_jsonl

    require(args.limit is None or args.limit >= 1, "--limit", ">= 1", args.limit)
    require(args.shard_size >= 1, "--shard-size", ">= 1", args.shard_size)
    check_out_file("--out", args.out)
    params = replace(sampling(args), per_prompt_seeds=True)  # bad flags fail before the model load
    prompts = prompts_from_records(read_records(args.prompts, limit=args.limit), args.prompts)
    if not prompts:
        raise ValueError(f"{args.prompts} holds no prompt; nothing to generate")
    engine = hf_engine(args)
    start = time.perf_counter()
    fingerprint = compute_fingerprint(
        {"model": args.model, "prompts": [p.to_dict() for p in prompts], "sampling": vars(params)}
    )
    rows = run_stage(
        Path(args.out).with_name(Path(args.out).name + ".stage"),
        prompts,
        lambda chunk: [c.to_dict() for cs in engine.generate(chunk, params) for c in cs],
        shard_size=args.shard_size,
        fingerprint=fingerprint,
        meta={"model": args.model, "prompts": args.prompts},
        desc="generate",
    )
    write_jsonl(args.out, rows)
    num_tokens = sum(len(r["token_ids"]) for r in rows)
    seconds = time.perf_counter() - start
    print(
        f"wrote {len(rows)} completions to {args.out} ({num_tokens} tokens, {seconds:.1f}s, "
        f"{num_tokens / max(seconds, 1e-9):.0f} tok/s)"
    )
    return 0
