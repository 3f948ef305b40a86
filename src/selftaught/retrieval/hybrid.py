"""Hybrid retrieval: BM25 and dense rankings combined by reciprocal rank fusion (RRF).

    index = HybridIndex.build(passages)                # BM25 + all-MiniLM-L6-v2 over the same passages
    hits = index.search(["who wrote the first program?"], k=4)
    index.save("runs/hybrid"); HybridIndex.load("runs/hybrid")

RRF (Cormack, Clarke & Buettcher, SIGIR 2009) scores a passage by its ranks alone:

    score(p) = sum over rankings r that contain p of 1 / (rrf_k + rank_r(p))      (ranks from 1)

with the paper's constant `rrf_k = 60`, which damps the difference between the first few ranks so one
ranking's top hit does not dominate. Ranks rather than scores are fused because BM25 scores and
cosine similarities are on unrelated scales. Passages with equal scores in one ranking share its best
rank (scores 9, 5, 5, 2 -> ranks 1, 2, 2, 4), so the fusion does not depend on how a ranking ordered
its ties: a query whose words every passage matches equally leaves BM25 with no say. Each ranking is
cut at `depth` passages (default `max(k, 100)`, at most the corpus): a passage below that depth in
one ranking contributes nothing from it (nor do tied passages cut off at the depth). Equal fused
scores are ordered by passage order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from selftaught.retrieval.base import (
    Hit,
    check_k,
    check_queries,
    prepare_dir,
    read_manifest,
    write_manifest,
)
from selftaught.retrieval.bm25 import BM25Index
from selftaught.retrieval.dense import DenseIndex, EmbedFn

RRF_K = 60
"""The reciprocal-rank-fusion constant of Cormack et al. (2009), used as is by most hybrid retrievers."""
DEPTH = 100
"""Passages taken from each ranking before fusing (raised to `k` when `k` is larger)."""


class HybridIndex:
    """BM25 and dense retrieval over the same passages, fused by RRF."""

    def __init__(self, bm25: BM25Index, dense: DenseIndex, *, rrf_k: int = RRF_K, depth: int = DEPTH) -> None:
        """Fuse two indexes built over the same passages (same ids, same order)."""
        if bm25.ids != dense.ids:
            raise ValueError("the BM25 and dense indexes must hold the same passage ids in the same order")
        if rrf_k < 0 or depth < 1:
            raise ValueError(f"rrf_k must be >= 0 and depth >= 1, got rrf_k={rrf_k}, depth={depth}")
        self.bm25 = bm25
        self.dense = dense
        self.passages = bm25.passages
        self.ids = bm25.ids
        self.positions = {id_: position for position, id_ in enumerate(self.ids)}
        self.rrf_k = rrf_k
        self.depth = depth

    @classmethod
    def build(
        cls,
        passages: Sequence[dict[str, Any]],
        embed: EmbedFn | None = None,
        *,
        embedder_name: str | None = None,
        stopwords: str | list[str] | None = None,
        rrf_k: int = RRF_K,
        depth: int = DEPTH,
    ) -> HybridIndex:
        """A BM25 index (`stopwords`) and a flat dense index (`embed`, `embedder_name`; None =
        all-MiniLM-L6-v2) over `passages`. For an IVF dense index, build it and call the constructor."""
        bm25 = BM25Index.build(passages, stopwords=stopwords)
        dense = DenseIndex.build(passages, embed, embedder_name=embedder_name)
        return cls(bm25, dense, rrf_k=rrf_k, depth=depth)

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """The `k` best passages of each query by fused RRF score, best first; ties in passage order."""
        queries = check_queries(queries)
        check_k(k, len(self.passages))
        depth = min(len(self.passages), max(k, self.depth))
        bm25_hits = self.bm25.search(queries, depth)
        dense_hits = self.dense.search(queries, depth)
        return [
            reciprocal_rank_fusion([lexical, dense], self.positions, k, rrf_k=self.rrf_k)
            for lexical, dense in zip(bm25_hits, dense_hits, strict=True)
        ]

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write both indexes (`bm25/`, `dense/`), then the manifest (`rrf_k`, `depth`)."""
        path = prepare_dir(directory)
        self.bm25.save(path / "bm25")
        self.dense.save(path / "dense")
        write_manifest(path, "hybrid", num_passages=len(self.passages), rrf_k=self.rrf_k, depth=self.depth)

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        embed: EmbedFn | None = None,
        *,
        embedder_name: str | None = None,
    ) -> HybridIndex:
        """An index saved by `save`; `embed` / `embedder_name` as in `DenseIndex.load`."""
        path, manifest = read_manifest(directory, "hybrid")
        bm25 = BM25Index.load(path / "bm25")
        dense = DenseIndex.load(path / "dense", embed, embedder_name=embedder_name)
        return cls(bm25, dense, rrf_k=manifest["rrf_k"], depth=manifest["depth"])


def reciprocal_rank_fusion(
    rankings: Sequence[list[Hit]], positions: dict[str, int], k: int, *, rrf_k: int = RRF_K
) -> list[Hit]:
    """The `k` best passages by `sum 1 / (rrf_k + rank)` over `rankings` (each best first; equal scores
    share the best rank of their run); equal sums ordered by `positions` (passage id -> corpus position)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, hit in zip(shared_ranks(ranking), ranking, strict=True):
            fused[hit.id] = fused.get(hit.id, 0.0) + 1.0 / (rrf_k + rank)
    best = sorted(fused, key=lambda id_: (-fused[id_], positions[id_]))[:k]
    return [Hit(id=id_, score=fused[id_], rank=rank) for rank, id_ in enumerate(best, start=1)]


def shared_ranks(ranking: list[Hit]) -> list[int]:
    """Ranks from 1 of hits sorted best first, equal scores sharing the first rank of their run
    (competition ranking: 1, 2, 2, 4)."""
    ranks: list[int] = []
    for position, hit in enumerate(ranking, start=1):
        tied = position > 1 and hit.score == ranking[position - 2].score
        ranks.append(ranks[-1] if tied else position)
    return ranks
