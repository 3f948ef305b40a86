"""The latent-concept corpus (papers_B §5.10): tables from the world seed, batches a pure function
of (seed, step), sticky topics, the function-token share, and topic-conditioned bigrams."""

import numpy as np
import pytest

from selftaught.world.concepts import (
    ConceptWorld,
    build_concept_tokenizer,
    stream_batch,
    topic_mutual_information,
)


def test_batches_are_a_pure_function_of_seed_and_step():
    world = ConceptWorld()
    a, ta = stream_batch(world, 3, 7, 4, 64)
    b, tb = stream_batch(ConceptWorld(), 3, 7, 4, 64)
    assert np.array_equal(a, b) and np.array_equal(ta, tb)
    assert not np.array_equal(a, stream_batch(world, 3, 8, 4, 64)[0])
    assert a.shape == ta.shape == (4, 64) and a.dtype == np.int64
    assert a.min() >= 0 and a.max() < world.vocab_size and ta.max() < world.num_topics


def test_topics_are_sticky_and_tokens_follow_the_topic_tables():
    world = ConceptWorld()
    tokens, topics = world.sample(64, 256, np.random.default_rng(0))
    switch_rate = (topics[:, 1:] != topics[:, :-1]).mean()
    assert 0.02 < switch_rate < 0.07  # 0.05 redraws, 1/32 of which keep the topic
    function_share = (tokens < world.num_function).mean()
    assert 0.25 < function_share < 0.35
    support = world.tables[0]
    content = tokens >= world.num_function
    in_support = [tokens[i, t] in support[topics[i, t]] for i, t in zip(*np.nonzero(content), strict=True)]
    assert all(in_support)
    bigrams = world.topic_bigrams(int(topics[0, 5]))
    assert all(b in support[int(topics[0, 5])] for _, b in bigrams)


def test_bad_worlds_are_refused():
    with pytest.raises(ValueError, match="successors"):
        ConceptWorld(successors=30, topic_vocab=24)
    with pytest.raises(ValueError, match="num_function"):
        ConceptWorld(num_function=0)


def test_mutual_information_of_a_perfect_and_of_an_uninformative_latent():
    topics = np.repeat(np.arange(4), 25)
    perfect = topic_mutual_information(topics[:, None], topics, num_latents=4, num_topics=4)
    assert perfect["mi_bits"] == pytest.approx(2.0) and perfect["mi_share"] == pytest.approx(1.0)
    assert list(perfect["latent_purity"]) == [1.0] * 4
    constant = topic_mutual_information(np.zeros((100, 1), dtype=int), topics, num_latents=4, num_topics=4)
    assert constant["mi_bits"] == pytest.approx(0.0, abs=1e-12)


def test_the_tokenizer_maps_token_names_to_ids_and_back():
    tokenizer = build_concept_tokenizer(256)
    assert tokenizer("t5 t0 t255")["input_ids"] == [5, 0, 255]
    assert tokenizer.decode([5, 7]) == "t5 t7"
