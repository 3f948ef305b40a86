"""Rewards (layer L3): verifiers, format checks, reward models, and a `Rubric` that combines them.

Every reward function has TRL's signature, `f(prompts, completions, **columns) -> list[float | None]`,
where None means "could not score" (counted, never silently 0); see `selftaught.rewards.base`.
The verifiers import neither torch nor transformers: `RewardModel` and `bradley_terry_loss` are
loaded from `selftaught.rewards.reward_model` on first access.
"""

from typing import Any

from selftaught.rewards.base import RewardFn, completion_text, prompt_text, reward_name, trl_inputs
from selftaught.rewards.choice import choice_reward, extract_choice
from selftaught.rewards.math import math_answer_reward, parse_reference, score_math_answer
from selftaught.rewards.rubric import OnTruncated, Rubric, RubricResult
from selftaught.rewards.text import (
    exact_match_reward,
    length_reward,
    num_tokens_reward,
    regex_reward,
    tags_reward,
)
from selftaught.rewards.world import world_answer_reward

__all__ = [
    "OnTruncated",
    "RewardFn",
    "RewardModel",
    "Rubric",
    "RubricResult",
    "bradley_terry_loss",
    "choice_reward",
    "completion_text",
    "exact_match_reward",
    "extract_choice",
    "length_reward",
    "num_tokens_reward",
    "math_answer_reward",
    "parse_reference",
    "prompt_text",
    "regex_reward",
    "render_for_reward",
    "reward_name",
    "score_math_answer",
    "tags_reward",
    "trl_inputs",
    "world_answer_reward",
]

_REWARD_MODEL_NAMES = ("RewardModel", "bradley_terry_loss", "render_for_reward")


def __getattr__(name: str) -> Any:
    if name in _REWARD_MODEL_NAMES:
        from selftaught.rewards import reward_model

        return getattr(reward_model, name)
    raise AttributeError(f"module 'selftaught.rewards' has no attribute {name!r}")
