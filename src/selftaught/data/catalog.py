"""One resolver for every data source a config can name.

    world:<name>[:<split>]   the tiny world's generated data (`selftaught.world.sources`)
    hf:<name>                a Hugging Face hub dataset (downloaded only because the user named it)
    a path                   JSONL, Parquet, a stage directory, or a `datasets` save_to_disk directory

Recipes read every source through `load_records` and never branch on the kind of source: a world
source and a user's file give records in the same (TRL) vocabulary.
"""

from __future__ import annotations

from typing import Any

from selftaught.data.sources import read_records
from selftaught.world.sources import PREFIX, world_records


def load_records(source: str, *, limit: int | None = None, **world_options: Any) -> list[dict[str, Any]]:
    """The records of `source` (its first `limit`). `world_options` (`num`, `levels`, `seed`, ...)
    parametrise world sources; file sources ignore them."""
    if source.startswith(PREFIX):
        return world_records(source, **world_options)[:limit]
    return read_records(source, limit=limit)


def is_world(source: str) -> bool:
    """Whether `source` names generated tiny-world data."""
    return source.startswith(PREFIX)
