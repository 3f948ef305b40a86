"""A corpus with latent concepts for CoCoMix (papers_B §5.10), generated on the fly.

Each document is a walk of a *sticky latent topic*: at every token the topic is kept, or with
probability `switch_prob` redrawn uniformly. Given the topic, a token is

  - with probability `function_prob` a shared *function* token (ids `0 .. num_function-1`), drawn
    from a Zipf distribution that does not depend on the topic, else
  - a *content* token from the topic's sparse bigram table: the row of the previous token lists
    `successors` tokens of the topic's own support (`topic_vocab` content tokens, a random subset
    of the content ids, overlapping between topics) with Dirichlet weights.

The next token's law depends on the hidden topic, so next-token loss rewards inferring it from the
context: a teacher's residual stream should carry the topic, and SAE latents should align with the
topics (measured by `topic_mutual_information`). The tables depend only on `ConceptWorld.seed`; the
documents on the numpy generator the caller passes, so a training stream is a pure function of
(seed, step).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class ConceptWorld:
    """The generative process; tables are built lazily from `seed`."""

    vocab_size: int = 256
    num_topics: int = 32
    num_function: int = 32
    """Shared function tokens (the first ids)."""
    topic_vocab: int = 24
    """Content tokens each topic can emit."""
    successors: int = 4
    """Non-zero entries per row of a topic's bigram table."""
    switch_prob: float = 0.05
    function_prob: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        content = self.vocab_size - self.num_function
        if not 0 < self.num_function < self.vocab_size:
            raise ValueError(f"num_function must be in (0, vocab_size), got {self.num_function}")
        if not 0 < self.successors <= self.topic_vocab <= content:
            raise ValueError(
                f"need 0 < successors ({self.successors}) <= topic_vocab ({self.topic_vocab}) <= "
                f"content tokens ({content})"
            )
        if not (0 <= self.switch_prob <= 1 and 0 <= self.function_prob < 1):
            raise ValueError("switch_prob must be in [0, 1] and function_prob in [0, 1)")

    @cached_property
    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`(support [K, topic_vocab], next_tokens [K, V, successors], next_cdf [K, V, successors],
        function_cdf [num_function])`."""
        rng = np.random.default_rng(self.seed)
        content = np.arange(self.num_function, self.vocab_size)
        support = np.stack(
            [rng.choice(content, self.topic_vocab, replace=False) for _ in range(self.num_topics)]
        )
        shape = (self.num_topics, self.vocab_size, self.successors)
        next_tokens = np.empty(shape, dtype=np.int64)
        for k in range(self.num_topics):
            for v in range(self.vocab_size):
                next_tokens[k, v] = rng.choice(support[k], self.successors, replace=False)
        weights = rng.dirichlet(np.full(self.successors, 0.5), size=shape[:2])
        ranks = np.arange(1, self.num_function + 1, dtype=np.float64)
        function_p = 1.0 / ranks
        return support, next_tokens, np.cumsum(weights, -1), np.cumsum(function_p / function_p.sum())

    def sample(
        self, num_sequences: int, length: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """`(tokens [N, length], topics [N, length])`: int64 token ids and the topic behind each."""
        _, next_tokens, next_cdf, function_cdf = self.tables
        tokens = np.empty((num_sequences, length), dtype=np.int64)
        topics = np.empty((num_sequences, length), dtype=np.int64)
        topic = rng.integers(self.num_topics, size=num_sequences)
        prev = rng.integers(self.num_function, size=num_sequences)  # a function token starts a document
        for t in range(length):
            switch = rng.random(num_sequences) < self.switch_prob
            topic = np.where(switch, rng.integers(self.num_topics, size=num_sequences), topic)
            cdf = next_cdf[topic, prev]  # [N, successors]
            pick = (rng.random((num_sequences, 1)) > cdf).sum(-1).clip(max=self.successors - 1)
            content = next_tokens[topic, prev, pick]
            function = np.searchsorted(function_cdf, rng.random(num_sequences)).clip(
                max=self.num_function - 1
            )
            is_function = rng.random(num_sequences) < self.function_prob
            prev = np.where(is_function, function, content)
            tokens[:, t], topics[:, t] = prev, topic
        return tokens, topics

    def topic_bigrams(self, topic: int) -> set[tuple[int, int]]:
        """The (previous, next) content pairs topic `topic` can emit."""
        _, next_tokens, _, _ = self.tables
        return {(v, int(n)) for v in range(self.vocab_size) for n in next_tokens[topic, v]}


def stream_batch(
    world: ConceptWorld, data_seed: int, step: int, num_sequences: int, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """The `step`-th batch of a training stream: a pure function of (world, data_seed, step)."""
    return world.sample(num_sequences, length, np.random.default_rng([data_seed, step]))


def topic_mutual_information(
    latents: np.ndarray, topics: np.ndarray, num_latents: int, num_topics: int
) -> dict:
    """How well SAE latents carry the topic, from `latents [N, k]` (the active latent ids at N
    positions) and `topics [N]`.

    Returns `mi_bits`: I(topic; strongest latent) with the strongest latent the first column of
    `latents`, `topic_entropy_bits`, their ratio `mi_share`, and per latent its best topic and
    purity P(best topic | latent strongest) (`latent_topic`, `latent_purity`, `latent_count`).
    """
    joint = np.zeros((num_latents, num_topics))
    np.add.at(joint, (latents[:, 0], topics), 1.0)
    p = joint / joint.sum()
    p_latent, p_topic = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    mi = float((p[nz] * np.log2(p[nz] / (p_latent @ p_topic)[nz])).sum())
    h_topic = float(-(p_topic[p_topic > 0] * np.log2(p_topic[p_topic > 0])).sum())
    counts = joint.sum(1)
    purity = np.where(counts > 0, joint.max(1) / np.maximum(counts, 1), 0.0)
    return {
        "mi_bits": mi,
        "topic_entropy_bits": h_topic,
        "mi_share": mi / h_topic if h_topic else 0.0,
        "latent_topic": joint.argmax(1),
        "latent_purity": purity,
        "latent_count": counts,
    }


def build_concept_tokenizer(vocab_size: int):  # noqa: ANN201 (transformers type, imported lazily)
    """A word-level tokenizer over `t0 .. t{V-1}` (space separated), so the corpus's models save and
    load as ordinary `transformers` directories; `t0` doubles as pad / bos / eos."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(WordLevel({f"t{i}": i for i in range(vocab_size)}, unk_token="t0"))
    core.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="t0", pad_token="t0", bos_token="t0", eos_token="t0"
    )
