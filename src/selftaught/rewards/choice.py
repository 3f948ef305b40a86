r"""Multiple-choice answers: read the option letter a model chose and compare it with the reference.

`extract_choice` tries these readings in order and returns the first that matches; within one
reading the last occurrence wins (a model that changes its mind ends with its final choice):
  1. a boxed letter: `\boxed{B}`, `\boxed{\text{(B)}}`;
  2. a letter after an answer phrase, in either case: "Answer: b", "the answer is (C)",
     "The correct option is C.", "I choose D";
  3. a parenthesised capital letter: "(B)";
  4. a capital letter that opens the text as an option label ("B) 42", "B.") or a one-letter text ("b").
Bare capitals elsewhere are ignored ("A" as an article, "I" as a pronoun). Options run from A to J
(MMLU-Pro has ten); a reference outside them is None.
"""

from __future__ import annotations

import re
from typing import Any

from selftaught.rewards.base import TextOrChat, check_column, completion_text

LETTERS = "ABCDEFGHIJ"
"""The option letters a completion may choose."""

_L = f"[{LETTERS}]"
_LOWER_L = f"[{LETTERS.lower()}]"
_ANCHOR = r"(?i:answer|option|choice|choose|chose|pick|picked|select|selected)\b\s*(?i:is|:|would be|=)?\s*(?i:option|choice)?"
_READINGS: list[re.Pattern[str]] = [
    # \boxed{B}, \boxed{\text{(B)}}
    re.compile(rf"\\boxed\{{\s*(?:\\text\{{)?\s*\(?({_L}|{_LOWER_L})\)?\s*\}}?\s*\}}"),
    # "Answer: b": a lowercase letter only where it ends the phrase, so "the answer is a number" is no choice
    re.compile(rf"\b{_ANCHOR}\s*[*(\[]*\s*({_L}(?![\w'])|{_LOWER_L}(?=[)\].:,*]|\s*$))"),
    re.compile(rf"\(({_L})\)"),
    # an option label opening the text ("B) 42", "B.", "**B**"), or a whole text of one letter
    re.compile(rf"^\s*\**\(?({_L})\)?\**(?:[).:]|\s*$)"),
    re.compile(rf"^\s*\(?({_LOWER_L})\)?\.?\s*$"),
]


def extract_choice(text: str) -> str | None:
    """The option letter (uppercase) `text` chose, or None when it names none (see the module doc).

    >>> [extract_choice(t) for t in ["(B)", "Answer: b", "The correct option is C.", "Maybe."]]
    ['B', 'B', 'C', None]
    """
    for pattern in _READINGS:
        matches = pattern.findall(text)
        if matches:
            return matches[-1].upper()
    return None


def reference_choice(answer: str | None) -> str | None:
    """The reference letter: `B`, `b`, `(B)` or `B.` give `B`; anything else is None."""
    if answer is None:
        return None
    match = re.fullmatch(rf"\s*\(?({_L})[).]?\s*", str(answer), re.IGNORECASE)
    return match.group(1).upper() if match else None


def choice_reward(
    prompts: list[TextOrChat], completions: list[TextOrChat], answer: list[str | None], **columns: Any
) -> list[float | None]:
    """1.0 when the chosen letter is the reference, 0.0 when another or none; None when the reference is not a letter.

    >>> choice_reward(["Q"] * 3, ["The answer is (B).", "I pick A.", "Unsure."], ["B"] * 3)
    [1.0, 0.0, 0.0]
    """
    check_column("answer", answer, len(completions), "choice_reward")
    rewards: list[float | None] = []
    for completion, gold in zip(completions, answer, strict=True):
        reference = reference_choice(gold)
        chosen = extract_choice(completion_text(completion))
        rewards.append(None if reference is None else float(chosen == reference))
    return rewards
