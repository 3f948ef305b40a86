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

`run_tournaments` plays many questions' tournaments in lockstep: round by round, every bracket of
every question still playing goes to one `choose_round(asks)` call, so an LLM judge answers all of
them in one batched generate call (plus one per retry, for the replies that did not parse). Each
question's shuffle, brackets and winners are the ones `run_tournament` gives with the same generator
and judge; one difference: a bracket that never parses drops its question after the other brackets
of that round were judged too (they were asked in the same call), and they count in `judge_calls`.

    results = run_tournaments(candidate_lists, choose_round, rngs=[random.Random(k) for k in keys])
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Chooser = Callable[[list[int]], "int | None"]
RoundChooser = Callable[[list[tuple[int, list[int]]]], "list[int | None]"]
"""`choose_round(asks)`: for each `(question, indices)` of a round (the question's position in the
lists given to `run_tournaments`, one bracket's candidate indices in bracket order), the position of
the choice within the bracket, or None when it never parsed."""
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
    alive = shuffled_alive(candidates, rng)
    result = TournamentResult(winner=None)
    if not alive:
        return result
    while True:
        brackets, final = split_brackets(alive, bracket_size)
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
            winners.append(bracket[checked(position, bracket)])
        if final:
            result.winner = winners[0]
            return result
        alive = winners


def run_tournaments(
    candidate_lists: Sequence[Sequence[object | None]],
    choose_round: RoundChooser,
    *,
    rngs: Sequence[random.Random],
    bracket_size: int = 3,
) -> list[TournamentResult]:
    """`run_tournament` for every list of `candidate_lists` (with `rngs[q]` for list q), round by
    round: one `choose_round` call per round holds every bracket of more than one candidate of every
    question still playing. A question whose bracket gets None is dropped after that round."""
    if bracket_size < 2:
        raise ValueError(f"bracket_size must be >= 2, got {bracket_size}")
    if len(rngs) != len(candidate_lists):
        raise ValueError(f"one generator per candidate list: got {len(rngs)} for {len(candidate_lists)}")
    results = [TournamentResult(winner=None) for _ in candidate_lists]
    playing = {
        q: shuffled_alive(c, rng) for q, (c, rng) in enumerate(zip(candidate_lists, rngs, strict=True))
    }
    playing = {q: alive for q, alive in playing.items() if alive}
    while playing:
        rounds = {q: split_brackets(alive, bracket_size) for q, alive in playing.items()}
        asks = [(q, list(b)) for q, (brackets, _) in rounds.items() for b in brackets if len(b) > 1]
        positions = iter(choose_round(asks) if asks else [])
        playing = {}
        for q, (brackets, final) in rounds.items():
            result, winners = results[q], []
            for bracket in brackets:
                result.brackets.append(list(bracket))
                if len(bracket) == 1:
                    winners.append(bracket[0])
                    continue
                result.judge_calls += 1
                position = next(positions)
                if position is None:
                    result.dropped = True
                else:
                    winners.append(bracket[checked(position, bracket)])
            if result.dropped:
                continue
            if final:
                result.winner = winners[0]
            else:
                playing[q] = winners
    return results


def shuffled_alive(candidates: Sequence[object | None], rng: random.Random) -> list[int]:
    """The indices of the candidates that are not None, in the order `rng` shuffles them to."""
    alive = [i for i, c in enumerate(candidates) if c is not None]
    rng.shuffle(alive)
    return alive


def split_brackets(alive: list[int], bracket_size: int) -> tuple[list[list[int]], bool]:
    """The brackets of one round and whether it is the final (at most `bracket_size` left: one bracket)."""
    if len(alive) <= bracket_size:
        return [alive], True
    return [alive[k : k + bracket_size] for k in range(0, len(alive), bracket_size)], False


def checked(position: int, bracket: list[int]) -> int:
    """`position` when it is one of the bracket's, else a ValueError (a judge's bug, not a parse failure)."""
    if not 0 <= position < len(bracket):
        raise ValueError(f"the judge chose position {position} of a bracket of {len(bracket)}")
    return position


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
