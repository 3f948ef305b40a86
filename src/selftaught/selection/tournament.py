"""Tournament selection of the best candidate by a judge (RAG self-demos, papers_A.md §4.1 step 4).

Per question the candidates are shuffled (a seeded generator per question), cut into brackets of
`bracket_size` (3); the judge picks one per bracket, and the winners advance round by round until at
most `bracket_size` remain, which a final bracket decides. Nine candidates: three brackets, then a
final. A bracket of one advances without a judge call. Missing candidates (None: a generation that
failed) never enter a bracket, and every choice is mapped back to the candidate's index in the
original list, so a None cannot shift the winner (the released code's `choose_best` filtered Nones
*after* numbering and could pick the wrong candidate). When the judge gives no parseable choice for a
bracket within its retries, the question is dropped and counted, never guessed.

    result = run_tournament(candidates, choose, rng=random.Random(key), bracket_size=3)
    result.winner      # index into `candidates`, or None (dropped, or no candidate)

`choose(indices) -> position | None` sees the candidate indices of one bracket (in bracket order)
and returns the position of its choice within the bracket, or None when it never parsed. The judges:
`preference_chooser` (a programmatic one from a score per candidate, ties to the earlier position)
and `parse_best` for LLM judges (`Best: Prediction k`, strict).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Chooser = Callable[[list[int]], "int | None"]
BEST_PATTERN = re.compile(r"Best:\s*(?:Prediction\s*)?(\d+)\s*\.?\s*$", re.IGNORECASE)


@dataclass
class TournamentResult:
    winner: int | None
    """Index of the winning candidate in the original list; None when dropped or empty."""
    brackets: list[list[int]] = field(default_factory=list)
    """Every judged or walked-over bracket, as candidate indices in the order shown."""
    judge_calls: int = 0
    dropped: bool = False
    """The judge never gave a parseable choice for one bracket."""


def run_tournament(
    candidates: Sequence[object | None],
    choose: Chooser,
    *,
    rng: random.Random,
    bracket_size: int = 3,
) -> TournamentResult:
    """The winner of `candidates` (None entries excluded) by brackets of `bracket_size`."""
    if bracket_size < 2:
        raise ValueError(f"bracket_size must be >= 2, got {bracket_size}")
    alive = [i for i, c in enumerate(candidates) if c is not None]
    rng.shuffle(alive)
    result = TournamentResult(winner=None)
    if not alive:
        return result
    while True:
        final = len(alive) <= bracket_size
        brackets = (
            [alive] if final else [alive[k : k + bracket_size] for k in range(0, len(alive), bracket_size)]
        )
        winners = []
        for bracket in brackets:
            result.brackets.append(list(bracket))
            if len(bracket) == 1:
                winners.append(bracket[0])
                continue
            result.judge_calls += 1
            position = choose(list(bracket))
            if position is None:
                result.dropped = True
                return result
            if not 0 <= position < len(bracket):
                raise ValueError(f"the judge chose position {position} of a bracket of {len(bracket)}")
            winners.append(bracket[position])
        if final:
            result.winner = winners[0]
            return result
        alive = winners


def preference_chooser(scores: Sequence[float]) -> Chooser:
    """A programmatic judge: the bracket's candidate with the highest `scores[index]`, ties to the
    earlier position (the bracket order is the tournament's seeded shuffle)."""

    def choose(indices: list[int]) -> int:
        best = max(scores[i] for i in indices)
        return next(position for position, i in enumerate(indices) if scores[i] == best)

    return choose


def parse_best(text: str, num: int) -> int | None:
    """The 0-based position the judge chose from its last line `Best: Prediction k` (1-based k; `Best:
    k` also accepted, case-insensitive, an optional period), or None when the last non-empty line is
    not that form or k is not in 1..`num`.

    >>> parse_best("The second is right.\\nBest: Prediction 2", 3), parse_best("Best: 4", 3)
    (1, None)
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    match = BEST_PATTERN.fullmatch(lines[-1]) if lines else None
    if match is None:
        return None
    k = int(match.group(1))
    return k - 1 if 1 <= k <= num else None


@dataclass
class JudgeStats:
    calls: int = 0
    """Replies asked for (every attempt)."""
    unparsed: int = 0
    """Replies that did not parse (each retried until `retries` is spent)."""
    failed: int = 0
    """Brackets that never got a parseable reply (their question is dropped)."""


def judge_chooser(
    ask: Callable[[list[int], int], str], *, retries: int = 5, stats: JudgeStats | None = None
) -> Chooser:
    """A chooser from an LLM judge: `ask(indices, attempt)` returns the judge's reply for the bracket
    (attempt 0, 1, ...: a retry should sample anew); the reply is read with `parse_best`, retried up to
    `retries` more times, then None. `stats` counts the calls and failures."""
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    stats = stats if stats is not None else JudgeStats()

    def choose(indices: list[int]) -> int | None:
        for attempt in range(retries + 1):
            stats.calls += 1
            position = parse_best(ask(indices, attempt), len(indices))
            if position is not None:
                return position
            stats.unparsed += 1
        stats.failed += 1
        return None

    return choose
