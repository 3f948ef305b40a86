"""Passages attached to records, in the RA-DIT format the rag-self-demos recipe reads.

    records = attach_passages(records, index, k=4)             # adds record["retrieved_support"]
    # [{"id": "p17", "text": "...", "score": 12.3}, ...]        best first
    check_retrieved_support(records)                           # records that came with passages

Records that already carry passages (RA-DIT's `retrieved_support`: a list of dicts with a `text`)
need no index: `check_retrieved_support` validates them and they are used as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from selftaught.retrieval.base import Retriever

SUPPORT_FIELD = "retrieved_support"
"""The RA-DIT name of a record's list of retrieved passages."""


def attach_passages(
    records: Sequence[dict[str, Any]],
    index: Retriever,
    k: int,
    *,
    query_key: str = "question",
    field: str = SUPPORT_FIELD,
) -> list[dict[str, Any]]:
    """Copies of `records`, each with `field` = its top-`k` passages for the query `record[query_key]`,
    as `[{"id", "text", "score"}]` best first. The input records are not modified.

    A record without a string `query_key`, or one that already has `field`, is an error naming its
    position (records that come with passages: use `check_retrieved_support` instead).
    """
    if not records:
        raise ValueError("attach_passages needs at least one record, got none")
    for position, record in enumerate(records):
        if not isinstance(record.get(query_key), str):
            raise ValueError(
                f"record {position} has no string {query_key!r} to search with "
                f"(keys: {sorted(record)}); pass query_key= the field that holds the query"
            )
        if field in record:
            raise ValueError(
                f"record {position} already has {field!r}: use the records as they are "
                f"(check_retrieved_support) or drop the field before retrieving again"
            )
    by_id = {passage["id"]: passage for passage in index.passages}
    hits = index.search([record[query_key] for record in records], k)
    return [
        {
            **record,
            field: [{"id": hit.id, "text": by_id[hit.id]["text"], "score": hit.score} for hit in record_hits],
        }
        for record, record_hits in zip(records, hits, strict=True)
    ]


def check_retrieved_support(records: Sequence[dict[str, Any]], field: str = SUPPORT_FIELD) -> None:
    """Check that every record has `field`: a list (possibly empty) of dicts with a string `text`.
    Errors name the record's position, and the passage's."""
    for position, record in enumerate(records):
        if field not in record:
            raise ValueError(
                f"record {position} has no {field!r} (keys: {sorted(record)}); attach passages with "
                f"attach_passages(records, index, k)"
            )
        support = record[field]
        if not isinstance(support, list):
            raise ValueError(
                f"record {position}: {field!r} must be a list of passages, got {type(support).__name__}"
            )
        for passage_position, passage in enumerate(support):
            if not isinstance(passage, dict) or not isinstance(passage.get("text"), str):
                raise ValueError(
                    f"record {position}: {field}[{passage_position}] must be a dict with a string "
                    f"'text', got {passage!r:.80}"
                )
