"""Rewards by name (`rewards.registry`): built-ins, a user's `module:function`, reward models, judges."""

import pytest

from selftaught.engines.sampling import counter_uniform
from selftaught.rewards.registry import REWARDS, build_reward, load_callable
from selftaught.rewards.world import world_answer_reward


def shout_reward(prompts, completions, **columns):
    """A user's reward for the test below."""
    return [float(c.isupper()) for c in completions]


def test_built_in_and_user_rewards_by_name():
    assert build_reward("world_answer") is world_answer_reward
    assert set(REWARDS) >= {"world_answer", "math_answer", "choice", "exact_match", "num_tokens"}
    reward = build_reward("tests.rewards.test_registry:shout_reward")
    assert reward(["q", "q"], ["HI", "hi"]) == [1.0, 0.0]


def test_bad_names_say_what_is_accepted():
    with pytest.raises(ValueError, match="unknown reward 'nope'.*reward_model:<dir>"):
        build_reward("nope")
    with pytest.raises(ValueError, match="cannot import 'no_such_module'"):
        build_reward("no_such_module:f")
    with pytest.raises(ValueError, match="must look like package.module:function"):
        load_callable(":f", "reward")
    with pytest.raises(ValueError, match="needs a judge_model"):
        build_reward("judge:j1-pointwise@1")


def test_a_reward_model_directory_by_name(tmp_path):
    with pytest.raises((ValueError, OSError)):
        build_reward(f"reward_model:{tmp_path / 'missing'}")


def test_counter_uniforms_are_keyed_and_uniform():
    import torch

    keys = torch.arange(20000)
    u = counter_uniform(keys, 3)
    assert torch.equal(u, counter_uniform(keys, 3)) and not torch.equal(u, counter_uniform(keys, 4))
    assert 0 <= float(u.min()) and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float((u < 0.1).float().mean()) - 0.1) < 0.01
    assert torch.equal(counter_uniform(keys[7:9], 3), u[7:9])  # a row's draw ignores the other rows
