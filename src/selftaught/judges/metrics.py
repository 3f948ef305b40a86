"""Judge metrics on pairs with a known winner, both orders (J1 §2.6, Self-Taught Evaluator §5.3).

Every pair is (chosen, rejected) and a pairwise judge sees it twice: chosen shown as A, and chosen
shown as B. Verdicts come in mapped back to the pair (`PairJudgments.verdicts`: `"A"` = chosen wins),
one per order (the majority over k samples). With N pairs:

- `accuracy_chosen_first`, `accuracy_chosen_second`: share of pairs judged right in each order.
  Their gap is the position-bias diagnostic: a judge that always answers `[[A]]` scores 1.0 and 0.0.
  (J1 reports acc(a,b) and acc(b,a) for one random order and its reverse: both estimate `accuracy`.)
- `accuracy`: their mean, the expected accuracy under one random order (RewardBench protocol).
- `consistent_accuracy`: share of pairs judged right in both orders (JudgeBench, FollowBenchEval).
- `flip_rate`: among the pairs with an A/B verdict in both orders, the share where the judge picks a
  different response in the two orders, i.e. the same letter twice; `None` when no pair qualifies.
- `tie_rate`: share of the 2N verdicts that are ties.
- `unparsed_rate`: share of the 2N verdicts that could not be read.
- `a_rate`: share of the readable A/B verdicts that say `[[A]]` as presented (0.5 = no letter preference).

Ties and unreadable verdicts count as wrong in every accuracy; the rates above say how many there were.

`rewardbench_scores` scores the same verdicts the RewardBench way (papers_A §5.3): each pair counts
in one order only, drawn by a coin seeded with the pair id (both orders are judged anyway, so this
is the single shuffled order at no extra cost); right = 1, wrong = 0, a tie or an unreadable verdict
= 0.5; the mean per `section`, and the overall score is the mean of the section scores.
A pointwise judge scores each response alone, so it has no positions: its positional fields are
`None`, a pair is right when chosen's (mean) score is higher, `tie_rate` is the share of the N pairs
with equal scores, and `unparsed_rate` the share of the 2N scores that could not be read.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, fields

from selftaught.judges.judge import swap_verdict

VerdictPair = tuple[str | None, str | None]
"""(verdict with chosen shown as A, verdict with chosen shown as B), both mapped back: `"A"` = chosen wins."""


@dataclass
class JudgeMetrics:
    """Judge accuracy and position-bias metrics over `num_pairs` pairs (definitions in the module doc)."""

    num_pairs: int
    accuracy: float
    consistent_accuracy: float
    tie_rate: float
    unparsed_rate: float
    accuracy_chosen_first: float | None = None
    accuracy_chosen_second: float | None = None
    flip_rate: float | None = None
    num_decided_pairs: int | None = None
    """Pairs with an A/B verdict in both orders: the denominator of `flip_rate`."""
    a_rate: float | None = None

    def table(self) -> str:
        """A markdown table, one metric per row; `-` for metrics that do not apply."""
        lines = ["| metric | value |", "|---|---|"]
        for f in fields(self):
            value = getattr(self, f.name)
            shown = "-" if value is None else value if isinstance(value, int) else f"{value:.3f}"
            lines.append(f"| {f.name} | {shown} |")
        return "\n".join(lines)


def compute_pairwise_metrics(verdicts: Sequence[VerdictPair]) -> JudgeMetrics:
    """Both-order metrics from one `VerdictPair` per pair (chosen = the pair's first response)."""
    if not verdicts:
        raise ValueError("compute_pairwise_metrics needs at least one pair")
    num_pairs = len(verdicts)
    right_first = [first == "A" for first, _ in verdicts]
    right_second = [second == "A" for _, second in verdicts]
    decided = [(first, second) for first, second in verdicts if first in ("A", "B") and second in ("A", "B")]
    every_verdict = [v for pair in verdicts for v in pair]
    presented = [first for first, _ in verdicts] + [swap_verdict(second) for _, second in verdicts]
    letters = [v for v in presented if v in ("A", "B")]
    accuracy_first, accuracy_second = sum(right_first) / num_pairs, sum(right_second) / num_pairs
    return JudgeMetrics(
        num_pairs=num_pairs,
        accuracy=(accuracy_first + accuracy_second) / 2,
        consistent_accuracy=sum(a and b for a, b in zip(right_first, right_second, strict=True)) / num_pairs,
        tie_rate=every_verdict.count("tie") / len(every_verdict),
        unparsed_rate=every_verdict.count(None) / len(every_verdict),
        accuracy_chosen_first=accuracy_first,
        accuracy_chosen_second=accuracy_second,
        flip_rate=sum(first != second for first, second in decided) / len(decided) if decided else None,
        num_decided_pairs=len(decided),
        a_rate=letters.count("A") / len(letters) if letters else None,
    )


def compute_pointwise_metrics(
    chosen_scores: Sequence[float | None], rejected_scores: Sequence[float | None]
) -> JudgeMetrics:
    """Metrics of a pointwise judge from each pair's (mean) scores; `None` = unreadable.

    A pair is right when chosen scores strictly higher, a tie when both scores are equal (J1's
    pointwise tie rate) and unreadable when either score is `None`.
    """
    if not chosen_scores or len(chosen_scores) != len(rejected_scores):
        raise ValueError(
            f"need one chosen and one rejected score per pair, got {len(chosen_scores)} and {len(rejected_scores)}"
        )
    num_pairs = len(chosen_scores)
    scored = [
        (c, r) for c, r in zip(chosen_scores, rejected_scores, strict=True) if c is not None and r is not None
    ]
    accuracy = sum(c > r for c, r in scored) / num_pairs
    num_unparsed = sum(s is None for s in (*chosen_scores, *rejected_scores))
    return JudgeMetrics(
        num_pairs=num_pairs,
        accuracy=accuracy,
        consistent_accuracy=accuracy,
        tie_rate=sum(c == r for c, r in scored) / num_pairs,
        unparsed_rate=num_unparsed / (2 * num_pairs),
    )


UNDECIDED_CREDIT = 0.5
"""RewardBench's credit for a tie or an unreadable verdict (a coin flip's expected score)."""
OVERALL = "overall"


def verdict_credit(verdict: str | None) -> float:
    """1 for the chosen response (`"A"` mapped back), 0 for the rejected one, 0.5 for a tie or None."""
    return 1.0 if verdict == "A" else 0.0 if verdict == "B" else UNDECIDED_CREDIT


def rewardbench_scores(
    verdicts: Sequence[VerdictPair], pair_ids: Sequence[str], sections: Sequence[str], seed: int = 0
) -> dict[str, float]:
    """RewardBench-style scores (module doc): `{"overall": mean of sections, <section>: mean credit}`.

    `verdicts` are both-order `VerdictPair`s; pair i counts with its first or second verdict as a
    coin seeded by `(seed, pair_ids[i])` says, so the drawn order does not depend on the other pairs.
    """
    if not verdicts or not len(verdicts) == len(pair_ids) == len(sections):
        raise ValueError(
            f"need one verdict pair, id and section per pair, got {len(verdicts)}, {len(pair_ids)}, "
            f"{len(sections)}"
        )
    credits: dict[str, list[float]] = {}
    for (first, second), pair_id, section in zip(verdicts, pair_ids, sections, strict=True):
        shown_first = random.Random(f"{seed}|{pair_id}").random() < 0.5
        credits.setdefault(section, []).append(verdict_credit(first if shown_first else second))
    scores = {section: sum(c) / len(c) for section, c in sorted(credits.items())}
    return {OVERALL: sum(scores.values()) / len(scores), **scores}


def rewardbench_pointwise_scores(
    chosen_scores: Sequence[float | None], rejected_scores: Sequence[float | None], sections: Sequence[str]
) -> dict[str, float]:
    """The same roll-up for a pointwise judge: chosen scored higher = 1, lower = 0, equal or unreadable = 0.5."""
    verdicts: list[VerdictPair] = []
    for c, r in zip(chosen_scores, rejected_scores, strict=True):
        verdict = None if c is None or r is None or c == r else "A" if c > r else "B"
        verdicts.append((verdict, verdict))
    return rewardbench_scores(verdicts, [str(i) for i in range(len(verdicts))], sections)
