"""What every index shares: passages, hits, argument checks, top-k with deterministic ties, the on-disk manifest.

A passage is a record `{"id": str, "text": str, ...}`; extra fields are kept (and saved) as they are.
A search returns, per query, `Hit`s best first. Ties in score are broken by passage order (the
passage given first wins), so the same index and queries always give the same hits.

A saved index is a directory: the index's own files, `passages.jsonl`, and `manifest.json` written
**last** (format name, kind, version, counts), so a directory without a manifest is not an index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from selftaught.data.sources import atomic_write, read_jsonl, write_jsonl

FORMAT = "selftaught-retrieval"
FORMAT_VERSION = 1
"""Bumped when a saved index can no longer be read by older code; `load` refuses newer versions."""
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
PROGRESS_MIN_TEXTS = 1000
"""Passes over at least this many texts (encoding, scoring queries) show a progress bar."""


@dataclass(frozen=True)
class Hit:
    """One retrieved passage for one query."""

    id: str
    """The passage's `id`."""
    score: float
    """The index's score: BM25 score, cosine similarity, or fused reciprocal-rank score (higher is better)."""
    rank: int
    """1 for the best hit of the query, 2 for the next, ..."""


class Retriever(Protocol):
    """What `attach_passages` and `HybridIndex` need from an index."""

    passages: list[dict[str, Any]]

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The top-`k` hits of each query, best first."""
        ...


def check_passages(passages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of `passages` (each record copied) after checking it is a non-empty list of records with
    a unique string `id` and a string `text`. Errors name the passage's position."""
    if isinstance(passages, (str, dict)) or not isinstance(passages, Sequence):
        raise TypeError(f"passages must be a list of {{'id', 'text'}} records, got {type(passages).__name__}")
    if not passages:
        raise ValueError("cannot build an index over an empty corpus: pass at least one passage")
    first_index: dict[str, int] = {}
    for index, passage in enumerate(passages):
        _check_passage(passage, index)
        if passage["id"] in first_index:
            raise ValueError(
                f"duplicate passage id {passage['id']!r} at passages {first_index[passage['id']]} and "
                f"{index}: passage ids must be unique"
            )
        first_index[passage["id"]] = index
    return [dict(passage) for passage in passages]


def _check_passage(passage: Any, index: int) -> None:
    if not isinstance(passage, dict):
        raise TypeError(f"passage {index} must be a dict with 'id' and 'text', got {type(passage).__name__}")
    for key in ("id", "text"):
        if not isinstance(passage.get(key), str):
            found = type(passage[key]).__name__ if key in passage else "nothing"
            raise ValueError(f"passage {index} needs a string {key!r}, got {found}")


def check_k(k: int, num_passages: int) -> None:
    """`k` must be an int in [1, num_passages]: asking for more passages than the corpus has is an
    error rather than a silent shorter list."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__} {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > num_passages:
        raise ValueError(
            f"k={k} is larger than the corpus ({num_passages} passages); pass k <= {num_passages}"
        )


def check_queries(queries: Sequence[str]) -> list[str]:
    """`queries` as a list, after checking it is a non-empty list of non-blank strings."""
    if isinstance(queries, str):
        raise TypeError("search takes a list of queries; wrap a single query in a list")
    queries = list(queries)
    if not queries:
        raise ValueError("search needs at least one query, got an empty list")
    for index, query in enumerate(queries):
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"query {index} must be a non-empty string, got {query!r:.80}")
    return queries


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` largest of `scores` [N], best first; equal scores in position order.

    O(N): a partition finds the k-th largest score, then only the scores at or above it are sorted.
    """
    num = len(scores)
    if k < num:
        threshold = np.partition(scores, num - k)[num - k]
        candidates = np.flatnonzero(scores >= threshold)
    else:
        candidates = np.arange(num)
    order = np.lexsort((candidates, -scores[candidates]))  # by score descending, then position
    return candidates[order[:k]]


def hits_from(ids: Sequence[str], positions: np.ndarray, scores: np.ndarray) -> list[Hit]:
    """`Hit`s for the passages at `positions` (best first) with their `scores`."""
    return [
        Hit(id=ids[int(position)], score=float(score), rank=rank)
        for rank, (position, score) in enumerate(zip(positions, scores, strict=True), start=1)
    ]


def prepare_dir(directory: str | os.PathLike[str]) -> Path:
    """Create `directory` and remove an old manifest, so a save that dies midway leaves no index."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / MANIFEST).unlink(missing_ok=True)
    return path


def save_passages(directory: Path, passages: list[dict[str, Any]]) -> None:
    write_jsonl(directory / PASSAGES, passages)


def load_passages(directory: Path) -> list[dict[str, Any]]:
    return check_passages(read_jsonl(directory / PASSAGES))


def write_manifest(directory: Path, kind: str, **fields: Any) -> None:
    """Write `manifest.json` (call it last: its presence marks a complete index)."""
    manifest = {"format": FORMAT, "kind": kind, "version": FORMAT_VERSION, **fields}
    with atomic_write(directory / MANIFEST) as f:
        json.dump(manifest, f, ensure_ascii=False, indent=2)
        f.write("\n")


def read_manifest(directory: str | os.PathLike[str], kind: str) -> tuple[Path, dict[str, Any]]:
    """The directory and manifest of a saved index of `kind` ("bm25", "dense", "hybrid")."""
    path = Path(directory)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{path} is not a saved {kind} index (no {MANIFEST}; was the save interrupted?)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    if manifest.get("kind") != kind:
        raise ValueError(
            f"{path} holds a {manifest.get('kind')!r} index, not a {kind!r} one: load it with its own class"
        )
    if not isinstance(manifest.get("version"), int) or manifest["version"] > FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path}: format version {manifest.get('version')!r} is newer than this selftaught "
            f"reads ({FORMAT_VERSION}); upgrade selftaught"
        )
    return path, manifest
