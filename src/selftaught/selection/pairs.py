"""Preference pairs from one prompt's scored samples: the pair builders of offline and online DPO.

Every builder takes a prompt and its samples with their rewards, `(completion, reward)`, and returns
a `GroupPairs`: the pairs, how many samples could not be scored (reward `None`: excluded from both
sides, never read as 0), and why no pair was possible when there is none. `compute_pair_stats`
sums these over prompts, which gives the pair yield that DPO recipes report.

papers_B §1.4, step 4 (Lanchantin et al. 2025, "Bridging offline and online RL"):
  - verifiable rewards (0/1): chosen = a *random* correct sample, rejected = a *random* incorrect
    one (`correct_vs_incorrect`); prompts whose pool is all correct or all wrong give no pair;
  - scalar rewards (a reward model): chosen = the highest reward, rejected = the lowest
    (`best_vs_worst`);
  - GroupDPO: every correct x incorrect pair (`all_pairs`); the loss averages over a group's pairs,
    so each pair carries `meta["num_group_pairs"]`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from selftaught.types import Completion, Pair, Prompt, StrEnum

Scored = tuple[Completion, float | None]
"""A sample and its reward; `None` = could not be scored."""


class SkipReason(StrEnum):
    """Why a prompt gave no pair."""

    UNSCORED = "unscored"
    """No sample has a reward."""
    ALL_CORRECT = "all_correct"
    """Verifiable rewards: no scored sample is wrong."""
    NONE_CORRECT = "none_correct"
    """Verifiable rewards: no scored sample is right."""
    TIED = "tied"
    """Scalar rewards: every scored sample has the same reward (or only one is scored)."""
    SAME_RESPONSE = "same_response"
    """DivPO: the chosen and the rejected sample have the same text."""
    JUDGE_UNPARSED = "judge_unparsed"
    """DivPO with an LLM diversity judge: its answer was not one candidate number."""


@dataclass
class GroupPairs:
    """The pairs built from one prompt's samples, and what was left out."""

    pairs: list[Pair] = field(default_factory=list)
    num_unscored: int = 0
    """Samples whose reward was `None`: excluded from both sides."""
    skip_reason: SkipReason | None = None
    """Set exactly when `pairs` is empty."""


def correct_vs_incorrect(prompt: Prompt, scored: Sequence[Scored], rng: random.Random) -> GroupPairs:
    """One pair: a random correct sample (reward 1) against a random incorrect one (reward 0).

    `rng` makes the choice; seed it per prompt (e.g. `random.Random(f"{seed}|{prompt.id}")`) so the
    pair does not depend on which other prompts are processed. Rewards other than 0, 1 and `None`
    raise a ValueError (use `best_vs_worst` for scalar rewards).
    """
    correct, incorrect, num_unscored = _split_binary(scored, "correct_vs_incorrect")
    reason = _binary_skip_reason(correct, incorrect)
    if reason is not None:
        return GroupPairs(num_unscored=num_unscored, skip_reason=reason)
    meta = _binary_meta("correct_vs_incorrect", len(scored), len(correct), num_group_pairs=1)
    pair = Pair(prompt, rng.choice(correct), rng.choice(incorrect), meta)
    return GroupPairs([pair], num_unscored)


def all_pairs(prompt: Prompt, scored: Sequence[Scored]) -> GroupPairs:
    """Every correct x incorrect pair (GroupDPO, papers_B §1.5), correct samples in the outer loop.

    Each pair's `meta["num_group_pairs"]` is `|Y_c| * |Y_r|`: GroupDPO weights a pair's loss by
    its inverse, so every prompt counts once whatever its pool.
    """
    correct, incorrect, num_unscored = _split_binary(scored, "all_pairs")
    reason = _binary_skip_reason(correct, incorrect)
    if reason is not None:
        return GroupPairs(num_unscored=num_unscored, skip_reason=reason)
    meta = _binary_meta("all_pairs", len(scored), len(correct), len(correct) * len(incorrect))
    pairs = [Pair(prompt, chosen, rejected, dict(meta)) for chosen in correct for rejected in incorrect]
    return GroupPairs(pairs, num_unscored)


def best_vs_worst(prompt: Prompt, scored: Sequence[Scored]) -> GroupPairs:
    """One pair: the highest-reward sample against the lowest (scalar rewards, e.g. a reward model).

    Ties go to the earliest sample, so the result is deterministic. No pair when all scored
    rewards are equal (the preference would be arbitrary).
    """
    valid = [(completion, reward) for completion, reward in scored if reward is not None]
    num_unscored = len(scored) - len(valid)
    if not valid:
        return GroupPairs(num_unscored=num_unscored, skip_reason=SkipReason.UNSCORED)
    best = max(valid, key=lambda item: item[1])  # max / min return the first of equal items
    worst = min(valid, key=lambda item: item[1])
    if best[1] == worst[1]:
        return GroupPairs(num_unscored=num_unscored, skip_reason=SkipReason.TIED)
    meta = {
        "rule": "best_vs_worst",
        "chosen_reward": best[1],
        "rejected_reward": worst[1],
        "num_samples": len(scored),
        "num_scored": len(valid),
    }
    return GroupPairs([Pair(prompt, best[0], worst[0], meta)], num_unscored)


def compute_pair_stats(groups: Sequence[GroupPairs]) -> dict[str, float]:
    """Counts over prompts: `num_prompts`, `num_pairs`, `pair_yield` (fraction of prompts with at
    least one pair), `num_unscored` samples, and `skipped_<reason>` for every `SkipReason`."""
    stats: dict[str, float] = {
        "num_prompts": len(groups),
        "num_pairs": sum(len(group.pairs) for group in groups),
        "pair_yield": sum(bool(group.pairs) for group in groups) / max(len(groups), 1),
        "num_unscored": sum(group.num_unscored for group in groups),
    }
    for reason in SkipReason:
        stats[f"skipped_{reason}"] = sum(group.skip_reason is reason for group in groups)
    return stats


def _split_binary(scored: Sequence[Scored], rule: str) -> tuple[list[Completion], list[Completion], int]:
    """`(correct, incorrect, num_unscored)`; a ValueError for a reward that is not 0, 1 or None."""
    correct: list[Completion] = []
    incorrect: list[Completion] = []
    num_unscored = 0
    for index, (completion, reward) in enumerate(scored):
        if reward is None:
            num_unscored += 1
        elif reward == 1:
            correct.append(completion)
        elif reward == 0:
            incorrect.append(completion)
        else:
            raise ValueError(
                f"{rule} needs verifier rewards 0 or 1 (or None), got {reward!r} for sample {index}; "
                "use best_vs_worst for scalar rewards"
            )
    return correct, incorrect, num_unscored


def _binary_skip_reason(correct: list[Completion], incorrect: list[Completion]) -> SkipReason | None:
    if not correct and not incorrect:
        return SkipReason.UNSCORED
    if not incorrect:
        return SkipReason.ALL_CORRECT
    if not correct:
        return SkipReason.NONE_CORRECT
    return None


def _binary_meta(rule: str, num_samples: int, num_correct: int, num_group_pairs: int) -> dict[str, object]:
    return {
        "rule": rule,
        "chosen_reward": 1.0,
        "rejected_reward": 0.0,
        "num_samples": num_samples,
        "num_correct": num_correct,
        "num_group_pairs": num_group_pairs,
    }
