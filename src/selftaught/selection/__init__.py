"""Selection (layer L4): which samples become training data. Pair builders for DPO-style recipes;
self-consistency (majority vote and a vote-share filter)."""

from selftaught.selection.consistency import Vote, majority_vote, select_consistent, vote_texts
from selftaught.selection.pairs import (
    GroupPairs,
    Scored,
    SkipReason,
    all_pairs,
    best_vs_worst,
    compute_pair_stats,
    correct_vs_incorrect,
)

__all__ = [
    "GroupPairs",
    "Scored",
    "SkipReason",
    "Vote",
    "all_pairs",
    "best_vs_worst",
    "compute_pair_stats",
    "correct_vs_incorrect",
    "majority_vote",
    "select_consistent",
    "vote_texts",
]
