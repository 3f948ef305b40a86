r"""Math answer verification with math-verify: `\boxed{}`, `#### N`, "The answer is ...", last number.

Which part of a text is the answer (`answer_span`):
  1. the last `\boxed{...}` (or `\fbox{...}`) with balanced braces: when a model boxes several
     answers, the last one wins;
  2. else the line after the last `####` (GSM8K's final-answer marker);
  3. else the whole text, where math-verify looks for, in priority order, "final answer is",
     "answer:", a LaTeX environment, and finally the last number.
math-verify parses the span to a SymPy value and `verify` compares it with the parsed reference:
numerically to 6 decimals or symbolically, so `1/2`, `0.5` and `\frac{1}{2}` are equal, `$1,000`
equals `1000`, and units and currency signs are dropped. A percentage matches both readings:
`50%` equals `0.5` and `50` (math-verify's choice; we keep it).

Scoring policy (`score_math_answer`):
  - 1.0 when the completion's answer equals the reference, 0.0 when it differs;
  - 0.0 when the completion has no parsable answer: for an answer-verification reward, a missing
    answer is a wrong answer (the model was asked for one);
  - None when the reference is missing or has no parsable value (a data problem, not the model's),
    or when math-verify timed out or failed on this sample.

Threads: math-verify bounds each parse and comparison with `signal.alarm`, which only works in the
main thread. There every call gets `TIMEOUT_SECONDS`; in any other thread (a thread-pool scorer,
an async server) calls run without a time limit, and math-verify logs a one-time warning saying so.

math-verify (the `rewards` extra) is imported on first use, so `import selftaught.rewards` stays light.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any

from selftaught.rewards.base import TextOrChat, check_column, completion_text

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5
"""Time limit of one math-verify parse or comparison (main thread only, see the module doc)."""

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_FINAL_MARKER = "####"
_LATEX_CHARS = re.compile(r"[\\^{}()\[\]_=+*]")

Parsed = list[Any]
"""What math-verify's `parse` returns: SymPy values and the matched strings, `[]` when none."""


def last_boxed(text: str) -> str | None:
    r"""The last `\boxed{...}` of `text` (braces balanced), or None when there is none or it is unclosed.

    >>> last_boxed(r"first \boxed{2}, then \boxed{\frac{1}{3}}.")
    '\\boxed{\\frac{1}{3}}'
    """
    for match in reversed(list(_BOXED.finditer(text))):
        depth = 0
        for end in range(match.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                return text[match.start() : end + 1]
    return None


def answer_span(text: str) -> str:
    """The part of `text` that holds the final answer: the last box, the `####` line, or all of it."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    if _FINAL_MARKER in text:
        return text.rsplit(_FINAL_MARKER, 1)[1].strip().split("\n", 1)[0]
    return text


def parse_reference(answer: str | None) -> Parsed | None:
    r"""The parsed reference answer, or None when it is missing or holds no mathematical value.

    The reference may be a bare value, a GSM8K answer field ending with `#### 42`, or a solution with
    a `\boxed{}` answer (see `answer_span`). A bare value with LaTeX or operator characters
    (`\frac{\sqrt{3}}{2}`, `(3, -1)`, `x^2+1`, `x = 5`) is read as LaTeX, as if inside `$...$`:
    the MATH convention. Any other value is read as text with a number in it (`1,000`, `0.5`,
    `$18`, `18 dollars`), so a reference in words with no number (`N/A`, `unknown`) is None. A
    math-verify timeout or failure on the reference is None too.
    """
    if answer is None or not str(answer).strip():
        return None
    span = answer_span(str(answer)).strip()
    if _LATEX_CHARS.search(span) and "$" not in span and not _BOXED.match(span):
        span = f"${span}$"
    # no string fallback: a reference must hold a value, not just text
    return _parse(span, fallback_mode="no_fallback") or None


def score_math_answer(text: str, reference: Parsed | None) -> float | None:
    """1.0 / 0.0 when the answer in `text` equals / differs from `reference` (from `parse_reference`).

    No parsable answer in `text` is wrong (0.0); None means could not score (no reference, or a
    math-verify timeout or failure).
    """
    if reference is None:
        return None
    predicted = _parse(answer_span(text))
    if predicted is None:
        return None
    if not predicted:
        return 0.0
    return _verify(reference, predicted)


def math_answer_reward(
    prompts: list[TextOrChat], completions: list[TextOrChat], answer: list[str | None], **columns: Any
) -> list[float | None]:
    r"""Math answer verification (see the module doc): 1.0 right, 0.0 wrong or no answer, None unscorable.

    >>> math_answer_reward(["1/2 + 1/4?"] * 3, [r"\boxed{\frac{3}{4}}", "It is 0.75.", "No idea."], ["3/4"] * 3)
    [1.0, 1.0, 0.0]
    """
    check_column("answer", answer, len(completions), "math_answer_reward")
    references: dict[str | None, Parsed | None] = {}  # GRPO groups share a reference: parse it once
    rewards: list[float | None] = []
    for completion, gold in zip(completions, answer, strict=True):
        if gold not in references:
            references[gold] = parse_reference(gold)
        rewards.append(score_math_answer(completion_text(completion), references[gold]))
    return rewards


def _timeout() -> int | None:
    """`TIMEOUT_SECONDS` in the main thread; None elsewhere, where `signal.alarm` cannot be used."""
    return TIMEOUT_SECONDS if threading.current_thread() is threading.main_thread() else None


def _parse(text: str, fallback_mode: str = "first_match") -> Parsed | None:
    """math-verify's `parse`; None when it timed out or raised (so the sample counts as unscorable).

    `fallback_mode="first_match"` (math-verify's default) also returns the matched text when it
    could not be parsed to a value, so that two identical unparsable answers still compare equal.
    """
    math_verify = _import_math_verify()
    from math_verify.errors import TimeoutException

    try:
        return math_verify.parse(
            text, fallback_mode=fallback_mode, parsing_timeout=_timeout(), raise_on_error=True
        )
    except (TimeoutException, Exception) as error:
        logger.warning("math-verify could not parse %r: %s", text[:200], type(error).__name__)
        return None


def _verify(reference: Parsed, predicted: Parsed) -> float | None:
    math_verify = _import_math_verify()
    from math_verify.errors import TimeoutException

    try:
        return float(
            math_verify.verify(reference, predicted, timeout_seconds=_timeout(), raise_on_error=True)
        )
    except (TimeoutException, Exception) as error:
        # no str() of the SymPy values here: printing some of them can itself hang
        logger.warning("math-verify could not compare an answer with its reference: %s", type(error).__name__)
        return None


def _import_math_verify() -> Any:
    try:
        import math_verify
    except ImportError as error:
        raise ImportError(
            "math_answer_reward needs the math-verify package: pip install 'selftaught[rewards]'"
        ) from error
    return math_verify
