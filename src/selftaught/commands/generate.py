"""`selftaught generate`: sample completions for a prompts file, one JSON line per sample.

Input: prompt-only records (JSONL, Parquet, a `datasets` directory or a stage directory): `prompt`
as text or as a list of messages (TRL's prompt-only format), or `messages` (assistant turns
dropped), or GSM8K's `question`; optional `id` (default: the record's index). A text prompt is sent
as one user turn through the model's chat template when its tokenizer has one, and as raw text
(BOS first) when it has none or with `--no-chat-template`; messages always go through the chat
template (the tokenizer's, else a plain default).

Output: one TRL prompt/completion record per sample (`data.formats.prompt_completion_record`):
`prompt` and `completion` as strings for a raw-text prompt, as messages (`completion`: one assistant
turn) for a chat one, then `prompt_id`, `text`, `token_ids`, `logprobs`, `finish_reason`,
`policy_version` and `meta` (the sample index and seed).

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
        description="Read prompt-only records (JSONL, Parquet or a dataset directory): `prompt` as text "
        "or as a list of {role, content} messages (or `messages`, or GSM8K `question`), optional `id` "
        "(default: the record's index). A text prompt is sent as one user turn through the model's chat "
        "template when the tokenizer has one (raw text when it has none, or with --no-chat-template); "
        "messages always go through the chat template. Write one JSON line per sample: a TRL "
        "prompt/completion record (`prompt` and `completion` as text for a raw prompt, as messages for a "
        "chat one) with `prompt_id`, `text`, `token_ids`, `logprobs`, `finish_reason`, `meta`.",
    )
    add_model_arg(p)
    p.add_argument(
        "--prompts",
        required=True,
        help="prompt-only records: a JSONL or Parquet file, or a dataset directory",
    )
    p.add_argument("--out", required=True, help="output JSONL: one prompt/completion record per sample")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--shard-size", type=int, default=64, help="prompts per resumable shard (default: 64)")
    p.add_argument(
        "--no-chat-template",
        action="store_true",
        help="send text prompts as raw text (BOS first) even when the tokenizer has a chat template "
        "(base models, few-shot prompts); message prompts still use the template",
    )
    p.add_argument(
        "--adaptive-head",
        default=None,
        metavar="DIR",
        help="an adaptive-decoding head (`selftaught adaptive-decoding`'s <out_dir>/head): it picks the "
        "temperature of each sample (or token) and replaces --temperature; each record's meta holds the "
        "chosen temperatures",
    )
    p.add_argument(
        "--sample-head",
        action="store_true",
        help="with --adaptive-head: sample the head's choice (default: its argmax temperature)",
    )
    add_sampling_args(p, temperature=1.0, max_new_tokens=256)
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    """Read the prompts (before the slow model load, so a bad file fails fast), sample, write, and
    print the throughput."""
    from selftaught.data.formats import prompt_completion_record, prompts_from_records
    from selftaught.data.shards import compute_fingerprint, run_stage
    from selftaught.data.sources import read_records, write_jsonl

    require(args.limit is None or args.limit >= 1, "--limit", ">= 1", args.limit)
    require(args.shard_size >= 1, "--shard-size", ">= 1", args.shard_size)
    check_out_file("--out", args.out)
    params = replace(sampling(args), per_prompt_seeds=True)  # bad flags fail before the model load
    prompts = prompts_from_records(read_records(args.prompts, limit=args.limit), args.prompts)
    if not prompts:
        raise ValueError(f"{args.prompts} holds no prompt; nothing to generate")
    head = load_head(args.adaptive_head, args.sample_head)
    engine = hf_engine(args)
    if head is not None:
        hidden = engine.model.config.get_text_config().hidden_size
        if head.hidden_size != hidden:
            raise ValueError(
                f"--adaptive-head {args.adaptive_head} reads hidden states of size {head.hidden_size}, but "
                f"{args.model} has {hidden}: use a head trained over this model"
            )
        engine.temperature_head, engine.head_sample = head, args.sample_head
    prompts = chat_or_raw(prompts, engine.tokenizer, no_chat_template=args.no_chat_template)
    start = time.perf_counter()
    fingerprint = compute_fingerprint(
        {
            "model": args.model,
            "prompts": [p.to_dict() for p in prompts],
            "sampling": vars(params),
            **(
                {"adaptive_head": str(Path(args.adaptive_head).resolve()), "sample_head": args.sample_head}
                if head
                else {}
            ),
        }
    )
    rows = run_stage(
        Path(args.out).with_name(Path(args.out).name + ".stage"),
        prompts,
        lambda chunk: [
            prompt_completion_record(p, c)
            for p, cs in zip(chunk, engine.generate(chunk, params), strict=True)
            for c in cs
        ],
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


def load_head(directory: str | None, sample_head: bool) -> Any:
    """The adaptive head saved in `directory` (None without one); `--sample-head` needs a head."""
    if directory is None:
        require(not sample_head, "--sample-head", "used with --adaptive-head", sample_head)
        return None
    from selftaught.models.adaptive import AdaptiveDecoder

    return AdaptiveDecoder.load(directory)


def chat_or_raw(prompts: list[Any], tokenizer: Any, *, no_chat_template: bool) -> list[Any]:
    """The prompts as the model gets them: text prompts become one user turn (`as_chat`) when the
    tokenizer has a chat template and `--no-chat-template` is off; otherwise they stay raw text."""
    from selftaught.data.formats import as_chat

    if no_chat_template or not getattr(tokenizer, "chat_template", None):
        return prompts
    return [as_chat(p) for p in prompts]
