"""Tiny-world judge pairs: a correct chain solution against a dropped-carry or off-by-one one."""

import random

from selftaught.world.arith import Problem, extract_answer, solve, split_of
from selftaught.world.judge_pairs import (
    CORRUPTIONS,
    build_judge_pair,
    dropped_carry_solution,
    off_by_one_solution,
    sample_judge_pairs,
    to_pair,
    to_preference_record,
)


def step_results(solution: str) -> list[int]:
    return [int(step.split("=")[1]) for step in solution.split(" Answer:")[0].split()]


def test_pairs_are_deterministic_and_seeded():
    pairs = sample_judge_pairs("test", 30, seed=3)
    again = sample_judge_pairs("test", 30, seed=3)
    assert [(p.id, p.chosen, p.rejected, p.corruption) for p in pairs] == [
        (p.id, p.chosen, p.rejected, p.corruption) for p in again
    ]
    assert [p.id for p in sample_judge_pairs("test", 30, seed=4)] != [p.id for p in pairs]


def test_chosen_is_right_and_rejected_is_wrong_on_distinct_problems_of_the_split():
    pairs = sample_judge_pairs("valid", 90, levels=(1, 2, 3), seed=0)
    assert len({p.problem.expression for p in pairs}) == 90
    assert {p.problem.level for p in pairs} == {1, 2, 3}
    for pair in pairs:
        assert split_of(pair.problem) == "valid"
        assert pair.chosen == solve(pair.problem, "chain")
        assert extract_answer(pair.chosen) == pair.problem.answer
        assert extract_answer(pair.rejected) != pair.problem.answer
        assert len(step_results(pair.rejected)) == pair.problem.level  # same shape as chosen
    assert {p.corruption for p in pairs} == set(CORRUPTIONS)


def test_dropped_carry_is_the_buggy_teacher():
    problem = Problem(level=2, operands=[45, 67, 3], ops=["+", "-"], answer=109)
    buggy = dropped_carry_solution(problem)
    assert buggy == solve(problem, "chain", bug=1.0, rng=random.Random(1)) == "45+67=102 102-3=99 Answer: 99"
    assert dropped_carry_solution(Problem(level=1, operands=[12, 3], ops=["+"], answer=15)) is None


def test_off_by_one_slips_one_step_and_propagates():
    problem = Problem(level=3, operands=[45, 64, 36, 9], ops=["+", "-", "+"], answer=82)
    correct = step_results(solve(problem, "chain"))
    for seed in range(20):
        wrong = step_results(off_by_one_solution(problem, random.Random(seed)))
        slip = next(i for i, (w, c) in enumerate(zip(wrong, correct, strict=True)) if w != c)
        delta = wrong[slip] - correct[slip]
        assert delta in (-1, 1) and all(
            w - c == delta for w, c in zip(wrong[slip:], correct[slip:], strict=True)
        )


def test_off_by_one_never_slips_below_zero_from_zero():
    problem = Problem(level=1, operands=[7, 7], ops=["-"], answer=0)
    assert {off_by_one_solution(problem, random.Random(s)) for s in range(10)} == {"7-7=1 Answer: 1"}


def test_a_problem_without_carry_gets_off_by_one():
    problem = Problem(level=1, operands=[12, 3], ops=["+"], answer=15)
    assert {build_judge_pair(problem, random.Random(s)).corruption for s in range(10)} == {"off_by_one"}


def test_records():
    [pair] = sample_judge_pairs("test", 1, levels=(2,), seed=0)
    record = to_preference_record(pair)
    assert record["prompt"] == [{"role": "user", "content": pair.problem.text}]
    assert record["chosen"] == [{"role": "assistant", "content": pair.chosen}]
    assert record["rejected"][0]["content"] == pair.rejected
    assert (record["split"], record["level"], record["answer"]) == ("test", 2, str(pair.problem.answer))
    as_pair = to_pair(pair)
    assert as_pair.prompt.answer == str(pair.problem.answer)
    assert (as_pair.chosen.text, as_pair.rejected.text) == (pair.chosen, pair.rejected)
    assert as_pair.meta == {"id": pair.id, "corruption": pair.corruption, "level": 2}
