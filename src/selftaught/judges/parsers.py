"""Strict parsers for judge outputs: a verdict or scores is read exactly as the template asks, or not at all.

Every parser maps the judge's raw text to a `Parsed`: the verdict (`"A"`, `"B"`, `"tie"`) and/or the
scores, or `error` naming why nothing usable was found. A malformed, missing or contradictory answer
is never guessed (J1, papers_B §2.4; Self-Taught Evaluator `parse_judgement`, papers_A §5.1):

- `<answer>` formats read only the LAST complete `<answer>...</answer>` block, so a verdict quoted
  while thinking does not count; `[[A]]` and `[[B]]` both in that block is contradictory -> no verdict.
- bare `[[A]]` / `[[B]]` formats (MT-Bench style) read the whole text; two different verdicts anywhere
  are contradictory -> no verdict.
- a score is the LAST `<score...>` block of its tag holding one plain number in [0, 10]; `8/10`,
  `eight`, `11` or `-1` -> no score.

Pairwise scores give the verdict by comparison (equal scores = `"tie"`). When a template asks for
scores AND a verdict (PaVS), the verdict is the answer, as in J1, where scores are latent aids: a
verdict that contradicts the scores is kept and the disagreement is recorded in `meta`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from selftaught.world.arith import extract_answer
from selftaught.world.list_tasks import computed_output

MIN_SCORE, MAX_SCORE = 0.0, 10.0
VERDICT_PATTERN = re.compile(r"\[\[([ABC])\]\]")
NUMBER_PATTERN = re.compile(r"\s*(-?\d+(?:\.\d+)?)\s*")
_LETTER_TO_VERDICT = {"A": "A", "B": "B", "C": "tie"}


@dataclass(frozen=True)
class Parsed:
    """What a parser read from one judge output."""

    verdict: str | None = None
    """`"A"`, `"B"` or `"tie"` as presented (before undoing any order swap); `None` = no verdict."""
    scores: list[float] | None = None
    """Pairwise `[score_A, score_B]` or pointwise `[score]`; `None` when the format has none or they failed."""
    error: str | None = None
    """Why the format's answer could not be read (`no_answer_block`, `contradictory_verdict`, ...); `None` = ok."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Secondary findings, e.g. PaVS scores that disagree with the verdict."""


Parser = Callable[[str], Parsed]
"""Raw judge text -> `Parsed`."""


def last_block(text: str, tag: str) -> str | None:
    """Content of the last complete `<tag>...</tag>` block in `text`, or `None` when there is none."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
    return blocks[-1] if blocks else None


def read_verdict(text: str, allow_tie: bool) -> tuple[str | None, str | None]:
    """`(verdict, error)` from the `[[A]]` / `[[B]]` (and `[[C]]` = tie when `allow_tie`) marks in `text`.

    One distinct mark -> its verdict; none -> `no_verdict`; several distinct ones -> `contradictory_verdict`.
    """
    letters = set(VERDICT_PATTERN.findall(text))
    if not allow_tie:
        letters.discard("C")
    if not letters:
        return None, "no_verdict"
    if len(letters) > 1:
        return None, "contradictory_verdict"
    return _LETTER_TO_VERDICT[letters.pop()], None


def read_score(text: str, tag: str) -> tuple[float | None, str | None]:
    """`(score, error)` from the last `<tag>` block: one number in [0, 10], nothing else."""
    block = last_block(text, tag)
    if block is None:
        return None, f"no_{tag}"
    match = NUMBER_PATTERN.fullmatch(block)
    if match is None:
        return None, f"bad_{tag}"
    value = float(match.group(1))
    if not MIN_SCORE <= value <= MAX_SCORE:
        return None, f"{tag}_out_of_range"
    return value, None


def verdict_from_scores(score_a: float, score_b: float) -> str:
    """The higher score wins; equal scores are a tie."""
    if score_a == score_b:
        return "tie"
    return "A" if score_a > score_b else "B"


def parse_answer_verdict(text: str) -> Parsed:
    """J1 PaV and EvalPlanner: the verdict in the last `<answer>` block, `<answer> [[A]] </answer>`."""
    block = last_block(text, "answer")
    if block is None:
        return Parsed(error="no_answer_block")
    verdict, error = read_verdict(block, allow_tie=False)
    return Parsed(verdict=verdict, error=error)


def parse_bare_verdict(text: str) -> Parsed:
    """`[[A]]` or `[[B]]` anywhere in the text (`[[C]]` is not a verdict here; see `parse_bare_verdict_or_tie`)."""
    verdict, error = read_verdict(text, allow_tie=False)
    return Parsed(verdict=verdict, error=error)


def parse_bare_verdict_or_tie(text: str) -> Parsed:
    """Self-Taught Evaluator / MT-Bench: `[[A]]`, `[[B]]` or `[[C]]` (tie) anywhere in the text."""
    verdict, error = read_verdict(text, allow_tie=True)
    return Parsed(verdict=verdict, error=error)


def parse_pairwise_scores(text: str) -> Parsed:
    """J1 PaS: `<score_A> s_a </score_A> <score_B> s_b </score_B>`; the verdict is the higher score."""
    score_a, error_a = read_score(text, "score_A")
    score_b, error_b = read_score(text, "score_B")
    if score_a is None or score_b is None:
        return Parsed(error=error_a or error_b)
    return Parsed(verdict=verdict_from_scores(score_a, score_b), scores=[score_a, score_b])


def parse_scores_and_verdict(text: str) -> Parsed:
    """J1 PaVS: scores, then an `<answer>` verdict. The verdict is the answer (J1 rewards it alone).

    `meta["score_verdict"]` is what the scores say (`None` when they cannot be read, with
    `meta["score_error"]`), and `meta["scores_contradict_verdict"]` is True when the scores
    strictly favour the other response. Equal scores do not contradict a verdict.
    """
    verdict = parse_answer_verdict(text)
    scored = parse_pairwise_scores(text)
    meta: dict[str, Any] = {"score_verdict": scored.verdict}
    if scored.error is not None:
        meta["score_error"] = scored.error
    elif verdict.verdict is not None:
        meta["scores_contradict_verdict"] = scored.verdict not in (verdict.verdict, "tie")
    return Parsed(verdict=verdict.verdict, scores=scored.scores, error=verdict.error, meta=meta)


def own_answer(text: str) -> str | None:
    """The answer a judgment's thinking computed: its first `Answer: N` (tiny-world arithmetic), else
    the output a list-task check trace starts with (`world.list_tasks.computed_output`); None
    when it has neither."""
    answer = extract_answer(text)
    return computed_output(text) if answer is None else str(answer)


BRACKET_SCORE_PATTERN = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")


def parse_bracket_score(text: str) -> Parsed:
    """The tiny world's pointwise judge: one score in the last `[[s]]`, e.g. `... yes [[1]]`."""
    found = BRACKET_SCORE_PATTERN.findall(text)
    if not found:
        return Parsed(error="no_score")
    value = float(found[-1])
    if not MIN_SCORE <= value <= MAX_SCORE:
        return Parsed(error="score_out_of_range")
    return Parsed(scores=[value])


def parse_pointwise_score(text: str) -> Parsed:
    """J1 PoS: one score in the last `<score> s </score>` block."""
    score, error = read_score(text, "score")
    return Parsed(scores=None if score is None else [score], error=error)
