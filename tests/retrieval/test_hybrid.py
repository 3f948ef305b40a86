"""Hybrid retrieval: reciprocal rank fusion checked by hand, ties, save/load."""

import pytest

from selftaught.retrieval import BM25Index, DenseIndex, Hit, HybridIndex, recall_at_k, reciprocal_rank_fusion
from tests.retrieval.conftest import NUM_ENTITIES, lexical_queries, paraphrase_queries, table_embedder

pytest.importorskip("faiss")
pytest.importorskip("bm25s")

FOUR = [
    {"id": "p0", "text": "apple banana"},
    {"id": "p1", "text": "apple"},
    {"id": "p2", "text": "apple banana cherry"},
    {"id": "p3", "text": "durian"},
]
QUERY = "apple banana cherry?"
EMBED = table_embedder(
    {
        "apple banana": [1, 0, 0],  # cosine with the query: 1
        "apple": [0, 0, 1],  # 0
        "apple banana cherry": [0.6, 0.8, 0],  # 0.6
        "durian": [0.8, 0.6, 0],  # 0.8
        QUERY: [1, 0, 0],
    }
)


def test_fusion_of_four_passages_matches_the_sum_by_hand():
    bm25, dense = BM25Index.build(FOUR), DenseIndex.build(FOUR, EMBED)
    assert [h.id for h in bm25.search([QUERY], k=4)[0]] == ["p2", "p0", "p1", "p3"]
    assert [h.id for h in dense.search([QUERY], k=4)[0]] == ["p0", "p3", "p2", "p1"]
    expected = {
        "p0": 1 / 62 + 1 / 61,  # BM25 rank 2, dense rank 1
        "p2": 1 / 61 + 1 / 63,  # 1, 3
        "p3": 1 / 64 + 1 / 62,  # 4, 2
        "p1": 1 / 63 + 1 / 64,  # 3, 4
    }
    hits = HybridIndex(bm25, dense).search([QUERY], k=4)[0]
    assert [h.id for h in hits] == ["p0", "p2", "p3", "p1"]
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert [h.score for h in hits] == pytest.approx([expected[h.id] for h in hits], abs=1e-15)


def test_fusion_with_a_shallow_depth_counts_only_the_ranks_it_sees():
    bm25, dense = BM25Index.build(FOUR), DenseIndex.build(FOUR, EMBED)
    hits = HybridIndex(bm25, dense, depth=2).search([QUERY], k=2)[0]
    # BM25 top 2: p2, p0; dense top 2: p0, p3.
    assert [(h.id, h.score) for h in hits] == [("p0", 1 / 62 + 1 / 61), ("p2", 1 / 61)]


def test_equal_fused_scores_are_ordered_by_passage_order():
    positions = {"late": 2, "early": 0, "mid": 1}
    first = [Hit("late", 9.0, 1), Hit("early", 5.0, 2)]
    second = [Hit("early", 0.9, 1), Hit("late", 0.1, 2), Hit("mid", 0.0, 3)]
    fused = reciprocal_rank_fusion([first, second], positions, k=3)
    assert [h.id for h in fused] == ["early", "late", "mid"]  # early and late both 1/61 + 1/62
    assert fused[0].score == fused[1].score == 1 / 61 + 1 / 62
    assert fused[2].score == 1 / 63


def test_passages_tied_in_one_ranking_share_its_rank():
    positions = {"a": 0, "b": 1, "c": 2, "d": 3}
    tied = [Hit("a", 9.0, 1), Hit("b", 5.0, 2), Hit("c", 5.0, 3), Hit("d", 2.0, 4)]
    fused = {h.id: h.score for h in reciprocal_rank_fusion([tied], positions, k=4)}
    assert fused == {"a": 1 / 61, "b": 1 / 62, "c": 1 / 62, "d": 1 / 64}


def test_hybrid_finds_both_lexical_and_paraphrase_queries(passages, synonym_embedder):
    # depth = the corpus: on a paraphrase every passage ties in BM25, so all share BM25 rank 1 and
    # the dense ranking decides (a shallower cut would keep only the first passages' BM25 share).
    index = HybridIndex.build(passages, synonym_embedder, embedder_name="synonyms", depth=NUM_ENTITIES)
    gold = [f"e{i}" for i in range(NUM_ENTITIES)]
    assert recall_at_k(index.search(lexical_queries(), k=1), gold, k=1) == 1.0
    assert recall_at_k(index.search(paraphrase_queries(), k=1), gold, k=1) == 1.0


def test_save_and_load_give_identical_hits(passages, synonym_embedder, tmp_path):
    index = HybridIndex.build(passages, synonym_embedder, embedder_name="synonyms", rrf_k=10, depth=20)
    index.save(tmp_path / "hybrid")
    loaded = HybridIndex.load(tmp_path / "hybrid", synonym_embedder, embedder_name="synonyms")
    queries = lexical_queries(20) + paraphrase_queries(20)
    assert (loaded.rrf_k, loaded.depth) == (10, 20)
    assert loaded.search(queries, k=5) == index.search(queries, k=5)


def test_indexes_over_different_passages_cannot_be_fused():
    other = [dict(p, id=p["id"] + "x") for p in FOUR]
    with pytest.raises(ValueError, match="same passage ids in the same order"):
        HybridIndex(BM25Index.build(FOUR), DenseIndex.build(other, EMBED))
