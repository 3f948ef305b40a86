"""Passages for the RAG self-demos from an index, as resumable stages (papers_A.md §4.1 step 1).

A retriever is named by a string: `records` (the records bring their own `retrieved_support`, the
RA-DIT format), or `<kind>:<path>` with kind `bm25`, `dense` (all-MiniLM-L6-v2 + faiss) or `hybrid`
(both, fused by RRF) and path either a passages file (JSONL / Parquet records with `id` and `text`),
a named source of them (`gsm8k-rag:passages:<GSM8K train.jsonl>`, `data.catalog`) or a directory of
an index saved by `selftaught.retrieval` (its `manifest.json` names the kind).

    spec = parse_retriever("bm25:passages.jsonl")                # ("bm25", "passages.jsonl")
    index = open_index(run / "index", spec)                       # built and saved once, then loaded
    records = retrieve(run / "retrieved-train", records, index, k=4)

A passages file (or named source) is indexed once into `<out_dir>/index` (`run_once`, keyed by the
kind and a hash of the file's bytes, or of the named source's records); a saved index is loaded from where it is. `retrieve` is a `run_stage`: the
records with the top-k passages of their `question`; it loads the index only when it has shards to
compute, so a finished run reads its records back without touching the index.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from selftaught.configs.recipes import RETRIEVER_KINDS
from selftaught.data.catalog import is_named, load_records
from selftaught.data.shards import compute_fingerprint, run_once, run_stage
from selftaught.pipelines.stages import Record
from selftaught.retrieval import SUPPORT_FIELD, BM25Index, DenseIndex, HybridIndex, Retriever, attach_passages
from selftaught.retrieval.base import read_manifest

INDEX_CLASSES: dict[str, Any] = {"bm25": BM25Index, "dense": DenseIndex, "hybrid": HybridIndex}
RELEVANCE_FIELD = "present"
"""A record's flag that its own passages state the answer; it says nothing about retrieved ones."""


def parse_retriever(spec: str) -> tuple[str, str] | None:
    """None for `records`, else `(kind, path)` from `<kind>:<path>`; a ValueError naming the forms."""
    if spec == "records":
        return None
    kind, colon, path = spec.partition(":")
    if not colon or kind not in RETRIEVER_KINDS or not path:
        raise ValueError(
            f"retriever must be `records` or `<kind>:<path>` with kind one of {list(RETRIEVER_KINDS)} and "
            f"path a passages file or a saved index directory (e.g. bm25:passages.jsonl), got {spec!r}"
        )
    return kind, path


def open_index(out_dir: str | os.PathLike[str], spec: tuple[str, str]) -> Callable[[], Retriever]:
    """A loader of the index `spec` names (loaded at most once, on first call): a saved index
    directory as it is, or a passages file indexed once into `out_dir/index` (`run_once`)."""
    kind, path = spec
    index_class = INDEX_CLASSES[kind]
    source = Path(path)
    if source.is_dir():
        read_manifest(source, kind)  # a saved index of another kind is an error now, not at first use
        return cache(lambda: index_class.load(source))
    if not (source.is_file() or is_named(path)):
        raise ValueError(f"retriever {kind}:{path}: no such passages file or saved index directory")
    built = Path(out_dir) / "index"

    def build() -> dict[str, Any]:
        passages = load_records(path)
        index_class.build(passages).save(built)
        return {"kind": kind, "source": path, "num_passages": len(passages)}

    def load() -> Retriever:
        run_once(out_dir, index_key(spec), build)
        return index_class.load(built)

    return cache(load)


def index_key(spec: tuple[str, str]) -> str:
    """What identifies the index: its kind and, for a passages file, a hash of its bytes; for a
    saved index, its directory's manifest; for a named source, a hash of its records."""
    kind, path = spec
    if is_named(path):
        return compute_fingerprint({"kind": kind, "passages": compute_fingerprint(load_records(path))})
    source = Path(path)
    if source.is_dir():
        content = (source / "manifest.json").read_bytes() if (source / "manifest.json").is_file() else b""
        return compute_fingerprint({"kind": kind, "index": str(source.resolve()), "manifest": content.hex()})
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return compute_fingerprint({"kind": kind, "passages": digest.hexdigest()})


def retrieve(
    out_dir: str | os.PathLike[str],
    records: Sequence[Record],
    index: Callable[[], Retriever],
    *,
    k: int,
    key: str,
    shard_size: int = 1024,
) -> list[Record]:
    """`records` with `retrieved_support` = the index's top-`k` passages for their `question`
    (`retrieval.attach_passages`), as a resumable stage keyed by `key` (`index_key`), `k` and the
    records. Passages a record brought are replaced, and so is its `present` flag (which described
    those passages): it is left out, so the record counts in the `all` cell only unless a relevance
    judge labels it."""
    inputs = [
        {name: value for name, value in record.items() if name not in (SUPPORT_FIELD, RELEVANCE_FIELD)}
        for record in records
    ]
    config = {"stage": "retrieve", "index": key, "k": k, "records": inputs}
    return run_stage(
        out_dir,
        inputs,
        lambda chunk: attach_passages(chunk, index(), k),
        shard_size=shard_size,
        fingerprint=compute_fingerprint(config),
        meta={"index": key, "k": k},
        desc=f"retrieve {Path(out_dir).name}",
    )
