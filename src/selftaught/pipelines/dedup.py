"""Near-duplicate removal for synthetic questions (NaturalReasoning, papers_A.md §1.1 step 6).

Two passes, each keeping the first of a group in input order and marking the later ones:

1. Surface duplicates: MinHash LSH (`datasketch`) over word 3-gram shingles; a question whose
   estimated Jaccard similarity with an earlier kept one is >= `minhash_threshold` (0.8) is a
   duplicate. The LSH index makes each query sub-linear.
2. Paraphrases ("same core task, different wording"): cosine similarity of unit-norm sentence
   embeddings (all-MiniLM-L6-v2, `models.embeddings.Embedder`) >= `threshold`, the paper's 0.55.
   The paper does not name its similarity; we use cosine of MiniLM embeddings because MiniLM is
   trained with a cosine objective (its vectors are L2-normalised, so similarity does not depend on
   text length). Measured on MiniLM: a paraphrase scores 0.92, the same task with other numbers
   ("a train covers 120 km in 2 h" vs "a car covers 300 km in 5 h") 0.63, unrelated questions
   0.0-0.2 (tests/pipelines/test_dedup_decontam.py), so 0.55 removes "same core task, different
   wording" as the paper says. (Two tiny-world questions of one family, `33-25-7` and `41+2-9`,
   score 0.62: the tiny presets use `hash_embed` at 0.97 instead.) Each question is compared
   with its `k` nearest neighbours from a faiss index (exact inner product up to `EXACT_LIMIT`
   vectors, HNSW above), never with every other question: a question is a duplicate of its most
   similar earlier neighbour that was kept.

Nothing is dropped silently: `mark_duplicates` annotates every record with `duplicate` (None, or
`{"of", "method", "similarity"}`), and `split_duplicates` returns the kept records and a report.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Record = dict[str, Any]
Embed = Callable[[Sequence[str]], np.ndarray]
"""Texts -> [N, dim] float32 rows of unit L2 norm."""
EXACT_LIMIT = 20_000
"""Up to this many vectors the neighbour search is exact (`IndexFlatIP`); above it, HNSW."""


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens."""
    return re.findall(r"\w+|[^\w\s]", text.lower())


def shingles(text: str, n: int = 3) -> set[str]:
    """Word n-grams of `text` (the whole text when it is shorter)."""
    tokens = words(text)
    return {" ".join(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))}


def minhash_duplicates(
    texts: Sequence[str], threshold: float = 0.8, *, num_perm: int = 128, seed: int = 1
) -> list[tuple[int, float] | None]:
    """For each text, `(index of the earlier kept text it duplicates, estimated Jaccard)` or None."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes: list[Any] = []
    result: list[tuple[int, float] | None] = []
    for index, text in enumerate(texts):
        minhash = MinHash(num_perm=num_perm, seed=seed)
        minhash.update_batch([s.encode() for s in shingles(text)])
        hashes.append(minhash)
        scored = [(minhash.jaccard(hashes[int(key)]), int(key)) for key in lsh.query(minhash)]
        scored = [(sim, j) for sim, j in scored if sim >= threshold]
        if scored:
            sim, j = max(scored, key=lambda s: (s[0], -s[1]))
            result.append((j, float(sim)))
        else:
            lsh.insert(str(index), minhash)
            result.append(None)
    return result


def neighbours(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`(similarities, indices)`, [N, k] each: every row's `k` nearest rows by inner product
    (itself included), from a faiss index; -1 indices where fewer exist."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    index: Any
    if len(vectors) <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = max(64, 2 * k)
    index.add(vectors)
    return index.search(vectors, min(k, len(vectors)))


def embedding_duplicates(
    vectors: np.ndarray, threshold: float = 0.55, *, k: int = 10, skip: Sequence[bool] | None = None
) -> list[tuple[int, float] | None]:
    """For each row, `(the earlier kept row it duplicates, cosine)` or None; rows marked in `skip`
    (already duplicates) are neither checked nor kept. Compares only each row's `k` neighbours."""
    if len(vectors) == 0:
        return []
    sims, ids = neighbours(vectors, k + 1)
    skip = list(skip) if skip is not None else [False] * len(vectors)
    kept = [False] * len(vectors)
    result: list[tuple[int, float] | None] = []
    for i in range(len(vectors)):
        if skip[i]:
            result.append(None)
            continue
        earlier = [(float(s), int(j)) for s, j in zip(sims[i], ids[i], strict=True) if 0 <= j < i and kept[j]]
        earlier = [(s, j) for s, j in earlier if s >= threshold]
        if earlier:
            sim, j = max(earlier, key=lambda e: (e[0], -e[1]))
            result.append((j, sim))
        else:
            kept[i] = True
            result.append(None)
    return result


def mark_duplicates(
    records: Sequence[Record],
    *,
    field: str = "question",
    minhash_threshold: float | None = 0.8,
    embed: Embed | None = None,
    threshold: float = 0.55,
    k: int = 10,
) -> list[Record]:
    """Every record with `duplicate`: None, or `{"of": id, "method": "minhash" | "embedding",
    "similarity"}`; MinHash first (when `minhash_threshold` is set), then embeddings (when `embed`)."""
    texts = [str(r[field]) for r in records]
    found: list[tuple[int, float, str] | None] = [None] * len(texts)
    if minhash_threshold is not None:
        for i, dup in enumerate(minhash_duplicates(texts, minhash_threshold)):
            found[i] = None if dup is None else (*dup, "minhash")
    if embed is not None and texts:
        skip = [f is not None for f in found]
        for i, dup in enumerate(embedding_duplicates(embed(texts), threshold, k=k, skip=skip)):
            if dup is not None:
                found[i] = (*dup, "embedding")
    return [
        {
            **r,
            "duplicate": None
            if f is None
            else {"of": records[f[0]]["id"], "method": f[2], "similarity": round(f[1], 4)},
        }
        for r, f in zip(records, found, strict=True)
    ]


def split_duplicates(marked: Sequence[Record]) -> tuple[list[Record], dict[str, Any]]:
    """The records that are no duplicate, and a report: counts by method and every removed record
    (`id`, the `of` it duplicates, method, similarity)."""
    kept = [r for r in marked if r["duplicate"] is None]
    removed = [{"id": r["id"], **r["duplicate"]} for r in marked if r["duplicate"] is not None]
    by_method = {m: sum(r["method"] == m for r in removed) for m in ("minhash", "embedding")}
    return kept, {
        "num_records": len(marked),
        "num_kept": len(kept),
        "removed": by_method,
        "removed_records": removed,
    }


def hash_embed(texts: Sequence[str], dim: int = 256) -> np.ndarray:
    """A cheap deterministic embedder (character 3-grams hashed into `dim` buckets, L2-normalised):
    surface similarity only, for tests and the tiny world, where MiniLM sees every question as alike."""
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        padded = f"  {text.lower()}  "
        for i in range(len(padded) - 2):
            bucket = int.from_bytes(
                hashlib.blake2b(padded[i : i + 3].encode(), digest_size=4).digest(), "little"
            )
            vectors[row, bucket % dim] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def embedder(name: str) -> Embed:
    """`minilm` (all-MiniLM-L6-v2 from PyPI) or `hash` (`hash_embed`)."""
    if name == "hash":
        return hash_embed
    if name == "minilm":
        from selftaught.models.embeddings import Embedder

        return Embedder().encode
    raise ValueError(f"embedder must be 'minilm' or 'hash', got {name!r}")
