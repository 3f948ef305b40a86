"""Constructed corpora and cheap deterministic embedders for the retrieval tests."""

from __future__ import annotations

import re

import numpy as np
import pytest

NUM_ENTITIES = 200


def attribute(i: int) -> str:
    """A word that appears in passage i only."""
    return f"trait{i:03d}x"


def synonym(i: int) -> str:
    """A word with the meaning of `attribute(i)` that appears in no passage."""
    return f"quirk{i:03d}y"


def entity_passages(num: int = NUM_ENTITIES) -> list[dict]:
    """`num` passages of one template; passage i alone holds `attribute(i)`."""
    return [
        {
            "id": f"e{i}",
            "text": f"Entity E{i} lives in a house and is known for the quality {attribute(i)}.",
            "n": i,
        }
        for i in range(num)
    ]


def lexical_queries(num: int = NUM_ENTITIES) -> list[str]:
    """Query i shares its rare word with passage i only (the rest is words every passage has)."""
    return [f"which entity is known for the quality {attribute(i)}?" for i in range(num)]


def paraphrase_queries(num: int = NUM_ENTITIES) -> list[str]:
    """Query i means passage i but says it with `synonym(i)`, a word no passage has."""
    return [f"which entity is known for the quality {synonym(i)}?" for i in range(num)]


class SynonymEmbedder:
    """Bag of words over a fixed vocabulary, with each `synonym(i)` counted as `attribute(i)`: a
    stand-in for an embedder that knows paraphrases. Integer counts, so results are exact."""

    def __init__(self, num: int = NUM_ENTITIES) -> None:
        words = sorted({w for p in entity_passages(num) for w in re.findall(r"\w+", p["text"].lower())})
        self.vocab = {word: position for position, word in enumerate(words)}
        self.canonical = {synonym(i): attribute(i) for i in range(num)}
        self.num_calls = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.num_calls += 1
        vectors = np.zeros((len(texts), len(self.vocab)), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                position = self.vocab.get(self.canonical.get(word, word))
                if position is not None:
                    vectors[row, position] += 1
        return vectors


def table_embedder(table: dict[str, list[float]]):
    """An embedder that looks each text up in `table`."""

    def embed(texts: list[str]) -> np.ndarray:
        return np.array([table[text] for text in texts], dtype=np.float32)

    return embed


@pytest.fixture(scope="module")
def passages() -> list[dict]:
    return entity_passages()


@pytest.fixture(scope="module")
def synonym_embedder() -> SynonymEmbedder:
    return SynonymEmbedder()
