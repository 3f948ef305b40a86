"""Self-consistency: the majority answer of one prompt's N samples, and a filter on its vote share.

System 2 distillation (papers_A §3.1 (a), Yu et al. 2024) keeps an unlabelled input only when its
System 2 samples agree: sample N times (N = 8 for RaR, 10 for CoT), extract each final answer, take
the majority answer as the training target, and discard the input when there is no majority or the
agreement is below a threshold. NaturalReasoning uses the same vote over 32 samples.

- Answers come from a caller-given extractor; `None` means the sample could not be parsed. Such
  samples are counted (`Vote.num_unparsed`) and vote for nothing, but stay in the denominator of
  the share: 2 agreeing answers out of 8 samples is a share of 0.25, not 1.0.
- Ties: the majority answer is the tied answer that appeared first among the samples (so the
  result is deterministic), and `Vote.tied` is set. `select_consistent` drops tied prompts, since
  a tie is no majority.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Vote:
    """The outcome of a majority vote over one prompt's samples."""

    answer: Any
    """The most frequent parsed answer (first seen among tied ones); None when no sample parsed."""
    num_votes: int
    """Samples whose answer is `answer`."""
    num_samples: int
    """All samples, parsed or not."""
    num_unparsed: int
    """Samples the extractor returned None for."""
    tied: bool = False
    """Another answer has as many votes as `answer`."""

    @property
    def share(self) -> float:
        """`num_votes / num_samples` (unparsed samples count against agreement); 0.0 with no samples."""
        return self.num_votes / self.num_samples if self.num_samples else 0.0


def majority_vote(answers: Sequence[Hashable | None]) -> Vote:
    """The majority of `answers` (one per sample, None = unparseable); answers compare with `==`,
    so normalise them in the extractor (strip, lower-case, parse numbers)."""
    counts = Counter(answer for answer in answers if answer is not None)
    num_unparsed = sum(answer is None for answer in answers)
    if not counts:
        return Vote(None, 0, len(answers), num_unparsed)
    ranked = counts.most_common()  # stable: equal counts keep first-seen order
    answer, num_votes = ranked[0]
    tied = len(ranked) > 1 and ranked[1][1] == num_votes
    return Vote(answer, num_votes, len(answers), num_unparsed, tied)


def vote_texts(texts: Sequence[str], extract: Callable[[str], Hashable | None]) -> Vote:
    """`majority_vote` over the answers `extract` reads from sampled `texts` (None = could not parse)."""
    return majority_vote([extract(text) for text in texts])


def select_consistent(
    items: Sequence[T], votes: Sequence[Vote], min_share: float
) -> tuple[list[tuple[T, Vote]], dict[str, float]]:
    """The `(item, vote)` pairs whose vote has a unique majority answer with `share >= min_share`,
    in input order, and counts of what was dropped and why.

    Counts: `num_items`, `num_kept`, `num_no_answer` (no sample parsed), `num_tied`,
    `num_below_share` (a unique majority under the threshold), `num_unparsed` samples over all items.
    """
    if not 0 <= min_share <= 1:
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
    if len(items) != len(votes):
        raise ValueError(f"got {len(items)} items for {len(votes)} votes; give one vote per item")
    kept = []
    stats = dict.fromkeys(("num_no_answer", "num_tied", "num_below_share"), 0)
    for item, vote in zip(items, votes, strict=True):
        reason = _drop_reason(vote, min_share)
        if reason is None:
            kept.append((item, vote))
        else:
            stats[reason] += 1
    num_unparsed = sum(vote.num_unparsed for vote in votes)
    return kept, {"num_items": len(items), "num_kept": len(kept), **stats, "num_unparsed": num_unparsed}


def _drop_reason(vote: Vote, min_share: float) -> str | None:
    if vote.answer is None:
        return "num_no_answer"
    if vote.tied:
        return "num_tied"
    if vote.share < min_share:
        return "num_below_share"
    return None
