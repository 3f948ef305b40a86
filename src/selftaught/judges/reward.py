"""A judge as a reward function, with TRL's signature `f(prompts, completions, **columns) -> list[float | None]`.

`prompts` are strings or message lists and `completions` strings or message lists (TRL's standard and
conversational formats). `None` means the judge could not be read for that sample: it is counted by
the caller, never read as 0.

- `pointwise_judge_reward`: the mean score of the judge's k samples divided by 10, in [0, 1].
- `pairwise_judge_reward`: the completion against a reference response (a dataset column), judged in
  both orders. Each order is worth 1 when the completion wins, 0.5 for a tie and 0 when it loses; the
  reward is the mean over the orders: 1 = wins in both, 0 = loses in both, 0.5 = split. A split
  verdict follows the position, not the responses, so it is no evidence either way: it is scored like
  a tie. `None` when either order has no readable verdict.

>>> from selftaught.engines.scripted import ScriptedEngine
>>> judge = PointwiseJudge(ScriptedEngine(lambda prompt, i: "<think>ok</think> <score> 7 </score>"))
>>> pointwise_judge_reward(judge)(["2+2"], ["4"])
[0.7]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from selftaught.data.formats import trl_prompt
from selftaught.judges.judge import PairwiseJudge, PointwiseJudge, mean_scores
from selftaught.judges.parsers import MAX_SCORE
from selftaught.rewards.base import RewardFn
from selftaught.types import Prompt

ORDER_VALUES = {"A": 1.0, "tie": 0.5, "B": 0.0}
"""Worth of one order's verdict (mapped back to the pair, A = the completion) to the completion."""


def pointwise_judge_reward(judge: PointwiseJudge) -> RewardFn:
    """Reward = mean judge score / 10; `None` when none of the k samples has a readable score."""

    def pointwise_judge(
        prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> list[float | None]:
        judgments = judge.score(as_prompts(prompts), as_texts(completions))
        return [None if (scores := mean_scores(js)) is None else scores[0] / MAX_SCORE for js in judgments]

    return pointwise_judge


def pairwise_judge_reward(judge: PairwiseJudge, reference_column: str = "reference") -> RewardFn:
    """Reward = the completion's result against `columns[reference_column]`, both orders (module doc)."""

    def pairwise_judge(
        prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
    ) -> list[float | None]:
        if reference_column not in columns:
            raise ValueError(
                f"pairwise_judge_reward needs a {reference_column!r} column with the reference responses; "
                f"got columns {sorted(columns)} (pass reference_column= to use another)"
            )
        references = as_texts(columns[reference_column])
        results = judge.judge_both_orders(as_prompts(prompts), as_texts(completions), references)
        return [reward_from_verdicts(*result.verdicts()) for result in results]

    return pairwise_judge


def reward_from_verdicts(first: str | None, second: str | None) -> float | None:
    """Mean of `ORDER_VALUES` over the two orders' verdicts (mapped back: A = the completion); `None` if either is."""
    if first is None or second is None:
        return None
    return (ORDER_VALUES[first] + ORDER_VALUES[second]) / 2


def as_prompts(prompts: Sequence[Any]) -> list[Prompt]:
    """TRL prompts (a string, or a list of messages) as `Prompt`s with ids `"0"`, `"1"`, ..."""
    return [trl_prompt(prompt, index) for index, prompt in enumerate(prompts)]


def as_texts(responses: Sequence[Any]) -> list[str]:
    """TRL completions (a string, or a list of messages whose last one is the response) as strings."""
    texts = []
    for index, response in enumerate(responses):
        if isinstance(response, str):
            texts.append(response)
        elif isinstance(response, list) and response and isinstance(response[-1], dict):
            texts.append(str(response[-1]["content"]))
        else:
            raise ValueError(
                f"completion {index} must be a string or a non-empty list of messages, got {response!r:.80}"
            )
    return texts
