"""Decontamination of synthetic questions against evaluation sets (NaturalReasoning, papers_A.md
§1.1 step 7): 13-gram overlap, then embedding similarity.

- n-gram overlap: a question is contaminated when it shares a word n-gram (n = 13, lower-cased word
  and punctuation tokens) with an evaluation item. A text shorter than n tokens is one gram (its
  whole token sequence), so a short question equal to a short evaluation item is caught too, and
  a short question inside a long item is not (the standard 13-gram rule reads no shorter overlap).
- embedding similarity: a question whose cosine similarity to its nearest evaluation item (a faiss
  inner-product index over unit-norm embeddings) is >= `threshold` is contaminated (the paper
  removes questions "similar to" MATH, GPQA, MMLU-Pro; it gives no threshold: ours is a knob).

`mark_contamination` annotates every record with `contamination` (None, or `{"eval", "item",
"method", "similarity"}`); `split_contaminated` gives the clean records and a report of what was
removed and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from selftaught.pipelines.dedup import Embed, words

Record = dict[str, Any]
NGRAM = 13


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The word n-grams of `text`; its whole token sequence when it has fewer than `n` tokens."""
    tokens = words(text)
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def ngram_index(evals: Mapping[str, Sequence[str]], n: int = NGRAM) -> dict[tuple[str, ...], tuple[str, int]]:
    """Every n-gram of every evaluation item -> (eval name, item index) of its first occurrence."""
    index: dict[tuple[str, ...], tuple[str, int]] = {}
    for name, texts in evals.items():
        for i, text in enumerate(texts):
            for gram in ngrams(text, n):
                index.setdefault(gram, (name, i))
    return index


def mark_contamination(
    records: Sequence[Record],
    evals: Mapping[str, Sequence[str]],
    *,
    field: str = "question",
    n: int = NGRAM,
    embed: Embed | None = None,
    threshold: float | None = None,
) -> list[Record]:
    """Every record with `contamination`: the first n-gram hit, else (with `embed` and `threshold`)
    the nearest evaluation item when its cosine is >= `threshold`, else None."""
    index = ngram_index(evals, n)
    found: list[dict[str, Any] | None] = []
    for record in records:
        hit = next((index[g] for g in sorted(ngrams(str(record[field]), n)) if g in index), None)
        found.append(
            None
            if hit is None
            else {"eval": hit[0], "item": hit[1], "method": f"{n}-gram", "similarity": 1.0}
        )
    if embed is not None and threshold is not None:
        for i, near in enumerate(_nearest_items(records, evals, field, embed)):
            if found[i] is None and near is not None and near["similarity"] >= threshold:
                found[i] = {**near, "method": "embedding"}
    return [{**r, "contamination": c} for r, c in zip(records, found, strict=True)]


def _nearest_items(
    records: Sequence[Record], evals: Mapping[str, Sequence[str]], field: str, embed: Embed
) -> list[dict[str, Any] | None]:
    """Each record's most similar evaluation item `{"eval", "item", "similarity"}` (faiss, exact)."""
    import faiss

    owners = [(name, i) for name, texts in evals.items() for i in range(len(texts))]
    if not owners or not records:
        return [None] * len(records)
    items = embed([text for texts in evals.values() for text in texts])
    index = faiss.IndexFlatIP(items.shape[1])
    index.add(np.ascontiguousarray(items, dtype=np.float32))
    sims, ids = index.search(
        np.ascontiguousarray(embed([str(r[field]) for r in records]), dtype=np.float32), 1
    )
    return [
        {"eval": owners[j][0], "item": owners[j][1], "similarity": round(float(s), 4)}
        for s, j in zip(sims[:, 0], ids[:, 0], strict=True)
    ]


def split_contaminated(
    marked: Sequence[Record], field: str = "question"
) -> tuple[list[Record], dict[str, Any]]:
    """The clean records, and a report: removed counts by eval and method, and each removed record
    (`id`, its text, eval, item index, method, similarity)."""
    clean = [r for r in marked if r["contamination"] is None]
    removed = [
        {"id": r["id"], "text": r[field], **r["contamination"]}
        for r in marked
        if r["contamination"] is not None
    ]
    by_cause: dict[str, int] = {}
    for r in removed:
        key = f"{r['eval']} / {r['method']}"
        by_cause[key] = by_cause.get(key, 0) + 1
    return clean, {
        "num_records": len(marked),
        "num_clean": len(clean),
        "removed": by_cause,
        "removed_records": removed,
    }
