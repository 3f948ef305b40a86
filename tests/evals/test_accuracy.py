import math

import pytest

from selftaught.engines import SamplingParams, ScriptedEngine
from selftaught.evals.accuracy import evaluate_accuracy, mean_and_stderr
from selftaught.types import Prompt


def _prompt(i: int, level: int) -> Prompt:
    return Prompt(
        id=f"p{i}", messages=[{"role": "user", "content": f"q{i}"}], answer="yes", meta={"level": level}
    )


def test_accuracy_is_mean_over_problems_of_per_problem_means():
    prompts = [_prompt(0, 1), _prompt(1, 1), _prompt(2, 2)]
    # p0: 2 of 2 right, p1: 1 of 2, p2: 0 of 2
    engine = ScriptedEngine({"p0": ["yes", "yes"], "p1": ["yes", "no"], "p2": ["no", "no"]})
    result = evaluate_accuracy(engine, prompts, lambda p, c: c.text == p.answer, SamplingParams(n=2))
    assert result.accuracy == pytest.approx(0.5)
    per_problem = [1.0, 0.5, 0.0]
    expected_se = math.sqrt(sum((v - 0.5) ** 2 for v in per_problem) / 2 / 3)
    assert result.stderr == pytest.approx(expected_se)
    assert result.num_problems == 3 and result.num_samples == 6
    assert result.groups["level 1"].accuracy == pytest.approx(0.75)
    assert result.groups["level 2"].accuracy == 0.0 and result.groups["level 2"].num_problems == 1
    assert "| **all** | 3 | **0.500** |" in result.table()


def test_mean_and_stderr_matches_binomial_formula():
    values = [1.0] * 30 + [0.0] * 70
    mean, se = mean_and_stderr(values)
    assert mean == pytest.approx(0.3)
    assert se == pytest.approx(math.sqrt(0.3 * 0.7 / 99))
    assert mean_and_stderr([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError):
        mean_and_stderr([])
