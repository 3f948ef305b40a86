"""Data: chat rendering to ids and loss masks, dataset sources, resumable sharded stages."""

from selftaught.data.chat import encode_prompt, encode_text, render_conversation, render_prompt
from selftaught.data.shards import compute_fingerprint, read_stage, run_stage, stage_is_complete
from selftaught.data.sources import (
    ReadReport,
    read_jsonl,
    read_jsonl_report,
    read_records,
    require_columns,
    write_jsonl,
)

__all__ = [
    "ReadReport",
    "compute_fingerprint",
    "encode_prompt",
    "encode_text",
    "read_jsonl",
    "read_jsonl_report",
    "read_records",
    "read_stage",
    "render_conversation",
    "render_prompt",
    "require_columns",
    "run_stage",
    "stage_is_complete",
    "write_jsonl",
]
