"""The tiny world's STORY task: the creative half of adaptive decoding's base model (papers_B.md §4.7,
TINYWORLD_JUDGES_LPO.md §2.1), where high temperature pays and greedy decoding is punished.

A prompt asks `Tell a story about the <place>.` for one of three places (`PLACES`); the answer is six
words of that place's 12 words (`PLACE_WORDS`; the three lists are disjoint), separated by single
spaces (`cow hen cow barn pig hay`). Training data draws the six words *with replacement* from a Zipf
law over the place's words, P(rank k) proportional to k^-`ZIPF_EXPONENT` (1.2), where a seeded shuffle
decides which word has which rank (`word_distribution`). The quality of an output is the number of
distinct words over six (`story_score`; 0 unless it is exactly six words of that place), so repetition
is penalised: greedy decoding that repeats the head word (`cow cow cow cow cow cow`) scores 1/6, and
the data itself averages 0.653 (`expected_quality`), the value a model that reproduces it at T=1 reaches.

    sample_stories(n, seed)       training outputs (place, text)    parse_story(text)  strict parser
    story_quality(...)            the reward (TRL signature)        story_score(text, place)
    story_stats(texts, places)    quality, validity, distinct words and repeat rate of samples
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from typing import Any

TASK = "story"
"""The prompts' `task` (routes rewards in the online loop: `story_quality`)."""
PLACES = ("forest", "sea", "farm")
INSTRUCTION = "Tell a story about the {place}."
"""The user turn of a story prompt (`instruction(place)`)."""
NUM_WORDS = 6
PLACE_WORDS: dict[str, tuple[str, ...]] = {
    "forest": ("tree", "moss", "leaf", "owl", "deer", "bear", "wolf", "fox", "fern", "pine", "oak", "elk"),
    "sea": ("wave", "tide", "reef", "shell", "pearl", "whale", "ship", "sail", "storm", "gull", "fish", "crab"),
    "farm": ("cow", "pig", "hen", "goat", "sheep", "barn", "hay", "corn", "horse", "duck", "goose", "dog"),
}  # fmt: skip
"""The 12 words of each place (disjoint lists); their ranks in the training data: `word_distribution`."""
ZIPF_EXPONENT = 1.2
RANK_SEED = "story-ranks@1"


def instruction(place: str) -> str:
    """`Tell a story about the <place>.` (a ValueError for a place not in `PLACES`)."""
    if place not in PLACES:
        raise ValueError(f"unknown story place {place!r}; valid: {', '.join(PLACES)}")
    return INSTRUCTION.format(place=place)


@functools.cache
def word_distribution(exponent: float = ZIPF_EXPONENT) -> dict[str, dict[str, float]]:
    """Per place, each word's probability in one draw of the training data, head first; each sums to 1."""
    distribution = {}
    for place in PLACES:
        ranked = list(PLACE_WORDS[place])
        random.Random(f"{RANK_SEED}|{place}").shuffle(ranked)
        weights = [k**-exponent for k in range(1, len(ranked) + 1)]
        total = sum(weights)
        distribution[place] = {word: w / total for word, w in zip(ranked, weights, strict=True)}
    return distribution


def expected_quality(exponent: float = ZIPF_EXPONENT) -> float:
    """The mean quality of the training data (six draws with replacement), exactly: the expected number
    of distinct words, sum_w 1 - (1 - p_w)^6, over six, averaged over the places (0.653 at 1.2)."""
    per_place = [
        sum(1 - (1 - p) ** NUM_WORDS for p in probs.values()) / NUM_WORDS
        for probs in word_distribution(exponent).values()
    ]
    return sum(per_place) / len(per_place)


def sample_stories(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` training outputs as `(place, text)`: a uniform place, six Zipf draws with replacement from
    its words; a pure function of the arguments."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"story|{seed}")
    tables = {place: (list(probs), list(probs.values())) for place, probs in word_distribution().items()}
    outputs = []
    for _ in range(n):
        place = rng.choice(PLACES)
        words, probs = tables[place]
        outputs.append((place, " ".join(rng.choices(words, weights=probs, k=NUM_WORDS))))
    return outputs


_ALL_WORDS = frozenset(w for words in PLACE_WORDS.values() for w in words)
_PLACE_SETS = {place: frozenset(words) for place, words in PLACE_WORDS.items()}


def parse_story(text: str) -> tuple[str, ...] | None:
    """The six words of an output, or None unless `text` (stripped of surrounding whitespace) is exactly
    six story words (of any place; repeats allowed) separated by single spaces.

    >>> parse_story("cow hen cow barn pig hay")
    ('cow', 'hen', 'cow', 'barn', 'pig', 'hay')
    >>> parse_story("cow hen cow barn pig") is None
    True
    """
    words = text.strip().split(" ")
    if len(words) != NUM_WORDS or not all(word in _ALL_WORDS for word in words):
        return None
    return tuple(words)


def story_score(text: str, place: str) -> float:
    """The quality of `text` for `place`: distinct words / 6, 0.0 unless it parses and every word is one
    of the place's words.

    >>> story_score("cow hen cow barn pig hay", "farm"), story_score("cow cow cow cow cow cow", "farm")
    (0.8333333333333334, 0.16666666666666666)
    """
    words = parse_story(text)
    if words is None or not all(word in _PLACE_SETS[place] for word in words):
        return 0.0
    return len(set(words)) / NUM_WORDS


_PLACE_PATTERN = re.compile(r"Tell a story about the (\w+)\.")


def place_of(prompt: Any) -> str | None:
    """The place of a story prompt (a string, or chat messages: the last user turn), else None."""
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        prompt = users[-1] if users else None
    match = _PLACE_PATTERN.search(prompt) if isinstance(prompt, str) else None
    return match.group(1) if match and match.group(1) in PLACES else None


def story_quality(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
    """TRL-signature reward: the quality of each completion (`story_score`) for its prompt's place, read
    from a `place` column when the records have one, else from the prompt text; None (could not score)
    for a prompt with no known place. A completion is a string or a list of chat messages.

    >>> story_quality(["Tell a story about the sea."] * 2, ["fish fish crab reef gull fish", "cow"])
    [0.6666666666666666, 0.0]
    """
    places = columns.get("place") or [None] * len(prompts)
    scores: list[float | None] = []
    for prompt, completion, place in zip(prompts, completions, places, strict=True):
        place = place if place in PLACES else place_of(prompt)
        scores.append(None if place is None else story_score(_text(completion), place))
    return scores


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1].get("content"), str):
        return completion[-1]["content"]
    raise ValueError(f"a completion must be a string or a list of chat messages, got {completion!r:.200}")


def story_stats(texts: Sequence[str], places: Sequence[str]) -> dict[str, float]:
    """Quality and repetition of sampled stories, as flat metrics.

    Over all texts: `num_samples`, `validity` (share that are six words of their place), `quality`
    (mean `story_score`, invalid = 0). Over the valid ones (0.0 when none is): `distinct_words` (mean
    distinct words per story, 1 to 6), `repeat_rate` (share of the word slots that repeat an earlier
    word of the same story: 5/6 for `cow cow cow cow cow cow`) and `vocab_words` (distinct words used
    per place over all its valid samples, averaged over the places present; at most 12).
    """
    if not texts or len(texts) != len(places):
        raise ValueError(
            f"story_stats needs texts and one place per text, got {len(texts)} and {len(places)}"
        )
    valid = [
        (place, words)
        for text, place in zip(texts, places, strict=True)
        if story_score(text, place) > 0 and (words := parse_story(text)) is not None
    ]
    qualities = [story_score(text, place) for text, place in zip(texts, places, strict=True)]
    stats: dict[str, float] = {
        "num_samples": len(texts),
        "validity": len(valid) / len(texts),
        "quality": sum(qualities) / len(texts),
        "distinct_words": 0.0,
        "repeat_rate": 0.0,
        "vocab_words": 0.0,
    }
    if valid:
        distinct = [len(set(words)) for _, words in valid]
        stats["distinct_words"] = sum(distinct) / len(valid)
        stats["repeat_rate"] = 1 - sum(distinct) / (NUM_WORDS * len(valid))
        used = [{w for p, words in valid if p == place for w in words} for place in dict.fromkeys(places)]
        used = [u for u in used if u]
        stats["vocab_words"] = sum(len(u) for u in used) / len(used)
    return stats


def story_conversations(num: int, seed: int) -> list[dict[str, Any]]:
    """`num` SFT conversations: a place's instruction as user turn, a sampled story as assistant turn."""
    return [
        {
            "messages": [
                {"role": "user", "content": instruction(place)},
                {"role": "assistant", "content": text},
            ]
        }
        for place, text in sample_stories(num, seed)
    ]


def story_prompts(num: int) -> list[dict[str, Any]]:
    """`num` prompt-only records cycling over `PLACES` (ids `story-<i>`, task `story`, a `place`)."""
    return [
        {
            "id": f"story-{i}",
            "prompt": [{"role": "user", "content": instruction(PLACES[i % len(PLACES)])}],
            "task": TASK,
            "place": PLACES[i % len(PLACES)],
        }
        for i in range(num)
    ]
