"""The argument errors every index shares: corpus, ids, k, queries, saved directories."""

import json

import pytest

from selftaught.retrieval import BM25Index, DenseIndex, HybridIndex
from tests.retrieval.conftest import table_embedder

pytest.importorskip("faiss")
pytest.importorskip("bm25s")

EMBED = table_embedder({"one": [1, 0], "two": [0, 1], "q": [1, 1]})
PASSAGES = [{"id": "1", "text": "one"}, {"id": "2", "text": "two"}]
BUILDERS = {
    "bm25": BM25Index.build,
    "dense": lambda passages: DenseIndex.build(passages, EMBED),
    "hybrid": lambda passages: HybridIndex.build(passages, EMBED),
}


@pytest.fixture(params=list(BUILDERS))
def build(request):
    return BUILDERS[request.param]


@pytest.mark.parametrize(
    ("passages", "error", "match"),
    [
        ([], ValueError, "empty corpus"),
        (
            [{"id": "1", "text": "one"}, {"id": "2", "text": "two"}, {"id": "1", "text": "q"}],
            ValueError,
            "duplicate passage id '1' at passages 0 and 2",
        ),
        (
            [{"id": "1", "text": "one"}, {"text": "two"}],
            ValueError,
            "passage 1 needs a string 'id', got nothing",
        ),
        ([{"id": 1, "text": "one"}], ValueError, "passage 0 needs a string 'id', got int"),
        ([{"id": "1", "text": None}], ValueError, "passage 0 needs a string 'text', got NoneType"),
        (["one"], TypeError, "passage 0 must be a dict"),
        ("one two", TypeError, "passages must be a list"),
    ],
)
def test_bad_corpora_are_errors(build, passages, error, match):
    with pytest.raises(error, match=match):
        build(passages)


@pytest.mark.parametrize(
    ("queries", "k", "error", "match"),
    [
        (["q"], 0, ValueError, "k must be >= 1, got 0"),
        (["q"], 3, ValueError, r"k=3 is larger than the corpus \(2 passages\); pass k <= 2"),
        (["q"], 1.0, TypeError, "k must be an int"),
        ([], 1, ValueError, "at least one query"),
        ("q", 1, TypeError, "wrap a single query in a list"),
        (["q", "  "], 1, ValueError, "query 1 must be a non-empty string"),
        (["q", None], 1, ValueError, "query 1 must be a non-empty string"),
    ],
)
def test_bad_searches_are_errors(build, queries, k, error, match):
    with pytest.raises(error, match=match):
        build(PASSAGES).search(queries, k)


def test_k_equal_to_the_corpus_returns_every_passage(build):
    assert sorted(hit.id for hit in build(PASSAGES).search(["q"], k=2)[0]) == ["1", "2"]


def test_a_saved_index_loads_only_with_its_own_class(tmp_path):
    BM25Index.build(PASSAGES).save(tmp_path / "bm25")
    with pytest.raises(ValueError, match="holds a 'bm25' index, not a 'dense' one"):
        DenseIndex.load(tmp_path / "bm25", EMBED)


def test_a_newer_format_version_is_refused(tmp_path):
    BM25Index.build(PASSAGES).save(tmp_path / "bm25")
    manifest_path = tmp_path / "bm25" / "manifest.json"
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "version": 99}))
    with pytest.raises(ValueError, match="format version 99 is newer"):
        BM25Index.load(tmp_path / "bm25")


def test_saving_over_an_index_replaces_it(tmp_path):
    BM25Index.build(PASSAGES).save(tmp_path / "i")
    BM25Index.build([{"id": "x", "text": "one"}]).save(tmp_path / "i")
    assert [p["id"] for p in BM25Index.load(tmp_path / "i").passages] == ["x"]
