"""Selection (layer L4): which samples become training data. Pair builders for DPO-style recipes."""

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
    "all_pairs",
    "best_vs_worst",
    "compute_pair_stats",
    "correct_vs_incorrect",
]
