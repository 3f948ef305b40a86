"""Passages attached to records (RA-DIT `retrieved_support`), their validation, and recall@k."""

import pytest

from selftaught.retrieval import BM25Index, Hit, attach_passages, check_retrieved_support, recall_at_k

pytest.importorskip("bm25s")

PASSAGES = [
    {"id": "a", "text": "Paris is the capital of France.", "title": "France"},
    {"id": "b", "text": "Rome is the capital of Italy.", "title": "Italy"},
    {"id": "c", "text": "Berlin is the capital of Germany.", "title": "Germany"},
]


@pytest.fixture(scope="module")
def index() -> BM25Index:
    return BM25Index.build(PASSAGES)


def test_attach_passages_adds_the_top_k_in_ra_dit_format_and_keeps_the_input(index):
    records = [
        {"question": "capital of Italy?", "answer": "Rome"},
        {"question": "Germany", "answer": "Berlin"},
    ]
    attached = attach_passages(records, index, k=2)
    assert "retrieved_support" not in records[0]
    assert attached[0]["answer"] == "Rome"
    support = attached[0]["retrieved_support"]
    assert [set(p) for p in support] == [{"id", "text", "score"}] * 2
    assert support[0]["id"] == "b" and support[0]["text"] == PASSAGES[1]["text"]
    assert support[0]["score"] > support[1]["score"]
    assert attached[1]["retrieved_support"][0]["id"] == "c"
    check_retrieved_support(attached)


def test_attach_passages_with_another_query_key_and_field(index):
    attached = attach_passages([{"prompt": "France"}], index, k=1, query_key="prompt", field="contexts")
    assert attached[0]["contexts"][0]["id"] == "a"


def test_a_record_without_its_query_is_an_error_naming_it(index):
    with pytest.raises(ValueError, match=r"record 1 has no string 'question'.*keys: \['prompt'\]"):
        attach_passages([{"question": "France"}, {"prompt": "Italy"}], index, k=1)


def test_a_record_that_already_has_passages_is_an_error(index):
    with pytest.raises(ValueError, match="record 0 already has 'retrieved_support'"):
        attach_passages([{"question": "France", "retrieved_support": []}], index, k=1)


def test_no_records_is_an_error(index):
    with pytest.raises(ValueError, match="at least one record"):
        attach_passages([], index, k=1)


def test_records_that_bring_their_own_passages_pass_the_check():
    check_retrieved_support([{"question": "q", "retrieved_support": [{"text": "t", "title": "x"}]}])
    check_retrieved_support([{"question": "q", "retrieved_support": []}])


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"question": "q"}, r"record 1 has no 'retrieved_support'"),
        ({"retrieved_support": "text"}, r"record 1: 'retrieved_support' must be a list of passages, got str"),
        (
            {"retrieved_support": [{"text": "ok"}, {"title": "t"}]},
            r"record 1: retrieved_support\[1\] must be a dict",
        ),
        ({"retrieved_support": ["text"]}, r"record 1: retrieved_support\[0\] must be a dict"),
        ({"retrieved_support": [{"text": 3}]}, r"record 1: retrieved_support\[0\] must be a dict"),
    ],
)
def test_malformed_retrieved_support_is_an_error_naming_the_record(record, match):
    with pytest.raises(ValueError, match=match):
        check_retrieved_support([{"retrieved_support": [{"text": "fine"}]}, record])


def hits(*ids: str) -> list[Hit]:
    return [Hit(id=i, score=1.0, rank=r) for r, i in enumerate(ids, start=1)]


def test_recall_at_k_by_hand():
    found = [hits("a", "b", "c"), hits("b", "a", "c"), hits("c", "b", "a")]
    assert recall_at_k(found, ["a", "a", "a"], k=1) == pytest.approx(1 / 3)
    assert recall_at_k(found, ["a", "a", "a"], k=2) == pytest.approx(2 / 3)
    assert recall_at_k(found, ["a", "a", "a"], k=3) == 1.0
    assert recall_at_k(found, [{"a", "b"}, {"a", "c"}, ["a"]], k=2) == pytest.approx((1 + 0.5 + 0) / 3)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([hits("a")], ["a"], 0), "k must be an int >= 1"),
        (([hits("a")], ["a", "b"], 1), "hits for 1 queries but gold ids for 2"),
        (([], [], 1), "at least one query"),
        (([hits("a")], [[]], 1), "query 0 has no gold passage ids"),
    ],
)
def test_recall_at_k_errors(args, match):
    with pytest.raises(ValueError, match=match):
        recall_at_k(*args)
