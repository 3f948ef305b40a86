"""BM25 (bm25s): recall on constructed data, tokenisation choices, ties, save/load."""

import json

import pytest

from selftaught.retrieval import BM25Index, recall_at_k
from tests.retrieval.conftest import NUM_ENTITIES, lexical_queries, paraphrase_queries

pytest.importorskip("bm25s")


@pytest.fixture(scope="module")
def index(passages) -> BM25Index:
    return BM25Index.build(passages)


def gold(num: int = NUM_ENTITIES) -> list[str]:
    return [f"e{i}" for i in range(num)]


def test_a_query_sharing_its_rare_word_with_one_passage_finds_it_first(index):
    hits = index.search(lexical_queries(), k=5)
    assert recall_at_k(hits, gold(), k=1) == 1.0
    assert [len(h) for h in hits] == [5] * NUM_ENTITIES
    assert [hit.rank for hit in hits[0]] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for h in hits for a, b in zip(h, h[1:], strict=False))


def test_a_paraphrase_with_no_shared_rare_word_ties_everywhere_and_falls_back_to_passage_order(index):
    hits = index.search(paraphrase_queries(), k=3)
    # Every passage matches the query's common words equally: the first three passages, in order.
    assert all([hit.id for hit in h] == ["e0", "e1", "e2"] for h in hits)
    assert len({hit.score for h in hits for hit in h}) == 1
    assert recall_at_k(hits, gold(), k=1) == pytest.approx(1 / NUM_ENTITIES)


def test_equal_scores_are_ordered_by_passage_order_whatever_the_ids():
    passages = [{"id": name, "text": "the same words"} for name in ["zeta", "alpha", "mid", "beta"]]
    passages.append({"id": "other", "text": "something else entirely"})
    index = BM25Index.build(passages)
    first = index.search(["same words"], k=4)
    assert [hit.id for hit in first[0]] == ["zeta", "alpha", "mid", "beta"]
    assert index.search(["same words"], k=4) == first


def test_a_query_with_no_known_word_gets_the_first_passages_with_score_zero(index):
    hits = index.search(["unknownword"], k=2)[0]
    assert [(hit.id, hit.score) for hit in hits] == [("e0", 0.0), ("e1", 0.0)]


def test_single_characters_are_tokens_and_case_is_ignored():
    index = BM25Index.build([{"id": "a", "text": "x is 7"}, {"id": "b", "text": "x is 8"}])
    assert index.search(["X IS 8"], k=1)[0][0].id == "b"


def test_stopwords_are_kept_by_default_and_dropped_on_request():
    passages = [{"id": "a", "text": "the author"}, {"id": "b", "text": "an author"}]
    assert BM25Index.build(passages).search(["an author"], k=1)[0][0].id == "b"
    dropped = BM25Index.build(passages, stopwords="en").search(["an author"], k=2)[0]
    # Only "author" is left, once in each passage: a tie, broken by passage order.
    assert [hit.id for hit in dropped] == ["a", "b"] and dropped[0].score == dropped[1].score


def test_save_and_load_give_identical_hits_and_keep_extra_fields(index, tmp_path):
    index.save(tmp_path / "bm25")
    loaded = BM25Index.load(tmp_path / "bm25")
    queries = lexical_queries(20) + paraphrase_queries(20)
    assert loaded.search(queries, k=7) == index.search(queries, k=7)
    assert loaded.passages == index.passages and loaded.passages[3]["n"] == 3
    manifest = json.loads((tmp_path / "bm25" / "manifest.json").read_text())
    assert (
        manifest["kind"] == "bm25" and manifest["version"] == 1 and manifest["num_passages"] == NUM_ENTITIES
    )


def test_stopwords_are_saved_with_the_index(tmp_path):
    passages = [{"id": "a", "text": "the cat"}, {"id": "b", "text": "a dog"}]
    BM25Index.build(passages, stopwords="en").save(tmp_path / "i")
    assert BM25Index.load(tmp_path / "i").stopwords == "en"


def test_loading_a_directory_that_is_not_an_index_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a saved bm25 index"):
        BM25Index.load(tmp_path)
