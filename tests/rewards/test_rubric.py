"""Rubric: routing by task, weights, per-function breakdown, None counting, truncation, TRL interop."""

import math

import pytest

from selftaught.rewards.base import completion_text
from selftaught.rewards.math import math_answer_reward
from selftaught.rewards.rubric import Rubric
from selftaught.rewards.text import tags_reward
from selftaught.rewards.world import world_answer_reward
from selftaught.types import Completion, Prompt


class Table:
    """A reward function that looks each completion's text up in a table and records what it saw."""

    def __init__(self, name: str, table: dict[str, float | None]):
        self.__name__ = name
        self.table = table
        self.seen: list[str] = []

    def __call__(self, prompts, completions, **columns):
        texts = [completion_text(c) for c in completions]
        self.seen.extend(texts)
        return [self.table[t] for t in texts]


MIXED = [  # (task, answer, completion)
    ("arith", "1", "33-25=8 8-7=1 Answer: 1"),
    ("arith", "1", "Answer: 2"),
    ("gsm8k", "18", r"<think>9*2</think> \boxed{18}"),
    ("gsm8k", "18", r"\boxed{18}"),
    ("gsm8k", "18", "<think>hm</think> 16"),
]


def test_routes_each_task_to_its_functions_with_weights_and_a_breakdown():
    rubric = Rubric(
        {"arith": [world_answer_reward], "gsm8k": [(math_answer_reward, 1.0), (tags_reward(["think"]), 0.5)]}
    )
    tasks, answers, texts = map(list, zip(*MIXED, strict=True))
    result = rubric.score_batch(["q"] * 5, texts, task=tasks, answer=answers)
    assert result.values == [1.0, 0.0, 1.5, 1.0, 0.5]
    assert result.scores[0].breakdown == {"world_answer_reward": 1.0}
    assert result.scores[2].breakdown == {"math_answer_reward": 1.0, "tags_reward": 1.0}
    assert result.scores[4].breakdown == {"math_answer_reward": 0.0, "tags_reward": 1.0}
    assert result.num_applied == {"world_answer_reward": 2, "math_answer_reward": 3, "tags_reward": 3}
    assert result.num_none == {"world_answer_reward": 0, "math_answer_reward": 0, "tags_reward": 0}


def test_each_function_sees_only_its_tasks_samples_and_their_columns():
    seen_columns = {}

    def spy(prompts, completions, answer, level, **columns):
        seen_columns.update(answer=answer, level=level, state=columns["trainer_state"])
        return [1.0] * len(completions)

    other = Table("other", {"c": 0.0})
    rubric = Rubric({"a": [spy], "b": [other]})
    state = object()  # TRL passes non-column objects (trainer_state); they are shared as they are
    values = rubric(
        ["p1", "p2", "p3"],
        ["x", "y", "c"],
        task=["a", "a", "b"],
        answer=["1", "2", "3"],
        level=[1, 2, 3],
        trainer_state=state,
    )
    assert values == [1.0, 1.0, 0.0]
    assert seen_columns == {"answer": ["1", "2"], "level": [1, 2], "state": state}
    assert other.seen == ["c"]


def test_a_none_from_a_required_function_makes_the_value_none_and_is_counted():
    correct = Table("correct", {"a": 1.0, "b": None, "c": None})
    fmt = Table("fmt", {"a": 1.0, "b": 1.0, "c": 0.0})
    result = Rubric({"t": [correct, (fmt, 0.5)]}).score_batch(["q"] * 3, ["a", "b", "c"])
    assert result.values == [1.5, None, None]
    assert result.scores[1].breakdown == {"correct": None, "fmt": 1.0}  # the breakdown keeps what did score
    assert result.scores[1].rationale == "could not score: correct"
    assert result.num_none == {"correct": 2, "fmt": 0}
    metrics = result.metrics()
    assert metrics["reward_num_none"] == 2 and metrics["reward_correct_num_none"] == 2
    assert metrics["reward_mean"] == 1.5 and metrics["reward_fmt_mean"] == pytest.approx(2 / 3)


def test_none_as_is_used_only_when_set_and_the_none_is_still_counted():
    correct = Table("correct", {"a": 1.0, "b": None})
    result = Rubric({"t": [correct]}, none_as=-1.0).score_batch(["q"] * 2, ["a", "b"])
    assert result.values == [1.0, -1.0]
    assert result.scores[1].breakdown == {"correct": None} and result.num_none == {"correct": 1}


def test_weight_zero_functions_are_monitors_whose_none_does_not_void_the_value():
    def monitor(prompts, completions, **columns):
        return [None, 0.3]

    result = Rubric({"t": [world_answer_reward, (monitor, 0.0)]}).score_batch(
        ["q"] * 2, ["Answer: 1", "Answer: 1"], answer=["1", "1"]
    )
    assert result.values == [1.0, 1.0]
    assert result.metrics()["reward_monitor_mean"] == 0.3 and result.num_none["monitor"] == 1


@pytest.mark.parametrize(("policy", "value"), [("score", 1.0), ("penalty", -0.5), ("none", None)])
def test_truncated_completions_are_scored_penalised_or_unscored(policy, value):
    correct = Table("correct", {"a": 1.0, "b": 1.0})
    rubric = Rubric({"t": [correct]}, on_truncated=policy, truncated_penalty=-0.5)
    result = rubric.score_batch(["q"] * 2, ["a", "b"], finish_reason=["stop", "length"])
    assert result.values == [1.0, value]
    assert correct.seen == (["a", "b"] if policy == "score" else ["a"])  # short-circuited: not run
    assert result.num_truncated == (0 if policy == "score" else 1)


def test_score_takes_records_and_routes_by_prompt_task():
    prompts = [
        Prompt(id="w", messages=[{"role": "user", "content": "1+1"}], answer="2", task="arith"),
        Prompt(id="g", messages=[{"role": "user", "content": "half?"}], answer="0.5", task="math"),
    ]
    completions = [
        Completion("w", "1+1=2 Answer: 2"),
        Completion("g", r"\boxed{\frac{1}{2}}", finish_reason="length"),
    ]
    rubric = Rubric({"arith": [world_answer_reward], "math": [math_answer_reward]}, on_truncated="none")
    result = rubric.score(prompts, completions)
    assert result.values == [1.0, None] and result.num_truncated == 1


def test_trl_reward_functions_work_inside_a_rubric_and_a_rubric_works_as_one():
    trl_rewards = pytest.importorskip("trl.rewards")
    completions = [
        [{"role": "assistant", "content": "<think>\n2+2\n</think>\n4"}],
        [{"role": "assistant", "content": "4"}],
    ]
    prompts = [[{"role": "user", "content": "2+2?"}]] * 2
    rubric = Rubric({"default": [trl_rewards.think_format_reward, (math_answer_reward, 2.0)]})
    # called the way GRPOTrainer calls a reward function
    values = rubric(
        prompts=prompts,
        completions=completions,
        completion_ids=[[1], [2]],
        answer=["4", "4"],
        trainer_state=None,
        log_extra=None,
    )
    assert values == [3.0, 2.0]


def test_user_mistakes_are_value_errors_that_say_what_to_do():
    fn = Table("fn", {"a": 1.0})
    with pytest.raises(ValueError, match="no `task` column"):
        Rubric({"x": [fn], "y": [fn]}).score_batch(["q"], ["a"])
    with pytest.raises(ValueError, match=r"no reward functions for task\(s\) \['z'\]"):
        Rubric({"x": [fn]}).score_batch(["q"], ["a"], task=["z"])
    with pytest.raises(ValueError, match="two reward functions are named 'fn'"):
        Rubric({"x": [fn, Table("fn", {})]})
    with pytest.raises(ValueError, match="has no reward functions"):
        Rubric({"x": []})
    with pytest.raises(ValueError, match="column `answer` has 2 entries for 1"):
        Rubric({"x": [fn]}).score_batch(["q"], ["a"], answer=["1", "2"])
    with pytest.raises(ValueError, match="must return a list of 1 values"):
        Rubric({"x": [lambda prompts, completions, **c: []]}).score_batch(["q"], ["a"])
    with pytest.raises(ValueError, match="a reward is a finite number"):
        Rubric({"x": [lambda prompts, completions, **c: [math.nan]]}).score_batch(["q"], ["a"])
    with pytest.raises(ValueError, match="'sometimes' is not a valid OnTruncated"):
        Rubric({"x": [fn]}, on_truncated="sometimes")
