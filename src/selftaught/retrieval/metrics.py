"""Retrieval quality: recall@k against gold passage ids."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from selftaught.retrieval.base import Hit


def recall_at_k(hits: Sequence[Sequence[Hit]], gold_ids: Sequence[str | Collection[str]], k: int) -> float:
    """Mean over queries of the fraction of a query's gold passages found in its top `k` hits.

    `hits[i]`: query i's hits, best first (as `search` returns them); `gold_ids[i]`: its gold passage
    id, or a collection of them. With one gold passage per query this is the top-k accuracy that
    dense-retrieval papers (DPR) call recall@k.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    if len(hits) != len(gold_ids):
        raise ValueError(f"got hits for {len(hits)} queries but gold ids for {len(gold_ids)}")
    if not hits:
        raise ValueError("recall_at_k needs at least one query, got none")
    total = 0.0
    for position, (query_hits, gold) in enumerate(zip(hits, gold_ids, strict=True)):
        gold_set = {gold} if isinstance(gold, str) else set(gold)
        if not gold_set:
            raise ValueError(f"query {position} has no gold passage ids")
        found = {hit.id for hit in query_hits[:k]}
        total += len(gold_set & found) / len(gold_set)
    return total / len(hits)
