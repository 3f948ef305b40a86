import functools
import math
import random
import re

import pytest

from selftaught.types import Prompt
from selftaught.world.arith import (
    NAMES,
    SPLIT_PERCENT,
    SPLITS,
    STRATEGIES,
    Problem,
    extract_answer,
    is_correct,
    sample_eval_set,
    sample_problems,
    sample_sft_examples,
    solve,
    split_of,
    to_prompt,
    to_sft_example,
)

STEP = re.compile(r"(-?\d+)([+-])(\d+)=(-?\d+)")
LEVELS = (1, 2, 3, 4)


def parse_expression(expression: str, word: bool = False) -> Problem:
    """The problem behind a plain expression such as `33-25-7`, evaluated here independently."""
    operands = [int(x) for x in re.findall(r"\d+", expression)]
    ops = re.findall(r"[+-]", expression)
    return Problem(len(ops), operands, ops, eval(expression), word)  # left-to-right, like the world


@functools.cache
def level1_problems() -> list[Problem]:
    """Every distinct level-1 problem, enumerated here independently of the sampler."""
    return [
        Problem(1, [a, b], [op], a + b if op == "+" else a - b)
        for a in range(100)
        for b in range(100)
        for op in ("+-" if b <= a else "+")
    ]


def carries(a: int, b: int) -> bool:
    """Whether column addition of `a + b` carries from the units (a buggy running value may be < 0)."""
    return a >= 0 and a % 10 + b % 10 >= 10


def chain_has_carry(problem: Problem) -> bool:
    value = problem.operands[0]
    for op, x in problem.terms:
        if op == "+" and carries(value, x):
            return True
        value = value + x if op == "+" else value - x
    return False


def check_steps(solution: str, buggy: bool) -> None:
    """Every written step is right, or (buggy teacher) right but for a dropped units carry."""
    for a, op, b, result in STEP.findall(solution):
        a, b, result = int(a), int(b), int(result)
        expected = a - b if op == "-" else a + b - 10 * (buggy and carries(a, b))
        assert result == expected, solution


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_levels_have_level_plus_one_operands_and_non_negative_running_values(level):
    problems = sample_problems("train", 200, [level], seed=level)
    for p in problems:
        assert p.level == level and len(p.operands) == level + 1 and len(p.ops) == level
        assert all(0 <= x <= 99 for x in p.operands)
        assert p.answer == eval(p.expression)
        prefixes = [p.expression[: m.start()] for m in re.finditer(r"[+-]", p.expression)] + [p.expression]
        assert all(eval(prefix) >= 0 for prefix in prefixes)


@pytest.mark.parametrize("word", [False, True])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_is_correct_without_bug(strategy, word):
    for p in sample_problems("test", 400, LEVELS, seed=7, word=word):
        solution = solve(p, strategy)
        assert extract_answer(solution) == p.answer and is_correct(solution, p.answer)
        assert solution.endswith(f"Answer: {p.answer}")
        check_steps(solution, buggy=False)
        assert "=-" not in solution  # intermediate values stay >= 0


def test_strategies_differ_in_shape_and_length():
    for p in sample_problems("train", 100, LEVELS, seed=3):
        chain, grouped, direct = (solve(p, s) for s in ("chain", "grouped", "direct"))
        assert len(STEP.findall(chain)) == p.level
        assert grouped.startswith("Add: ") and "Subtract: " in grouped
        assert len(grouped) > len(chain) > len(direct)
        assert direct == f"Answer: {p.answer}"


def test_grouped_sums_added_then_subtracted_terms():
    p = parse_expression("45+64-36+9")
    assert solve(p, "grouped") == "Add: 45+64=109 109+9=118. Subtract: 36. 118-36=82 Answer: 82"
    assert solve(parse_expression("33-25-7"), "grouped") == "Add: 33. Subtract: 25+7=32. 33-32=1 Answer: 1"


def test_chain_format():
    assert solve(parse_expression("33-25-7")) == "33-25=8 8-7=1 Answer: 1"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_buggy_teacher_drops_units_carries_and_propagates(strategy):
    rng = random.Random(0)
    for p in sample_problems("train", 300, LEVELS, seed=11):
        solution = solve(p, strategy, bug=1.0, rng=rng)
        check_steps(solution, buggy=True)
        chain_answer = extract_answer(solve(p, "chain", bug=1.0, rng=rng))
        if strategy != "grouped":  # grouped adds in another order, so its carries differ
            assert extract_answer(solution) == chain_answer
            assert is_correct(solution, p.answer) == (not chain_has_carry(p))


def test_buggy_carry_step_is_a_plus_b_minus_ten():
    a, b = 45, 67
    solution = solve(parse_expression(f"{a}+{b}"), "chain", bug=1.0, rng=random.Random(0))
    assert solution == f"{a}+{b}={a + b - 10} Answer: {a + b - 10}"


def test_buggy_teacher_error_rate_matches_carry_frequency():
    bug, rng = 0.6, random.Random(1)
    problems = sample_problems("train", 3000, [1], seed=5)
    carry_rate = sum(chain_has_carry(p) for p in problems) / len(problems)
    expected = 1 - bug * carry_rate
    observed = sum(is_correct(solve(p, "chain", bug, rng), p.answer) for p in problems) / len(problems)
    tolerance = 4 * math.sqrt(expected * (1 - expected) / len(problems))
    assert abs(observed - expected) < tolerance
    assert 0.8 < observed < 0.9


def test_splits_are_stable_disjoint_and_sized():
    by_split = {s: set() for s in SPLITS}
    for seed in range(3):
        for split in SPLITS:
            problems = sample_problems(split, 300, LEVELS, seed=seed)
            assert all(split_of(p) == split for p in problems)
            by_split[split] |= {p.expression for p in problems}
    assert not by_split["train"] & by_split["valid"]
    assert not by_split["train"] & by_split["test"]
    assert not by_split["valid"] & by_split["test"]
    for split in SPLITS:
        share = sum(split_of(p) == split for p in level1_problems()) / len(level1_problems())
        assert abs(share - SPLIT_PERCENT[split] / 100) < 0.01


def test_sampling_is_deterministic_distinct_and_level_balanced():
    def expressions(seed: int, word: bool = False) -> list[str]:
        return [p.expression for p in sample_problems("valid", 301, (1, 2, 3), seed, word)]

    first = sample_problems("valid", 301, (1, 2, 3), seed=4)
    assert [p.expression for p in first] == expressions(4) == expressions(4, word=True)
    assert expressions(4) != expressions(5)
    assert len({p.expression for p in first}) == len(first) == 301
    assert sorted(sum(p.level == level for p in first) for level in (1, 2, 3)) == [100, 100, 101]

    eval_set = sample_eval_set("test", 50, (3, 1), seed=0)
    assert [p.level for p in eval_set] == [3] * 50 + [1] * 50
    assert [p.id for p in eval_set] == [p.id for p in sample_eval_set("test", 50, (3, 1), seed=0)]


def test_whole_split_of_a_small_level_can_be_drawn_but_not_more():
    num_valid = sum(split_of(p) == "valid" for p in level1_problems())
    problems = sample_eval_set("valid", num_valid, [1], seed=0)
    assert len({p.expression for p in problems}) == num_valid
    with pytest.raises(ValueError, match="only"):
        sample_eval_set("valid", num_valid + 1, [1], seed=0)
    with pytest.raises(ValueError, match="only"):
        sample_problems("test", 6000, (1, 2, 3), seed=0)  # 2000 level-1 test problems do not exist


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sample_problems("dev", 10, [1], 0), "split"),
        (lambda: sample_problems("test", -1, [1], 0), "num"),
        (lambda: sample_problems("test", 10, [], 0), "levels"),
        (lambda: sample_problems("test", 10, [1, 1], 0), "levels"),
        (lambda: sample_eval_set("test", 10, [0, 1], 0), "levels"),
        (lambda: solve(parse_expression("1+2"), "tree"), "strategy"),
        (lambda: solve(parse_expression("1+2"), "chain", bug=1.5, rng=random.Random(0)), "bug"),
        (lambda: solve(parse_expression("1+2"), "chain", bug=0.5), "rng"),
        (lambda: sample_sft_examples(10, [1], 0, {"chain": 1.0, "cot": 1.0}), "unknown strategies"),
        (lambda: sample_sft_examples(10, [1], 0, {"chain": 0.0}), "positive sum"),
        (lambda: sample_sft_examples(10, [1], 0, {}), "positive sum"),
        (lambda: Problem(1, [3, 5], ["-"], -2), "running value"),
        (lambda: Problem(1, [3, 5], ["+"], 9), "answer"),
        (lambda: Problem(2, [3, 5], ["+"], 8), "level"),
        (lambda: Problem(1, [3, 100], ["+"], 103), "operands"),
        (lambda: Problem(1, [3, 5], ["*"], 15), "ops"),
    ],
)
def test_bad_requests_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("33-25=8 8-7=1 Answer: 1", 1),
        ("Answer: -12", -12),
        ("Answer:7", 7),
        ("Answer:   42 and more", 42),
        ("Answer: 3 Answer: 4", 3),
        ("3+4=7", None),
        ("answer: 7", None),
        ("Answer: seven", None),
        ("", None),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer
    assert is_correct(text, 7) == (answer == 7)
    assert is_correct(text, "7") == (answer == 7)


def test_word_form():
    for p in sample_problems("train", 50, LEVELS, seed=2, word=True):
        sentences = p.text.split(". ")
        assert sentences[0].split()[0] in NAMES and p.text.endswith("How many now?")
        assert len(sentences) == p.level + 2
        assert [int(x) for x in re.findall(r"\d+", p.text)] == p.operands
        assert p.text.count("loses") == p.ops.count("-")
        plain = parse_expression(p.expression)
        assert split_of(plain) == split_of(p) and plain.id != p.id and plain.text == p.expression


def test_records():
    p = parse_expression("33-25-7")
    prompt = to_prompt(p)
    assert prompt == Prompt.from_json(prompt.to_json())
    assert prompt.messages == [{"role": "user", "content": "33-25-7"}] and prompt.answer == "1"
    assert prompt.task == "arith" and prompt.id == p.id and prompt.id.startswith("arith-L2-")
    assert prompt.meta == {"level": 2, "split": split_of(p), "expression": "33-25-7"}
    example = to_sft_example(p, "grouped")
    assert example["level"] == 2
    assert [m["role"] for m in example["messages"]] == ["user", "assistant"]
    assert example["messages"][1]["content"] == solve(p, "grouped")


def test_sft_examples_mix_strategies_on_train_problems():
    weights = {"chain": 1.0, "direct": 1.0}
    examples = sample_sft_examples(600, (1, 2, 3), seed=0, strategy_weights=weights)
    assert examples == sample_sft_examples(600, (1, 2, 3), seed=0, strategy_weights=weights)
    assert [sum(e["level"] == level for e in examples) for level in (1, 2, 3)] == [200, 200, 200]
    num_direct = 0
    for example in examples:
        problem = parse_expression(example["messages"][0]["content"])
        reply = example["messages"][1]["content"]
        assert split_of(problem) == "train" and is_correct(reply, problem.answer)
        num_direct += reply.startswith("Answer:")
    assert 200 < num_direct < 400
    buggy = sample_sft_examples(600, [1], seed=0, bug=0.6)
    replies = [(e["messages"][0]["content"], e["messages"][1]["content"]) for e in buggy]
    num_wrong = sum(not is_correct(reply, eval(question)) for question, reply in replies)
    assert 0.05 < num_wrong / len(buggy) < 0.25
