"""Scored rollouts -> DPO pairs by task rule, GRPO groups without unscored samples, rollout metrics."""

import math
import random

import pytest

from selftaught.selection.pairs import GroupPairs
from selftaught.selection.rollouts import (
    PAIR_RULES,
    RolloutGroup,
    pair_rule,
    rollout_metrics,
    scored_groups,
    select_pairs,
)
from selftaught.types import Completion, Prompt


def _group(
    task: str, rewards: list[float | None], step: int = 1, version: int = 0, pid: str = "p"
) -> RolloutGroup:
    prompt = Prompt(id=f"{task}-{pid}", messages=[{"role": "user", "content": "1+1"}], answer="2", task=task)
    completions = [
        Completion(
            prompt.id,
            f"c{i}",
            token_ids=[5] * (i + 1),
            logprobs=[-0.5 * (i + 1)] * (i + 1),
            policy_version=version,
        )
        for i in range(len(rewards))
    ]
    return RolloutGroup(prompt, completions, rewards, step)


def test_record_round_trip_keeps_everything():
    group = _group("arith", [1.0, None, 0.0], step=3, version=2)
    again = RolloutGroup.from_record(group.to_record())
    assert again == group


def test_mixed_batch_uses_each_tasks_rule_and_counts_prompts_without_pairs():
    groups = [
        _group("arith", [1.0, 0.0, 0.0, 1.0], pid="a"),
        _group("arith", [0.0, 0.0, None, 0.0], pid="b"),  # no correct sample: dropped
        _group("chat", [0.3, 2.5, -1.0, 0.7], pid="c"),
        _group("chat", [0.5, 0.5], pid="d"),  # tied: dropped
    ]
    rules = {"arith": pair_rule("correct_vs_incorrect"), "chat": pair_rule("best_vs_worst")}
    pairs, results = select_pairs(groups, rules, seed=0)
    assert [p.prompt.id for p in pairs] == ["arith-a", "chat-c"]
    arith, chat = pairs
    assert arith.meta["rule"] == "correct_vs_incorrect" and arith.chosen.text in {"c0", "c3"}
    assert arith.rejected.text in {"c1", "c2"}
    assert (chat.chosen.text, chat.rejected.text) == ("c1", "c2")
    assert [r.skip_reason for r in results] == [None, "none_correct", None, "tied"]
    assert results[1].num_unscored == 1
    again, _ = select_pairs(groups, rules, seed=0)  # the random choice is a function of seed, step, prompt
    assert [(p.chosen.text, p.rejected.text) for p in again] == [
        (p.chosen.text, p.rejected.text) for p in pairs
    ]


def test_all_pairs_rule_and_a_task_without_a_rule():
    assert len(PAIR_RULES["all_pairs"](_group("arith", [1.0, 0.0, 1.0, 0.0]), random.Random(0)).pairs) == 4
    with pytest.raises(ValueError, match="no pair rule for task 'chat'"):
        select_pairs([_group("chat", [1.0, 0.0])], {"arith": PAIR_RULES["correct_vs_incorrect"]}, seed=0)


def first_vs_last(group: RolloutGroup, rng: random.Random) -> GroupPairs:
    """A user's pair rule: the first sample against the last (for the test below)."""
    from selftaught.types import Pair

    pair = Pair(group.prompt, group.completions[0], group.completions[-1], {"rule": "first_vs_last"})
    return GroupPairs([pair])


def test_a_user_pair_rule_by_module_path_and_unknown_names():
    rule = pair_rule("tests.selection.test_rollouts:first_vs_last")
    pairs, _ = select_pairs([_group("arith", [0.0, 1.0, 0.5])], {"arith": rule}, seed=0)
    assert [(p.chosen.text, p.rejected.text) for p in pairs] == [("c0", "c2")]
    with pytest.raises(ValueError, match="unknown pair rule 'divpo'"):
        pair_rule("divpo")
    with pytest.raises(ValueError, match="has no function 'nope'"):
        pair_rule("tests.selection.test_rollouts:nope")


def test_grpo_groups_leave_out_unscored_samples_and_drop_groups_without_a_baseline():
    groups = [
        _group("arith", [1.0, None, 0.0]),
        _group("arith", [None, 1.0, None]),
        _group("arith", [0.0, 0.0]),
    ]
    kept, counts = scored_groups(groups)
    assert [g.rewards for g in kept] == [[1.0, 0.0], [0.0, 0.0]]
    assert [c.text for c in kept[0].completions] == ["c0", "c2"]
    assert counts == {"num_groups_dropped": 1, "num_unscored": 3}


def test_rollout_metrics_staleness_reward_length_and_entropy():
    groups = [_group("arith", [1.0, 0.0], step=4, version=1), _group("chat", [None, 3.0], step=4, version=3)]
    metrics = rollout_metrics(groups, step=4)
    assert metrics["staleness"] == pytest.approx((2 + 2 + 0 + 0) / 4) and metrics["staleness_max"] == 2
    assert metrics["reward"] == pytest.approx(4.0 / 3) and metrics["reward_num_none"] == 1
    assert metrics["reward_arith"] == 0.5 and metrics["reward_chat"] == 3.0
    assert metrics["rollout_length"] == pytest.approx(1.5)
    # tokens: 1 of logp -0.5 and 2 of -1.0 per group
    assert math.isclose(metrics["rollout_entropy"], (0.5 + 2.0) * 2 / 6)
