"""A judge as a TRL-signature reward function: pointwise score / 10, pairwise against a reference."""

import doctest

import pytest

from selftaught.engines.base import SamplingParams
from selftaught.engines.scripted import ScriptedEngine
from selftaught.judges import reward as reward_module
from selftaught.judges.judge import PairwiseJudge, PointwiseJudge
from selftaught.judges.reward import pairwise_judge_reward, pointwise_judge_reward, reward_from_verdicts

VERDICT = "<think>checked</think> <answer> [[{}]] </answer>"


def shown_first(judge_prompt) -> str:
    user = judge_prompt.messages[-1]["content"]
    return user.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]


def test_pointwise_reward_is_mean_score_over_ten_or_none():
    scores = {"good": ["<score>9</score>", "<score>8</score>"], "bad": ["<score>2</score>", "no score"]}
    scores["junk"] = ["nothing", "nothing"]

    def script(p, i):
        response = (
            p.messages[-1]["content"].split("[The Start of the Assistant's Answer]\n")[1].split("\n")[0]
        )
        return scores[response][i]

    judge = PointwiseJudge(ScriptedEngine(script), sampling=SamplingParams(n=2))
    reward_fn = pointwise_judge_reward(judge)
    prompts = ["7+5", [{"role": "user", "content": "7+5"}], "7+5"]
    completions = ["good", [{"role": "assistant", "content": "bad"}], "junk"]
    rewards = reward_fn(prompts, completions, trainer_state=None)
    assert rewards == [pytest.approx(0.85), pytest.approx(0.2), None]


@pytest.mark.parametrize(
    ("first", "second", "reward"),
    [
        ("A", "A", 1.0),
        ("B", "B", 0.0),
        ("A", "B", 0.5),
        ("B", "A", 0.5),
        ("A", "tie", 0.75),
        ("tie", "tie", 0.5),
        ("A", None, None),
        (None, None, None),
    ],
)
def test_reward_from_verdicts(first, second, reward):
    assert reward_from_verdicts(first, second) == reward


def test_pairwise_reward_against_the_reference_column():
    # A judge that prefers whichever response is "good": the policy wins with "good", loses with "bad".
    judge = PairwiseJudge(
        ScriptedEngine(lambda p, i: VERDICT.format("A" if shown_first(p) == "good" else "B"))
    )
    reward_fn = pairwise_judge_reward(judge, reference_column="gold")
    rewards = reward_fn(["q1", "q2"], ["good", "bad"], gold=["bad", "good"], completion_ids=[[1], [2]])
    assert rewards == [1.0, 0.0]


def test_pairwise_reward_of_a_position_biased_judge_is_a_split():
    judge = PairwiseJudge(ScriptedEngine(lambda p, i: VERDICT.format("A")))
    assert pairwise_judge_reward(judge)(["q"], ["x"], reference=["y"]) == [0.5]


def test_pairwise_reward_is_none_when_an_order_is_unreadable():
    judge = PairwiseJudge(
        ScriptedEngine({"0|ab": [VERDICT.format("A")], "0|ba": ["<answer>[[A]] [[B]]</answer>"]})
    )
    assert pairwise_judge_reward(judge)(["q"], ["x"], reference=["y"]) == [None]


def test_pairwise_reward_needs_the_reference_column():
    reward_fn = pairwise_judge_reward(PairwiseJudge(ScriptedEngine({})))
    with pytest.raises(ValueError, match="needs a 'reference' column.*got columns \\['answer'\\]"):
        reward_fn(["q"], ["x"], answer=["y"])


def test_bad_inputs_name_the_sample():
    reward_fn = pointwise_judge_reward(PointwiseJudge(ScriptedEngine({})))
    with pytest.raises(ValueError, match=r"prompts\[1\] must be a string or a list of messages"):
        reward_fn(["q", 3], ["a", "b"])
    with pytest.raises(ValueError, match="completion 0 must be a string or a non-empty list"):
        reward_fn(["q"], [[]])


def test_module_doctest():
    assert doctest.testmod(reward_module).failed == 0
