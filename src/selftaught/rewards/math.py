r"""Math answer verification: find the final answer, normalise how it is written, compare with math-verify.

Which part of a completion is the answer (`answer_span`): the latest explicit answer, that is the
last of a `\boxed{...}` / `\fbox{...}` (balanced braces), a `####` line (GSM8K's marker) and an
"answer is ..." / "Answer: ..." phrase, so an earlier boxed draft followed by a different final
answer counts as the final one; with no explicit answer, the whole text, where math-verify takes a
LaTeX environment or else the last number. A phrase or `####` answer ends at its sentence (`.`,
`;`, line end), and a trailing clause is cut: a parenthetical with words (`18 (since 20 - 2)`),
`, which ...`, ` since/because/so ...`. A completion that starts a new `Question:` (a few-shot
continuation) is cut there first.

Before parsing, `math_text.normalize_numbers` rewrites unicode minus signs, thin-space / space /
`\,` thousands separators, `\$`, `\text{unit}` after a number, scientific notation (`1.2e3`,
`1.2 \times 10^3`), magnitude words (`1.5 million`) and mixed numbers (`3 1/2`); number words
(`eighteen`, `twenty-one`) are read as numbers in an explicit answer; without one, after the
text's last digit (`ate all 5, so zero are left`; a lone `one` there is read as a pronoun). math-verify parses the span to a SymPy value and `verify` compares it with the
parsed reference: numerically to 6 decimals or symbolically, so `1/2`, `0.5` and `\frac{1}{2}` are
equal, `$1,000` equals `1000`, and units and currency signs are dropped. A percentage matches both
readings: `12.5%` equals `0.125` and `12.5` (math-verify reads the first; we add the second).

Scoring policy (`score_math_answer`):
  - 1.0 when the completion's answer equals the reference, 0.0 when it differs;
  - 0.0 when the completion has no parsable answer: for an answer-verification reward, a missing
    answer is a wrong answer (the model was asked for one);
  - 0.0 for a hedge: two different numbers joined by "or" in the answer (`18 or 19`; the last
    sentence when there is no explicit answer), or two different boxes with only "or", "and" or
    punctuation between them (`\boxed{18} or \boxed{19}`); one number written two ways (equal to
    0.5%: `1/3 or 0.333`) is no hedge, and the first way counts;
  - 0.0 for an unfinished completion: the text ends in an operator, `=` or `(` (`16 - 3 - 4 =`)
    and has no `####` answer, or it was truncated (`finish_reason == "length"`) with no explicit
    answer. The Rubric's default `on_truncated="score"` relies on this;
  - None when the reference is missing or has no parsable value (a data problem, not the model's),
    or when math-verify timed out or failed on this sample. A reference in number words
    (`#### four`) is that number.

Threads: math-verify bounds each parse and comparison with `signal.alarm`, which only works in the
main thread. There every call gets `TIMEOUT_SECONDS`; in any other thread (a thread-pool scorer,
an async server) calls run without a time limit, and math-verify logs a one-time warning saying so.

math-verify (the `rewards` extra) is imported on first use, so `import selftaught.rewards` stays light.
"""

from __future__ import annotations

import logging
import re
import threading
from fractions import Fraction
from typing import Any

from selftaught.rewards.base import TextOrChat, check_column, completion_text
from selftaught.rewards.math_text import normalize_numbers, words_to_numbers

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5
"""Time limit of one math-verify parse or comparison (main thread only, see the module doc)."""

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_FINAL_MARKER = "####"
_LATEX_CHARS = re.compile(r"[\\^{}()\[\]_=+*]")
_ANSWER_PHRASE = re.compile(r"\banswer\b(?:\s+is\b|\s*\**\s*:)[\s*:]*", re.IGNORECASE)
_PHRASE_END = re.compile(r"\.(?!\d)|[;\n?!]")
_CLAUSE = re.compile(
    r"\s+\([^()]*(?:[A-Za-z]{2}|=)[^()]*\).*|,\s+[A-Za-z]{2,}.*|\s+(?:since|because|so|as|which)\b.*",
    re.DOTALL,
)
_NEXT_QUESTION = re.compile(r"\n\s*Question:")
_UNFINISHED = re.compile(r"(?:[=+\-/^(]|(?<!\*)\*|\\times|\\cdot|\\div)\s*$")
_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"
_HEDGE = re.compile(rf"({_NUMBER})\s*,?\s*(?:\\text\{{\s*)?\bor\b(?:\s*\}})?\s*\$?\s*({_NUMBER})")
_BOX_GAP = re.compile(r"[\s$,;/.]*(?:(?:or|and|maybe|possibly|perhaps|either)\b[\s$,;/.]*)*", re.IGNORECASE)

Parsed = list[Any]
"""What math-verify's `parse` returns: SymPy values and the matched strings, `[]` when none."""


def last_boxed(text: str) -> str | None:
    r"""The last `\boxed{...}` of `text` (braces balanced), or None when there is none or it is unclosed.

    >>> last_boxed(r"first \boxed{2}, then \boxed{\frac{1}{3}}.")
    '\\boxed{\\frac{1}{3}}'
    """
    boxes = _boxes(text)
    return text[slice(*boxes[-1])] if boxes else None


def answer_span(text: str) -> str:
    """The part of `text` that holds the final answer: the latest explicit answer, or all of it."""
    explicit = _explicit_answer(text)
    return text if explicit is None else explicit


def parse_reference(answer: str | None) -> Parsed | None:
    r"""The parsed reference answer, or None when it is missing or holds no mathematical value.

    The reference may be a bare value, a GSM8K answer field ending with `#### 42`, or a solution with
    a `\boxed{}` answer (see `answer_span`). A bare value with LaTeX or operator characters
    (`\frac{\sqrt{3}}{2}`, `(3, -1)`, `x^2+1`, `x = 5`) is read as LaTeX, as if inside `$...$`:
    the MATH convention. Any other value is read as text with a number in it (`1,000`, `0.5`,
    `$18`, `18 dollars`, `four`), so a reference in words with no number (`N/A`, `unknown`) is None.
    A math-verify timeout or failure on the reference is None too.
    """
    if answer is None or not str(answer).strip():
        return None
    span = words_to_numbers(answer_span(normalize_numbers(str(answer))).strip())
    if _LATEX_CHARS.search(span) and "$" not in span and not _BOXED.match(span):
        span = f"${span}$"
    # no string fallback: a reference must hold a value, not just text
    return _parse(span, fallback_mode="no_fallback") or None


def score_math_answer(text: str, reference: Parsed | None, finish_reason: str | None = None) -> float | None:
    """1.0 / 0.0 when the answer in `text` equals / differs from `reference` (from `parse_reference`).

    No parsable answer, a hedge or an unfinished completion is wrong (0.0); None means could not
    score (no reference, or a math-verify timeout or failure). See the module doc.
    """
    if reference is None:
        return None
    text = _NEXT_QUESTION.split(normalize_numbers(text), maxsplit=1)[0]
    explicit = _explicit_answer(text)
    if _unfinished(text, explicit, finish_reason):
        return 0.0
    span = words_to_numbers(explicit) if explicit is not None else _fallback_span(text)
    if _is_hedge(span if explicit is not None else _last_sentence(text)) or _boxes_hedge(text):
        return 0.0
    predicted = _parse(_HEDGE.sub(r"\1", span))  # `1/3 or 0.333`: the first way of writing it
    if predicted is None:
        return None
    if not predicted:
        return 0.0
    score = _verify(reference, predicted)
    if score == 0.0 and "%" in span and len(predicted) > 1 and isinstance(predicted[1], str):
        number = _parse(predicted[1].replace("\\%", "").replace("%", ""))  # `12.5%` read as 12.5
        score = _verify(reference, number) if number else score
    return score


def math_answer_reward(
    prompts: list[TextOrChat], completions: list[TextOrChat], answer: list[str | None], **columns: Any
) -> list[float | None]:
    r"""Math answer verification (see the module doc): 1.0 right, 0.0 wrong or no answer, None unscorable.

    Reads the optional `finish_reason` column (a truncated completion needs an explicit answer).

    >>> math_answer_reward(["1/2 + 1/4?"] * 3, [r"\boxed{\frac{3}{4}}", "It is 0.75.", "No idea."], ["3/4"] * 3)
    [1.0, 1.0, 0.0]
    """
    check_column("answer", answer, len(completions), "math_answer_reward")
    finish_reasons = columns.get("finish_reason") or [None] * len(completions)
    references: dict[str | None, Parsed | None] = {}  # GRPO groups share a reference: parse it once
    rewards: list[float | None] = []
    for completion, gold, reason in zip(completions, answer, finish_reasons, strict=True):
        if gold not in references:
            references[gold] = parse_reference(gold)
        rewards.append(score_math_answer(completion_text(completion), references[gold], reason))
    return rewards


def _boxes(text: str) -> list[tuple[int, int]]:
    """(start, end) of every closed `\\boxed{...}` in `text`, in order."""
    spans = []
    for match in _BOXED.finditer(text):
        depth = 0
        for end in range(match.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                spans.append((match.start(), end + 1))
                break
    return spans


def _explicit_answer(text: str) -> str | None:
    """The latest box, `####` line or answer phrase of `text` (see the module doc), or None."""
    candidates = [(start, text[start:end]) for start, end in _boxes(text)[-1:]]
    if _FINAL_MARKER in text:
        start = text.rindex(_FINAL_MARKER)
        line = text[start + len(_FINAL_MARKER) :].strip().split("\n", 1)[0]
        candidates.append((start, _cut_clause(line)))
    phrases = list(_ANSWER_PHRASE.finditer(text))
    if phrases:
        rest = text[phrases[-1].end() :]
        phrase_answer = _cut_clause(_PHRASE_END.split(rest, maxsplit=1)[0])
        if phrase_answer:  # "... what the answer is. First, ..." gives no answer
            candidates.append((phrases[-1].start(), phrase_answer))
    return max(candidates)[1] if candidates else None


def _cut_clause(span: str) -> str:
    """`span` without a trailing explanation, and without `$` signs when they are unbalanced."""
    span = _CLAUSE.sub("", span.strip()).strip().rstrip(".,")
    return span.replace("$", "") if span.count("$") % 2 else span


def _fallback_span(text: str) -> str:
    """The whole text, with the number words after its last digit written as digits."""
    digits = list(re.finditer(r"\d", text))
    tail = digits[-1].end() if digits else 0
    return text[:tail] + words_to_numbers(text[tail:], keep_one=bool(digits))


def _last_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+|\n", text.strip())[-1]


def _unfinished(text: str, explicit: str | None, finish_reason: str | None) -> bool:
    """The text stops inside an expression, or was truncated before any explicit answer."""
    if finish_reason == "length" and explicit is None:
        return True
    return _FINAL_MARKER not in text and _UNFINISHED.search(text) is not None


def _is_hedge(span: str) -> bool:
    """`span` offers two different numbers joined by "or" (`18 or 19`; `1/3 or 0.333` is one number)."""
    return any(not _same_number(a, b) for a, b in _HEDGE.findall(words_to_numbers(span)))


def _boxes_hedge(text: str) -> bool:
    """The last two boxes differ and only "or", "and", punctuation or `$` separate them."""
    boxes = _boxes(text)
    if len(boxes) < 2:
        return False
    (start1, end1), (start2, end2) = boxes[-2:]
    different = text[start1:end1] != text[start2:end2]
    return different and _BOX_GAP.fullmatch(text[end1:start2]) is not None


def _same_number(a: str, b: str) -> bool:
    """Equal to 0.5% (a rounded decimal is the same answer); different strings otherwise."""
    try:
        x, y = (Fraction(text.replace(",", "")) for text in (a, b))
    except (ValueError, ZeroDivisionError):
        return a == b
    return abs(x - y) <= Fraction(1, 200) * max(abs(x), abs(y))


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
