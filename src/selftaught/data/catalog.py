"""One resolver for every data source a config can name.

    world:<name>[:<split>]   the tiny world's generated data (`selftaught.world.sources`)
    hf:<name>                a Hugging Face hub dataset (downloaded only because the user named it)
    gsm8k-rag:<split>:<path> a small RAG collection and its questions from a GSM8K train file
                             (`selftaught.data.gsm8k_rag`)
    a path                   JSONL, Parquet, a stage directory, or a `datasets` save_to_disk directory

Recipes read every source through `load_records` and never branch on the kind of source: a world
source and a user's file give records in the same (TRL) vocabulary.
"""

from __future__ import annotations

from typing import Any

from selftaught.data import gsm8k_rag
from selftaught.data.sources import read_records
from selftaught.world.sources import PREFIX, world_records


def load_records(source: str, *, limit: int | None = None, **world_options: Any) -> list[dict[str, Any]]:
    """The records of `source` (its first `limit`). `world_options` (`num`, `levels`, `seed`, ...)
    parametrise world sources; file sources ignore them."""
    if source.startswith(PREFIX):
        return world_records(source, **world_options)[:limit]
    if source.startswith(gsm8k_rag.PREFIX):
        return gsm8k_rag.gsm8k_rag_records(source)[:limit]
    return read_records(source, limit=limit)


def is_named(source: str) -> bool:
    """Whether `source` names generated records (a world or `gsm8k-rag:` source), not a file."""
    return source.startswith((PREFIX, gsm8k_rag.PREFIX))


def is_world(source: str) -> bool:
    """Whether `source` names generated tiny-world data."""
    return source.startswith(PREFIX)
