"""Reward functions by name, so a config can say which reward a task uses.

    world_answer | math_answer | choice | exact_match | num_tokens    a function of `rewards/`
    persona_valid                                                    the tiny world's persona format check
    persona_json_valid                                               the persona task's JSON form (real models)
    keywords_quality                                                 the tiny world's graded keywords task
    story_quality                                                    the tiny world's STORY task (adaptive decoding)
    cstory_quality                                                   its constrained variant CSTORY (a digit opens each part)
    ngram_novelty                                                    distinct word 3-grams of open-ended text, short ones scaled down
    judge_verdict | judge_scores | judge_format | judge_thinking     a judgment against its known winner (J1, `judges.rl`)
    package.module:function                                          a user's function (TRL signature)
    reward_model:<dir>                                               a sequence-classification reward model
    judge:<template>@<n>                                             an LLM judge (`judge_model` + template)

Every reward function has TRL's signature `f(prompts, completions, **columns) -> list[float | None]`
(the prompt records' extra columns arrive as keyword arguments), so a function written for TRL's
`reward_funcs` plugs in unchanged. `load_callable` also resolves the `module:function` hooks of the
online loop (pair rules, group scorers).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selftaught.judges.rl import (
    judge_format_reward,
    judge_scores_reward,
    judge_thinking_reward,
    judge_verdict_reward,
)
from selftaught.rewards.base import RewardFn
from selftaught.rewards.choice import choice_reward
from selftaught.rewards.math import math_answer_reward
from selftaught.rewards.text import exact_match_reward, ngram_novelty_reward, num_tokens_reward
from selftaught.rewards.world import world_answer_reward
from selftaught.world.keywords import keywords_quality
from selftaught.world.persona import persona_json_valid, persona_valid
from selftaught.world.stories import cstory_quality, story_quality

REWARDS: dict[str, RewardFn] = {
    "world_answer": world_answer_reward,
    "math_answer": math_answer_reward,
    "choice": choice_reward,
    "exact_match": exact_match_reward,
    "num_tokens": num_tokens_reward,
    "persona_valid": persona_valid,
    "persona_json_valid": persona_json_valid,
    "keywords_quality": keywords_quality,
    "story_quality": story_quality,
    "cstory_quality": cstory_quality,
    "ngram_novelty": ngram_novelty_reward,
    "judge_verdict": judge_verdict_reward,
    "judge_scores": judge_scores_reward,
    "judge_format": judge_format_reward,
    "judge_thinking": judge_thinking_reward,
}
"""Built-in rewards by name."""
REWARD_MODEL_PREFIX = "reward_model:"
JUDGE_PREFIX = "judge:"


def load_callable(spec: str, what: str) -> Callable[..., Any]:
    """The function `package.module:function` names; a ValueError that says what was expected."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{what} {spec!r} must look like package.module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{what} {spec!r}: cannot import {module_name!r} ({err})") from err
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"{what} {spec!r}: {module_name} has no function {attribute!r}")
    return function


def build_reward(spec: str, *, judge_model: str | None = None, judge_max_new_tokens: int = 256) -> RewardFn:
    """The reward function `spec` names (see the module doc)."""
    if spec in REWARDS:
        return REWARDS[spec]
    if spec.startswith(REWARD_MODEL_PREFIX):
        from selftaught.rewards.reward_model import RewardModel

        directory = Path(spec.removeprefix(REWARD_MODEL_PREFIX)).expanduser()
        if not (directory / "config.json").is_file():
            raise ValueError(
                f"reward {spec!r}: {str(directory)!r} is not a model directory (no config.json); name the "
                "model/ directory that `selftaught reward-model` writes"
            )
        return RewardModel.from_pretrained(directory)
    if spec.startswith(JUDGE_PREFIX):
        return _judge_reward(spec.removeprefix(JUDGE_PREFIX), judge_model, judge_max_new_tokens)
    if ":" in spec:
        return load_callable(spec, "reward")
    raise ValueError(
        f"unknown reward {spec!r}; use one of {sorted(REWARDS)}, {REWARD_MODEL_PREFIX}<dir>, "
        f"{JUDGE_PREFIX}<template>@<version>, or package.module:function"
    )


def _judge_reward(template: str, judge_model: str | None, max_new_tokens: int) -> RewardFn:
    """An LLM judge as a reward (`selftaught.judges.reward`): a pointwise template gives its mean score
    / 10; a pairwise one judges the completion against the `reference` column in both orders."""
    from selftaught.engines.base import SamplingParams
    from selftaught.engines.hf import HFEngine
    from selftaught.judges import build_judge
    from selftaught.judges.judge import PairwiseJudge
    from selftaught.judges.reward import pairwise_judge_reward, pointwise_judge_reward
    from selftaught.models.io import load_model

    if judge_model is None:
        raise ValueError(f"reward judge:{template} needs a judge_model (a model spec) for the task")
    model, tokenizer = load_model(judge_model)
    judge = build_judge(HFEngine(model, tokenizer), template, SamplingParams(max_new_tokens=max_new_tokens))
    if isinstance(judge, PairwiseJudge):  # against the prompt's `reference` column, both orders
        return pairwise_judge_reward(judge)
    return pointwise_judge_reward(judge)
