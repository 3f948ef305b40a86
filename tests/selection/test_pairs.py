import random

import pytest

from selftaught.selection.pairs import (
    GroupPairs,
    SkipReason,
    all_pairs,
    best_vs_worst,
    compute_pair_stats,
    correct_vs_incorrect,
)
from selftaught.types import Completion, Prompt

PROMPT = Prompt(id="p", messages=[{"role": "user", "content": "1+1"}], answer="2")


def scored(rewards: list[float | None]) -> list[tuple[Completion, float | None]]:
    """Samples named by their index, `s0`, `s1`, ..., with the given rewards."""
    return [(Completion(prompt_id="p", text=f"s{i}"), reward) for i, reward in enumerate(rewards)]


def texts(group: GroupPairs) -> list[tuple[str, str]]:
    return [(pair.chosen.text, pair.rejected.text) for pair in group.pairs]


@pytest.mark.parametrize(
    ("rewards", "num_unscored", "reason"),
    [
        ([1, 0, 1, 0], 0, None),
        ([1, None, 0], 1, None),
        ([1, 1, None], 1, SkipReason.ALL_CORRECT),
        ([0, 0], 0, SkipReason.NONE_CORRECT),
        ([None, None], 2, SkipReason.UNSCORED),
        ([], 0, SkipReason.UNSCORED),
    ],
)
def test_correct_vs_incorrect_table(rewards, num_unscored, reason):
    group = correct_vs_incorrect(PROMPT, scored(rewards), random.Random(0))
    assert (group.num_unscored, group.skip_reason) == (num_unscored, reason)
    assert len(group.pairs) == (reason is None)
    for chosen, rejected in texts(group):
        assert rewards[int(chosen[1:])] == 1 and rewards[int(rejected[1:])] == 0


def test_correct_vs_incorrect_draws_every_correct_and_incorrect_sample():
    """The choice is random (seeded), not the first of each kind: over seeds all combinations appear."""
    rewards = [1, 0, 1, 0, 1]
    seen = {
        texts(correct_vs_incorrect(PROMPT, scored(rewards), random.Random(seed)))[0] for seed in range(100)
    }
    assert seen == {(f"s{c}", f"s{r}") for c in (0, 2, 4) for r in (1, 3)}
    again = correct_vs_incorrect(PROMPT, scored(rewards), random.Random(7))
    assert texts(again) == texts(correct_vs_incorrect(PROMPT, scored(rewards), random.Random(7)))
    assert again.pairs[0].meta == {
        "rule": "correct_vs_incorrect",
        "chosen_reward": 1.0,
        "rejected_reward": 0.0,
        "num_samples": 5,
        "num_correct": 3,
        "num_group_pairs": 1,
    }


@pytest.mark.parametrize(
    "builder", [lambda s: correct_vs_incorrect(PROMPT, s, random.Random(0)), lambda s: all_pairs(PROMPT, s)]
)
def test_binary_builders_reject_scalar_rewards(builder):
    with pytest.raises(ValueError, match="got 0.5 for sample 1; use best_vs_worst"):
        builder(scored([1, 0.5, 0]))


@pytest.mark.parametrize(
    ("rewards", "expected", "reason"),
    [
        ([1, 0, 1, None, 0], [("s0", "s1"), ("s0", "s4"), ("s2", "s1"), ("s2", "s4")], None),
        ([0, 1], [("s1", "s0")], None),
        ([1, 1], [], SkipReason.ALL_CORRECT),
        ([0, None], [], SkipReason.NONE_CORRECT),
    ],
)
def test_all_pairs_table(rewards, expected, reason):
    group = all_pairs(PROMPT, scored(rewards))
    assert texts(group) == expected and group.skip_reason == reason
    assert all(pair.meta["num_group_pairs"] == len(expected) for pair in group.pairs)


@pytest.mark.parametrize(
    ("rewards", "expected", "num_unscored", "reason"),
    [
        ([0.2, 0.9, -1.5, 0.4], [("s1", "s2")], 0, None),
        ([None, 3.0, None, 2.0], [("s1", "s3")], 2, None),
        ([0.5, 0.7, 0.7, 0.1, 0.1], [("s1", "s3")], 0, None),  # ties: the earliest sample
        ([0.5, 0.5], [], 0, SkipReason.TIED),
        ([None, 0.5], [], 1, SkipReason.TIED),
        ([None], [], 1, SkipReason.UNSCORED),
    ],
)
def test_best_vs_worst_table(rewards, expected, num_unscored, reason):
    group = best_vs_worst(PROMPT, scored(rewards))
    assert texts(group) == expected
    assert (group.num_unscored, group.skip_reason) == (num_unscored, reason)
    for pair in group.pairs:
        assert pair.meta["chosen_reward"] == max(r for r in rewards if r is not None)
        assert pair.meta["rejected_reward"] == min(r for r in rewards if r is not None)


def test_pair_stats_count_prompts_pairs_and_skips():
    groups = [
        correct_vs_incorrect(PROMPT, scored([1, 0, None]), random.Random(0)),
        correct_vs_incorrect(PROMPT, scored([1, 1]), random.Random(0)),
        all_pairs(PROMPT, scored([1, 1, 0, 0])),
        best_vs_worst(PROMPT, scored([None, None])),
    ]
    stats = compute_pair_stats(groups)
    assert stats == {
        "num_prompts": 4,
        "num_pairs": 5,
        "pair_yield": 0.5,
        "num_unscored": 3,
        "skipped_unscored": 1,
        "skipped_all_correct": 1,
        "skipped_none_correct": 0,
        "skipped_tied": 0,
        "skipped_same_response": 0,
        "skipped_judge_unparsed": 0,
    }
    assert compute_pair_stats([])["pair_yield"] == 0
