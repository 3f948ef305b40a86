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

CSTORY, the constrained variant (papers_B.md §4.4 ConstrainedStories, §4.7 (iii)): `Tell a story about
the <place>. Start each part with <digit>.` -> three parts `<digit> <word> <word>` joined by `. `
(`7 cow hen. 7 pig barn. 7 goat hay`). In the training data a part starts with the designated digit
with probability `OPENER_P` (0.7), so T=1 breaks the constraint that greedy keeps, while greedy repeats
words as in STORY: the best decoder is greedy on each part's first token and hot elsewhere. The score
is half the share of parts that keep the constraint and half the distinct words over six.

    sample_constrained_stories(n, seed)     (place, opener, text)
    constrained_story_score(text, place, opener), cstory_quality(...)   the reward
    opener_positions(pieces)                which tokens of a response open a part
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


# --- CSTORY: a story whose every part must start with a designated digit ------------------------------

CSTORY_TASK = "cstory"
"""The constrained stories' `task` (reward `cstory_quality`)."""
CSTORY_INSTRUCTION = "Tell a story about the {place}. Start each part with {opener}."
OPENERS = tuple("123456789")
"""The designated openers: digits, single tokens of the world tokenizer (so the constraint bites on
exactly one token per part)."""
NUM_PARTS = 3
WORDS_PER_PART = 2
OPENER_P = 0.7
"""The training data's share of parts that start with the designated digit (the rest: another digit,
uniformly), so sampling at T=1 breaks the constraint where greedy decoding keeps it."""
PART_SEPARATOR = ". "


def constrained_instruction(place: str, opener: str) -> str:
    """`Tell a story about the <place>. Start each part with <opener>.` (a ValueError for an unknown
    place or an opener not in `OPENERS`)."""
    instruction(place)
    if opener not in OPENERS:
        raise ValueError(f"unknown opener {opener!r}; valid: {', '.join(OPENERS)}")
    return CSTORY_INSTRUCTION.format(place=place, opener=opener)


def sample_constrained_stories(n: int, seed: int) -> list[tuple[str, str, str]]:
    """`n` training outputs as `(place, opener, text)`: a uniform place and opener; three parts
    `<digit> <word> <word>` joined by `. ` (`7 cow hen. 7 pig barn. 4 goat hay`), each digit the
    opener with probability `OPENER_P`, else another one, the words Zipf draws with replacement as in
    STORY; a pure function of the arguments."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"cstory|{seed}")
    tables = {place: (list(probs), list(probs.values())) for place, probs in word_distribution().items()}
    outputs = []
    for _ in range(n):
        place, opener = rng.choice(PLACES), rng.choice(OPENERS)
        words, probs = tables[place]
        parts = []
        for _ in range(NUM_PARTS):
            digit = opener if rng.random() < OPENER_P else rng.choice([d for d in OPENERS if d != opener])
            parts.append(" ".join([digit, *rng.choices(words, weights=probs, k=WORDS_PER_PART)]))
        outputs.append((place, opener, PART_SEPARATOR.join(parts)))
    return outputs


def parse_constrained_story(text: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """`(openers, words)` of an output, or None unless `text` (stripped) is exactly three parts of a
    digit and two story words, joined by `. `.

    >>> parse_constrained_story("7 cow hen. 7 pig barn. 4 goat hay")
    (('7', '7', '4'), ('cow', 'hen', 'pig', 'barn', 'goat', 'hay'))
    >>> parse_constrained_story("7 cow hen. 7 pig barn") is None
    True
    """
    parts = text.strip().split(PART_SEPARATOR)
    if len(parts) != NUM_PARTS:
        return None
    openers, words = [], []
    for part in parts:
        tokens = part.split(" ")
        if len(tokens) != 1 + WORDS_PER_PART or tokens[0] not in OPENERS:
            return None
        if not all(word in _ALL_WORDS for word in tokens[1:]):
            return None
        openers.append(tokens[0])
        words.extend(tokens[1:])
    return tuple(openers), tuple(words)


def constrained_story_score(text: str, place: str, opener: str) -> float:
    """Half the share of parts that start with `opener`, half the distinct words over six; 0.0 unless
    it parses and every word is one of the place's.

    >>> constrained_story_score("7 cow hen. 7 pig barn. 4 goat hay", "farm", "7")
    0.8333333333333333
    >>> round(constrained_story_score("7 cow cow. 7 cow cow. 7 cow cow", "farm", "7"), 4)
    0.5833
    """
    parsed = parse_constrained_story(text)
    if parsed is None or not all(word in _PLACE_SETS[place] for word in parsed[1]):
        return 0.0
    openers, words = parsed
    kept = sum(d == opener for d in openers) / NUM_PARTS
    return 0.5 * kept + 0.5 * len(set(words)) / len(words)


def constraint_kept(text: str, opener: str) -> float:
    """The share of an output's parts that start with `opener` (0.0 when it does not parse)."""
    parsed = parse_constrained_story(text)
    return 0.0 if parsed is None else sum(d == opener for d in parsed[0]) / NUM_PARTS


_OPENER_PATTERN = re.compile(r"Start each part with (\d)\.")


def opener_of(prompt: Any) -> str | None:
    """The designated opener of a constrained story prompt (a string or chat messages), else None."""
    if isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        prompt = users[-1] if users else None
    match = _OPENER_PATTERN.search(prompt) if isinstance(prompt, str) else None
    return match.group(1) if match else None


def cstory_quality(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
    """TRL-signature reward: `constrained_story_score` of each completion, the place and opener read
    from `place` / `opener` columns when present, else from the prompt; None when either is unknown.

    >>> cstory_quality(["Tell a story about the sea. Start each part with 3."], ["3 fish crab. 3 reef gull. 3 fish ship"])
    [0.9166666666666667]
    """
    places = columns.get("place") or [None] * len(prompts)
    openers = columns.get("opener") or [None] * len(prompts)
    scores: list[float | None] = []
    for prompt, completion, place, opener in zip(prompts, completions, places, openers, strict=True):
        place = place if place in PLACES else place_of(prompt)
        opener = opener if opener in OPENERS else opener_of(prompt)
        if place is None or opener is None:
            scores.append(None)
        else:
            scores.append(constrained_story_score(_text(completion), place, opener))
    return scores


def opener_positions(pieces: Sequence[str]) -> list[bool]:
    """For the decoded tokens of a response, which ones open a part: the first token, and every token
    whose preceding text ends with `. ` (where the constraint bites).

    >>> opener_positions(["7", " ", "c", "ow", ".", " ", "4", " "])
    [True, False, False, False, False, False, True, False]
    """
    flags, text = [], ""
    for piece in pieces:
        flags.append(text == "" or text.endswith(PART_SEPARATOR))
        text += piece
    return flags


def constrained_conversations(num: int, seed: int) -> list[dict[str, Any]]:
    """`num` SFT conversations: a constrained instruction as user turn, a sampled output as assistant turn."""
    return [
        {
            "messages": [
                {"role": "user", "content": constrained_instruction(place, opener)},
                {"role": "assistant", "content": text},
            ]
        }
        for place, opener, text in sample_constrained_stories(num, seed)
    ]


def constrained_prompts(num: int) -> list[dict[str, Any]]:
    """`num` prompt-only records (ids `cstory-<i>`, task `cstory`, a `place` and an `opener`), the
    places in turn and the openers in turn (9 openers x 3 places: every pair within 27 prompts)."""
    records = []
    for i in range(num):
        place, opener = PLACES[i % len(PLACES)], OPENERS[(i // len(PLACES)) % len(OPENERS)]
        records.append(
            {
                "id": f"cstory-{i}",
                "prompt": [{"role": "user", "content": constrained_instruction(place, opener)}],
                "task": CSTORY_TASK,
                "place": place,
                "opener": opener,
            }
        )
    return records
