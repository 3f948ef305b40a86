"""Text rewards: exact match against a reference, format checks (regex, required tags, length), and
the n-gram novelty of open-ended text (the share of distinct word 3-grams: repetition scores low).

Exact match is a plain function; the format checks are factories that return a reward function, named
after the check (`name=` overrides it, for two checks of one kind in one `Rubric` task). A format
check always scores: it returns 1.0 or 0.0, never None.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from selftaught.rewards.base import RewardFn, TextOrChat, check_column, completion_text


def normalize_text(text: str) -> str:
    """Case-folded, runs of whitespace made one space, outer whitespace and final periods removed.

    >>> normalize_text("  Paris.\\n")
    'paris'
    """
    return " ".join(text.split()).casefold().rstrip(".").strip()


def exact_match_reward(
    prompts: list[TextOrChat], completions: list[TextOrChat], answer: list[str | None], **columns: Any
) -> list[float | None]:
    """1.0 when the whole completion equals the reference after `normalize_text`, else 0.0; None without a reference.

    >>> exact_match_reward(["Capital of France?"] * 2, ["Paris.", "Lyon"], ["paris"] * 2)
    [1.0, 0.0]
    """
    check_column("answer", answer, len(completions), "exact_match_reward")
    return [
        None if gold is None else float(normalize_text(completion_text(c)) == normalize_text(str(gold)))
        for c, gold in zip(completions, answer, strict=True)
    ]


def regex_reward(pattern: str, *, name: str = "regex_reward") -> RewardFn:
    r"""A reward function: 1.0 when the whole completion matches `pattern` (`re.fullmatch`, `.` matches newlines).

    >>> fmt = regex_reward(r"<think>.*?</think>\s*Answer: \d+")
    >>> fmt([""] * 2, ["<think>2+2</think> Answer: 4", "Answer: 4"])
    [1.0, 0.0]
    """
    try:
        compiled = re.compile(pattern, re.DOTALL)
    except re.error as error:
        raise ValueError(
            f"regex_reward: pattern {pattern!r} is not a valid regular expression: {error}"
        ) from None

    def reward(
        prompts: list[TextOrChat], completions: list[TextOrChat], **columns: Any
    ) -> list[float | None]:
        return [float(compiled.fullmatch(completion_text(c)) is not None) for c in completions]

    reward.__name__ = name
    return reward


def tags_reward(tags: Sequence[str], *, name: str = "tags_reward") -> RewardFn:
    """A reward function: 1.0 when each `<tag>...</tag>` block appears exactly once, in the order of `tags`.

    Text before, between and after the blocks is allowed; use `regex_reward` for a stricter layout.

    >>> fmt = tags_reward(["think", "answer"])
    >>> fmt([""] * 3, ["<think>hm</think><answer>4</answer>", "<answer>4</answer><think>hm</think>", "<think>a</think>"])
    [1.0, 0.0, 0.0]
    """
    if not tags or any(not tag or not re.fullmatch(r"[\w-]+", tag) for tag in tags):
        raise ValueError(
            f"tags_reward: tags must be non-empty names such as ['think', 'answer'], got {list(tags)}"
        )

    def reward(
        prompts: list[TextOrChat], completions: list[TextOrChat], **columns: Any
    ) -> list[float | None]:
        return [float(has_tags(completion_text(c), tags)) for c in completions]

    reward.__name__ = name
    return reward


def has_tags(text: str, tags: Sequence[str]) -> bool:
    """Whether every `<tag>` and `</tag>` occurs once in `text`, each block closed before the next opens."""
    end = 0
    for tag in tags:
        opening, closing = f"<{tag}>", f"</{tag}>"
        if text.count(opening) != 1 or text.count(closing) != 1:
            return False
        start = text.index(opening)
        if start < end or text.index(closing) < start:
            return False
        end = text.index(closing)
    return True


def length_reward(
    *, min_chars: int = 0, max_chars: int | None = None, name: str = "length_reward"
) -> RewardFn:
    """A reward function: 1.0 when the completion has `min_chars` to `max_chars` characters (inclusive).

    >>> length_reward(max_chars=5)([""] * 2, ["short", "too long"])
    [1.0, 0.0]
    """
    if min_chars < 0 or (max_chars is not None and max_chars < min_chars):
        raise ValueError(f"length_reward: need 0 <= min_chars <= max_chars, got {min_chars} and {max_chars}")

    def reward(
        prompts: list[TextOrChat], completions: list[TextOrChat], **columns: Any
    ) -> list[float | None]:
        lengths = [len(completion_text(c)) for c in completions]
        return [float(min_chars <= n and (max_chars is None or n <= max_chars)) for n in lengths]

    reward.__name__ = name
    return reward


def num_tokens_reward(
    prompts: list[TextOrChat], completions: list[TextOrChat], completion_ids: list[list[int]], **columns: Any
) -> list[float | None]:
    """The completion's length in tokens: weighted into a rubric, a deliberate length bonus (the
    length bias of a reward model, papers_B §1.10 finding 3 and §1.12's non-verifiable analogue).

    >>> num_tokens_reward(["q"] * 2, ["a b", "a"], completion_ids=[[5, 6], [5]])
    [2.0, 1.0]
    """
    check_column("completion_ids", completion_ids, len(completions), "num_tokens_reward")
    return [float(len(ids)) for ids in completion_ids]


NOVELTY_FULL_WORDS = 20
"""`ngram_novelty_reward`: completions shorter than this many words are scaled down linearly."""


def ngram_novelty_reward(
    prompts: list[TextOrChat], completions: list[TextOrChat], **columns: Any
) -> list[float | None]:
    """Distinct word 3-grams / all word 3-grams of each completion (words: runs of letters and digits,
    case-folded), times min(1, words / 20) so that short outputs cannot game it; 0.0 with fewer than
    three words. 1 - the first factor is the share of repeated 3-grams (Adaptive Decoding's
    repetition measure, 2411.09661).

    >>> ngram_novelty_reward(["q"] * 3, ["", "the cat sat", "a b a b a b"])
    [0.0, 0.15, 0.15]
    """
    return [_ngram_novelty(completion_text(c)) for c in completions]


def _ngram_novelty(text: str) -> float:
    words = re.findall(r"\w+", text.casefold())
    grams = list(zip(words, words[1:], words[2:], strict=False))
    if not grams:
        return 0.0
    return len(set(grams)) / len(grams) * min(1.0, len(words) / NOVELTY_FULL_WORDS)
