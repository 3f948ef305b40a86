"""The tiny world's keywords task: DivPO's graded-quality variant (papers_B.md §3.7, the keyword-story
analogue), where quality is graded and many outputs tie at the top, so DivPO's `rho` matters.

A prompt asks `Keywords for a story about the <topic>.` for one of four topics (`TOPICS`); the answer is
exactly five distinct words of a 60-word vocabulary (`WORDS`, lowercase, 3-6 letters), separated by single
spaces (`owl fern storm moon key`). Each topic has a fixed seeded score table (`word_scores`): 12 words
score 1.0, 20 score 0.5 and 28 score 0.0. The quality of an output is the mean score of its five words,
so it takes the values 0.0, 0.1, ..., 1.0 and every choice of five of a topic's 12 top words scores 1.0
(792 sets); an output that is not five distinct known words scores 0.0 (`keywords_quality`). The
tables are arbitrary, not semantic (`child` may be a top forest word): a model learns them from data.

Training data is skewed, as an instruction-tuned LLM's keywords are: per topic the 60 words get ranks
from a seeded shuffle tilted toward good words (word w's sort key is `u_w - RANK_TILT * score(w)`, u_w
uniform), P(rank k) is proportional to k^-`ZIPF_EXPONENT`, and an output is five draws without
replacement, in draw order. The head word of each topic is a top word with 25% of the mass (it is in
80% of the outputs); valid outputs average quality 0.60 and under 1% reach 1.0; a share `malformed`
(default 10%) is broken in one of five ways (`MALFORMED_KINDS`): a word missing, a sixth word, a word
written twice, a junk word, a capitalised word. Mean quality over all outputs: 0.54.

    sample_keywords(n, seed)       training outputs (topic, text)    parse_keywords(text)  strict parser
    keywords_quality(...)          the reward (TRL signature)        word_scores()         the score tables
    keywords_stats(texts, topics)  validity, quality and per-topic word diversity of samples
"""

from __future__ import annotations

import functools
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

TASK = "keywords"
"""The prompts' `task` (routes rewards and pair rules in the online loop)."""
TOPICS = ("forest", "sea", "city", "desert")
INSTRUCTION = "Keywords for a story about the {topic}."
"""The user turn of a keywords prompt (`instruction(topic)`)."""
NUM_WORDS = 5

WORDS = (
    "tree", "moss", "leaf", "owl", "deer", "bear", "wolf", "fox", "fern", "pine",
    "wave", "tide", "reef", "shell", "pearl", "whale", "ship", "sail", "storm", "gull",
    "street", "tower", "train", "bridge", "market", "lamp", "crowd", "cafe", "taxi", "alley",
    "sand", "dune", "oasis", "camel", "cactus", "heat", "mirage", "snake", "dust", "sun",
    "moon", "star", "night", "rain", "wind", "fire", "stone", "river", "road", "map",
    "key", "song", "gold", "ghost", "child", "dream", "secret", "friend", "king", "door",
)  # fmt: skip
"""The 60 words an output may use (their scores and ranks come from `word_scores`, `word_distribution`)."""
SCORE_LEVELS = ((12, 1.0), (20, 0.5), (28, 0.0))
"""(number of words, score) per topic, best first: 12 top words, 20 half-good, 28 off-topic."""
SCORE_SEED = "keywords-scores@1"
RANK_SEED = "keywords-ranks@1"
ZIPF_EXPONENT = 1.1
RANK_TILT = 0.35
"""How far the training data's rank order leans toward good words (see the module doc)."""
JUNK_WORDS = ("the", "um", "xq", "and", "zzz", "lol", "a", "foo")
"""Words not in `WORDS`: the junk of a `junk` malformed output."""
MALFORMED_KINDS = ("missing", "extra", "duplicate", "junk", "capitalised")
POOL_SIZE = 16
"""DivPO's samples per prompt: `keywords_stats` counts unique words in pools of this many samples."""


def instruction(topic: str) -> str:
    """`Keywords for a story about the <topic>.` (a ValueError for a topic not in `TOPICS`)."""
    if topic not in TOPICS:
        raise ValueError(f"unknown keywords topic {topic!r}; valid: {', '.join(TOPICS)}")
    return INSTRUCTION.format(topic=topic)


@functools.cache
def word_scores() -> dict[str, dict[str, float]]:
    """Per topic, every word's score: a seeded shuffle of `WORDS` cut into `SCORE_LEVELS`."""
    tables = {}
    for topic in TOPICS:
        shuffled = list(WORDS)
        random.Random(f"{SCORE_SEED}|{topic}").shuffle(shuffled)
        levels = [score for count, score in SCORE_LEVELS for _ in range(count)]
        tables[topic] = dict(zip(shuffled, levels, strict=True))
    return tables


def word_distribution(exponent: float = ZIPF_EXPONENT) -> dict[str, dict[str, float]]:
    """Per topic, each word's probability in one draw of the training data, head first; each sums to 1.

    >>> first = next(iter(word_distribution()["forest"].items()))
    >>> round(first[1], 3), word_scores()["forest"][first[0]]
    (0.253, 1.0)
    """
    distribution = {}
    for topic in TOPICS:
        rng = random.Random(f"{RANK_SEED}|{topic}")
        keys = {word: rng.random() - RANK_TILT * word_scores()[topic][word] for word in WORDS}
        ranked = sorted(WORDS, key=keys.__getitem__)
        weights = [k**-exponent for k in range(1, len(ranked) + 1)]
        total = sum(weights)
        distribution[topic] = {word: w / total for word, w in zip(ranked, weights, strict=True)}
    return distribution


def sample_labelled_keywords(n: int, seed: int, malformed: float = 0.1) -> list[tuple[str, str, str]]:
    """`n` training outputs as `(topic, text, kind)`, kind `valid` or one of `MALFORMED_KINDS`; the topic
    is uniform, the words as in the module doc; a pure function of the arguments."""
    if not 0 <= malformed <= 1:
        raise ValueError(f"malformed must be in [0, 1], got {malformed}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"keywords|{seed}")
    tables = {t: (list(probs), list(probs.values())) for t, probs in word_distribution().items()}
    outputs = []
    for _ in range(n):
        topic = rng.choice(TOPICS)
        words = _draw_distinct(rng, *tables[topic], NUM_WORDS + 1)  # a spare for `extra`
        if rng.random() < malformed:
            kind = rng.choice(MALFORMED_KINDS)
            outputs.append((topic, " ".join(_break(words, kind, rng)), kind))
        else:
            outputs.append((topic, " ".join(words[:NUM_WORDS]), "valid"))
    return outputs


def sample_keywords(n: int, seed: int, malformed: float = 0.1) -> list[tuple[str, str]]:
    """`n` training outputs as `(topic, text)` (five words, a share `malformed` broken)."""
    return [(topic, text) for topic, text, _ in sample_labelled_keywords(n, seed, malformed)]


def _draw_distinct(rng: random.Random, words: list[str], probs: list[float], num: int) -> list[str]:
    """`num` distinct words, drawn one after another from `probs` (a drawn word is drawn again)."""
    chosen: list[str] = []
    while len(chosen) < num:
        word = rng.choices(words, weights=probs)[0]
        if word not in chosen:
            chosen.append(word)
    return chosen


def _break(words: list[str], kind: str, rng: random.Random) -> list[str]:
    """The words of a malformed output of `kind`, from six distinct drawn `words`."""
    valid, i = words[:NUM_WORDS], rng.randrange(NUM_WORDS)
    if kind == "missing":
        return valid[:i] + valid[i + 1 :]
    if kind == "extra":
        return words
    if kind == "duplicate":
        j = rng.choice([j for j in range(NUM_WORDS) if j != i])
        return valid[:j] + [valid[i]] + valid[j + 1 :]
    if kind == "junk":
        return valid[:i] + [rng.choice(JUNK_WORDS)] + valid[i + 1 :]
    if kind == "capitalised":
        return valid[:i] + [valid[i].capitalize()] + valid[i + 1 :]
    raise ValueError(f"unknown malformed kind {kind!r}; valid: {MALFORMED_KINDS}")


_WORD_SET = frozenset(WORDS)


def parse_keywords(text: str) -> tuple[str, ...] | None:
    """The five words of an output, or None unless `text` (stripped of surrounding whitespace) is exactly
    five distinct words of `WORDS` separated by single spaces (lowercase, no punctuation).

    >>> parse_keywords("owl fern storm moon key")
    ('owl', 'fern', 'storm', 'moon', 'key')
    >>> parse_keywords("owl fern storm moon owl") is None
    True
    """
    stripped = text.strip()
    words = stripped.split(" ")
    if len(words) != NUM_WORDS or len(set(words)) != NUM_WORDS:
        return None
    return tuple(words) if all(word in _WORD_SET for word in words) else None


def keywords_score(text: str, topic: str) -> float:
    """The quality of `text` for `topic`: the mean word score (`word_scores`), 0.0 unless it parses."""
    words = parse_keywords(text)
    if words is None:
        return 0.0
    table = word_scores()[topic]
    return sum(table[word] for word in words) / NUM_WORDS


_TOPIC_PATTERN = re.compile(r"Keywords for a story about the (\w+)\.")


def topic_of(prompt: Any) -> str | None:
    """The topic of a keywords prompt (a string, or chat messages: the last user turn), else None."""
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        prompt = users[-1] if users else None
    match = _TOPIC_PATTERN.search(prompt) if isinstance(prompt, str) else None
    return match.group(1) if match and match.group(1) in TOPICS else None


def keywords_quality(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
    """TRL-signature reward: the quality of each completion (`keywords_score`) for its prompt's topic,
    read from a `topic` column when the records have one, else from the prompt text; None (could not
    score) for a prompt with no known topic. A completion is a string or a list of chat messages.

    >>> keywords_quality(["Keywords for a story about the sea."] * 2, ["owl fern storm moon key", "owl"])
    [0.3, 0.0]
    """
    topics = columns.get("topic") or [None] * len(prompts)
    scores: list[float | None] = []
    for prompt, completion, topic in zip(prompts, completions, topics, strict=True):
        topic = topic if topic in TOPICS else topic_of(prompt)
        scores.append(None if topic is None else keywords_score(_text(completion), topic))
    return scores


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1].get("content"), str):
        return completion[-1]["content"]
    raise ValueError(f"a completion must be a string or a list of chat messages, got {completion!r:.200}")


def largest_pool(topics: Sequence[str], cap: int = POOL_SIZE) -> int:
    """The pool size `keywords_stats` can use for `topics`: `cap`, or fewer when a topic has fewer samples."""
    return min(cap, *Counter(topics).values()) if topics else cap


def keywords_stats(
    texts: Sequence[str], topics: Sequence[str], pool_size: int = POOL_SIZE
) -> dict[str, float]:
    """Validity, quality and word diversity of sampled outputs (papers_B.md §3.3-3.4), as flat metrics.

    Over all texts: `validity` (share that parse), `quality` (mean `keywords_score`, invalid = 0),
    `top_share` (share of quality 1.0), `num_samples`. Diversity is measured per topic (over the samples
    of the same title, as the paper does) on the valid outputs, then averaged over the topics present:
    `distinct_words` (saturates at 60), `distinct_1` (distinct / all word occurrences),
    `entropy_1gram_bits` (uniform over the 60 words: 5.91), `head_word_share` (share of the commonest
    word among word occurrences; at most 0.2, one word in every output). Per pool: each topic's
    texts in order are cut into consecutive pools of `pool_size` (a last partial pool is dropped);
    `unique_1grams` is the mean number of distinct words of a pool's valid outputs and
    `unique_ratio` that over 5 x `pool_size` (an invalid output counts as a sample, adds no word).
    """
    if not texts or len(texts) != len(topics):
        raise ValueError(
            f"keywords_stats needs texts and one topic per text, got {len(texts)} and {len(topics)}"
        )
    if not 1 <= pool_size <= largest_pool(topics, cap=len(texts)):
        raise ValueError(
            f"pool_size must be in [1, {largest_pool(topics, len(texts))}] (the fewest samples of a topic), "
            f"got {pool_size}"
        )
    parsed = [parse_keywords(text) for text in texts]
    qualities = [keywords_score(text, topic) for text, topic in zip(texts, topics, strict=True)]
    stats: dict[str, float] = {
        "num_samples": len(texts),
        "validity": sum(p is not None for p in parsed) / len(texts),
        "quality": sum(qualities) / len(texts),
        "top_share": sum(q >= 1 - 1e-9 for q in qualities) / len(texts),
    }
    per_topic, pools = [], []
    for topic in dict.fromkeys(topics):
        mine = [p for p, t in zip(parsed, topics, strict=True) if t == topic]
        per_topic.append(_word_diversity([" ".join(p) for p in mine if p is not None]))
        for start in range(0, len(mine) - pool_size + 1, pool_size):
            pools.append(len({w for p in mine[start : start + pool_size] if p is not None for w in p}))
    for key in per_topic[0]:
        stats[key] = sum(metrics[key] for metrics in per_topic) / len(per_topic)
    stats["unique_1grams"] = sum(pools) / len(pools)
    stats["unique_ratio"] = stats["unique_1grams"] / (NUM_WORDS * pool_size)
    return stats


def _word_diversity(valid: list[str]) -> dict[str, float]:
    """The word metrics of one topic's valid outputs: the 1-gram `distinct_n`, `unique_ngrams` and
    `ngram_entropy` of `selftaught.evals.diversity` (which sits above `world/`), and the head's share."""
    if not valid:
        return {"distinct_words": 0.0, "distinct_1": 0.0, "entropy_1gram_bits": 0.0, "head_word_share": 0.0}
    counts = Counter(word for text in valid for word in text.split())
    total = sum(counts.values())
    return {
        "distinct_words": float(len(counts)),
        "distinct_1": len(counts) / total,
        "entropy_1gram_bits": -sum(c / total * math.log2(c / total) for c in counts.values()),
        "head_word_share": max(counts.values()) / total,
    }


def keywords_conversations(num: int, seed: int, malformed: float = 0.1) -> list[dict[str, Any]]:
    """`num` SFT conversations: a topic's instruction as user turn, a sampled output as assistant turn."""
    return [
        {
            "messages": [
                {"role": "user", "content": instruction(topic)},
                {"role": "assistant", "content": text},
            ]
        }
        for topic, text in sample_keywords(num, seed, malformed)
    ]


def keywords_prompts(num: int) -> list[dict[str, Any]]:
    """`num` prompt-only records cycling over `TOPICS` (ids `keywords-<i>`, task `keywords`, a `topic`)."""
    return [
        {
            "id": f"keywords-{i}",
            "prompt": [{"role": "user", "content": instruction(TOPICS[i % len(TOPICS)])}],
            "task": TASK,
            "topic": TOPICS[i % len(TOPICS)],
        }
        for i in range(num)
    ]
