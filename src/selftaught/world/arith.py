"""Multi-step arithmetic with exact answers: the tiny world's verifiable task.

A level-k problem chains k additions or subtractions of k+1 integers in 0..99, e.g. level 2 is
`33-25-7`. The true left-to-right evaluation never goes below 0, by construction. A problem has a
plain surface form (`33-25-7`) and a word form ("Dan has 33 cards. Dan loses 25. ..."). It can be
solved with several strategies that differ in length and shape, and all of them end with
`Answer: N`. An optional buggy teacher forgets units carries. More SFT on its demonstrations cannot
fix the bug, but a verifier reward can (TINYWORLD.md, sections 1 and 3b).

The split of a problem comes from a hash of its expression, not from the seed that drew it, so
train, valid and test never overlap, whichever seeds and surface forms are used.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from selftaught.types import Prompt

MAX_OPERAND = 99
SPLITS = ("train", "valid", "test")
SPLIT_PERCENT = {"test": 10, "valid": 5, "train": 85}
"""Share of all problems in each split, in percent."""
NAMES = ("Dan", "Ann", "Bob", "Eva", "Sam", "Mia", "Tom", "Zoe")
OBJECTS = ("cards", "apples", "coins", "books", "stamps", "shells", "pens", "eggs")
ANSWER_PATTERN = re.compile(r"Answer:\s*(-?\d+)")
_DRAWS_PER_PROBLEM = 200
"""Draw budget of `sample_problems`, per requested problem. Only requests close to the number of
distinct problems at a level can run out of it."""


@dataclass
class Problem:
    """One arithmetic problem. `ops[i]` combines the running value with `operands[i + 1]`."""

    level: int
    """Number of operations (and of chain-of-thought steps); the problem has `level + 1` operands."""
    operands: list[int]
    """Integers in 0..99."""
    ops: list[str]
    """`"+"` or `"-"`, one fewer than `operands`."""
    answer: int
    """The exact value of the expression, evaluated left to right."""
    word: bool = False
    """Show the problem as a word problem instead of the bare expression."""

    def __post_init__(self) -> None:
        if self.level < 1 or len(self.operands) != self.level + 1 or len(self.ops) != self.level:
            raise ValueError(
                f"Problem.level must be >= 1 with level + 1 operands and level ops; got level {self.level}, "
                f"{len(self.operands)} operands, {len(self.ops)} ops"
            )
        if any(op not in ("+", "-") for op in self.ops):
            raise ValueError(f"Problem.ops must each be '+' or '-', got {self.ops}")
        if any(not 0 <= x <= MAX_OPERAND for x in self.operands):
            raise ValueError(f"Problem.operands must be in 0..{MAX_OPERAND}, got {self.operands}")
        value = self.operands[0]
        for op, x in self.terms:
            value = value + x if op == "+" else value - x
            if value < 0:
                raise ValueError(f"Problem {self.expression}: the running value must stay >= 0")
        if value != self.answer:
            raise ValueError(
                f"Problem.answer must be {value}, the value of {self.expression}; got {self.answer}"
            )

    @property
    def terms(self) -> list[tuple[str, int]]:
        """`(op, operand)` for every operand after the first: `[("-", 25), ("-", 7)]` for `33-25-7`."""
        return list(zip(self.ops, self.operands[1:], strict=True))

    @property
    def expression(self) -> str:
        """The bare expression, e.g. `33-25-7`."""
        return str(self.operands[0]) + "".join(f"{op}{x}" for op, x in self.terms)

    @property
    def text(self) -> str:
        """The question shown to the model: the expression, or its word form."""
        return _word_text(self) if self.word else self.expression

    @property
    def id(self) -> str:
        """Stable identifier, e.g. `arith-L2-cc304103` for `33-25-7`; differs between the plain and word forms."""
        form = "word" if self.word else "plain"
        return f"arith-L{self.level}-{_sha1(f'{self.expression}|{form}')[:8]}"


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _word_text(problem: Problem) -> str:
    """The word form. The name and object come from a hash of the expression, so they are stable."""
    digest = int(_sha1(problem.expression), 16)
    name = NAMES[digest % len(NAMES)]
    thing = OBJECTS[digest // len(NAMES) % len(OBJECTS)]
    sentences = [f"{name} has {problem.operands[0]} {thing}."]
    for op, x in problem.terms:
        sentences.append(f"{name} gets {x} more." if op == "+" else f"{name} loses {x}.")
    sentences.append("How many now?")
    return " ".join(sentences)


# ----------------------------------------------------------------------------------------------
# Solutions


def _apply(value: int, op: str, x: int, buggy: bool) -> int:
    """One step. A buggy teacher drops the units carry of an addition: `45+67=102`."""
    if op == "-":
        return value - x
    carries = value >= 0 and value % 10 + x % 10 >= 10
    return value + x - 10 if buggy and carries else value + x


def _sum_steps(terms: list[int], buggy: bool) -> tuple[list[str], int]:
    """Steps that add `terms` left to right, and their (possibly buggy) total."""
    steps, total = [], terms[0]
    for x in terms[1:]:
        result = _apply(total, "+", x, buggy)
        steps.append(f"{total}+{x}={result}")
        total = result
    return steps, total


def _chain_steps(problem: Problem, buggy: bool) -> tuple[list[str], int]:
    """`33-25=8 8-7=1`: one step per operation, left to right."""
    steps, value = [], problem.operands[0]
    for op, x in problem.terms:
        result = _apply(value, op, x, buggy)
        steps.append(f"{value}{op}{x}={result}")
        value = result
    return steps, value


def _grouped_steps(problem: Problem, buggy: bool) -> tuple[list[str], int]:
    """`Add: 45+64=109 109+9=118. Subtract: 36. 118-36=82`: sum the added terms, sum the subtracted
    terms, subtract once. Every intermediate value is a sum, so it stays >= 0 without a teacher bug."""
    added = [problem.operands[0]] + [x for op, x in problem.terms if op == "+"]
    subtracted = [x for op, x in problem.terms if op == "-"] or [0]
    added_steps, plus = _sum_steps(added, buggy)
    minus_steps, minus = _sum_steps(subtracted, buggy)
    value = plus - minus
    added_text = " ".join(added_steps) or str(plus)
    minus_text = " ".join(minus_steps) or str(minus)
    return [f"Add: {added_text}.", f"Subtract: {minus_text}.", f"{plus}-{minus}={value}"], value


def _direct_steps(problem: Problem, buggy: bool) -> tuple[list[str], int]:
    """No steps (System 1); a buggy teacher still gives its buggy chain's answer."""
    return [], _chain_steps(problem, buggy)[1]


_SOLVERS: dict[str, Callable[[Problem, bool], tuple[list[str], int]]] = {
    "chain": _chain_steps,
    "grouped": _grouped_steps,
    "direct": _direct_steps,
}
STRATEGIES = tuple(_SOLVERS)


def solve(
    problem: Problem, strategy: str = "chain", bug: float = 0.0, rng: random.Random | None = None
) -> str:
    """A worked solution ending with `Answer: N`, e.g. chain: `33-25=8 8-7=1 Answer: 1`.

    With probability `bug` the teacher is buggy for this whole solution: every addition step whose
    units digits carry is written as `a+b-10`, and the error propagates to the later steps and to
    the answer. A buggy answer may then be negative. `rng` draws that coin and is required when
    `bug > 0`; with `bug == 0` every solution is correct.
    """
    if strategy not in _SOLVERS:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    steps, value = _SOLVERS[strategy](problem, _teacher_is_buggy(bug, rng))
    return " ".join([*steps, f"Answer: {value}"])


def _teacher_is_buggy(bug: float, rng: random.Random | None) -> bool:
    if not 0.0 <= bug <= 1.0:
        raise ValueError(f"bug must be a probability in [0, 1], got {bug}")
    if bug == 0.0:
        return False
    if rng is None:
        raise ValueError("bug > 0 needs rng to draw the teacher's mistakes; pass rng=random.Random(seed)")
    return rng.random() < bug


def extract_answer(text: str) -> int | None:
    """The first `Answer: N` in `text` (N may be negative), or `None` when there is none.

    >>> extract_answer("8-7=1 Answer: 1"), extract_answer("no idea")
    (1, None)
    """
    match = ANSWER_PATTERN.search(text)
    return int(match.group(1)) if match else None


def is_correct(text: str, answer: int | str) -> bool:
    """Whether the first answer in `text` equals `answer`; a missing answer is not correct."""
    return extract_answer(text) == int(answer)


# ----------------------------------------------------------------------------------------------
# Sampling and splits


def split_of(problem: Problem) -> str:
    """`"train"`, `"valid"` or `"test"`, from a hash of the expression only: the same for any seed
    and for both surface forms, so the splits never overlap."""
    return _split_of_expression(problem.expression)


def _split_of_expression(expression: str) -> str:
    bucket = int(_sha1(f"split|{expression}")[:8], 16) % 100
    if bucket < SPLIT_PERCENT["test"]:
        return "test"
    return "valid" if bucket < SPLIT_PERCENT["test"] + SPLIT_PERCENT["valid"] else "train"


def _draw_problem(rng: random.Random, level: int, word: bool) -> Problem:
    """A random problem. The op is a fair coin; a subtracted operand is at most the running value."""
    value = rng.randint(0, MAX_OPERAND)
    operands, ops = [value], []
    for _ in range(level):
        op = rng.choice("+-")
        x = rng.randint(0, MAX_OPERAND if op == "+" else min(value, MAX_OPERAND))
        value = value + x if op == "+" else value - x
        operands.append(x)
        ops.append(op)
    return Problem(level=level, operands=operands, ops=ops, answer=value, word=word)


def _draw_split_problem(rng: random.Random, split: str, level: int, word: bool) -> Problem:
    """A random problem of `split` (rejection sampling; every split holds 5% or more of them)."""
    while True:
        problem = _draw_problem(rng, level, word)
        if split_of(problem) == split:
            return problem


@cache
def _num_distinct(level: int, split: str) -> int | None:
    """How many distinct problems `split` has at `level`: counted exactly for level 1 (15,050
    problems in all); `None` above, where every split holds over 50,000."""
    if level != 1:
        return None
    return sum(
        _split_of_expression(f"{a}{op}{b}") == split
        for a in range(MAX_OPERAND + 1)
        for b in range(MAX_OPERAND + 1)
        for op in ("+-" if b <= a else "+")
    )


def _distinct_problems(rng: random.Random, split: str, level: int, num: int, word: bool) -> list[Problem]:
    available = _num_distinct(level, split)
    if available is not None and num > available:
        raise ValueError(f"level {level} has only {available} distinct {split} problems, asked for {num}")
    found: dict[str, Problem] = {}
    for _ in range(_DRAWS_PER_PROBLEM * num):
        if len(found) == num:
            break
        problem = _draw_split_problem(rng, split, level, word)
        found.setdefault(problem.expression, problem)
    if len(found) < num:
        raise ValueError(
            f"found only {len(found)} distinct level-{level} {split} problems of the {num} asked for, "
            f"in {_DRAWS_PER_PROBLEM * num} draws; ask for fewer"
        )
    return list(found.values())


def _check_request(split: str, num: int, levels: Sequence[int]) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if num < 0:
        raise ValueError(f"num must be >= 0, got {num}")
    if not levels or len(set(levels)) != len(levels) or any(level < 1 for level in levels):
        raise ValueError(f"levels must be distinct integers >= 1, e.g. (1, 2, 3); got {levels}")


def _quotas(num: int, levels: Sequence[int]) -> list[int]:
    """`num` split as evenly as possible over `levels`, the first levels taking the remainder."""
    return [num // len(levels) + (i < num % len(levels)) for i in range(len(levels))]


def sample_problems(
    split: str, num: int, levels: Sequence[int], seed: int, word: bool = False
) -> list[Problem]:
    """`num` distinct problems of `split`, the levels mixed evenly, in random order.

    Deterministic in its arguments. Raises a ValueError when a level does not have enough
    distinct problems in the split (level 1 has about 1,500 test and 750 valid problems).
    """
    _check_request(split, num, levels)
    rng = random.Random(seed)
    problems = [
        problem
        for level, quota in zip(levels, _quotas(num, levels), strict=True)
        for problem in _distinct_problems(rng, split, level, quota, word)
    ]
    rng.shuffle(problems)
    return problems


def sample_eval_set(
    split: str, num_per_level: int, levels: Sequence[int], seed: int, word: bool = False
) -> list[Problem]:
    """`num_per_level` distinct problems of `split` for each level, grouped by level in order."""
    _check_request(split, num_per_level, levels)
    rng = random.Random(seed)
    return [
        problem for level in levels for problem in _distinct_problems(rng, split, level, num_per_level, word)
    ]


# ----------------------------------------------------------------------------------------------
# Records


def to_prompt(problem: Problem) -> Prompt:
    """The problem as a `Prompt`: one user turn, the exact answer as reference, task `"arith"`."""
    return Prompt(
        id=problem.id,
        messages=[{"role": "user", "content": problem.text}],
        answer=str(problem.answer),
        task="arith",
        meta={"level": problem.level, "split": split_of(problem), "expression": problem.expression},
    )


def to_sft_example(
    problem: Problem, strategy: str = "chain", bug: float = 0.0, rng: random.Random | None = None
) -> dict[str, Any]:
    """A TRL conversational SFT record: `{"messages": [user, assistant], "level": k}`."""
    messages = [
        {"role": "user", "content": problem.text},
        {"role": "assistant", "content": solve(problem, strategy, bug, rng)},
    ]
    return {"messages": messages, "level": problem.level}


def sample_sft_examples(
    num: int,
    levels: Sequence[int],
    seed: int,
    strategy_weights: dict[str, float] | None = None,
    bug: float = 0.0,
    word: bool = False,
) -> list[dict[str, Any]]:
    """`num` SFT records on train-split problems, the levels mixed evenly, in random order.

    The strategy of each record is drawn with `strategy_weights` (default: chain only). Problems are
    drawn with replacement, because a typical pool (50,000 records over levels 1-3) needs more level-1
    problems than the train split has distinct ones (about 12,800). A repeated problem may get
    another strategy or another teacher mistake.
    """
    _check_request("train", num, levels)
    weights = check_strategy_weights({"chain": 1.0} if strategy_weights is None else strategy_weights)
    rng = random.Random(seed)
    problems = [
        _draw_split_problem(rng, "train", level, word)
        for level, quota in zip(levels, _quotas(num, levels), strict=True)
        for _ in range(quota)
    ]
    rng.shuffle(problems)
    strategies = rng.choices(list(weights), weights=list(weights.values()), k=num)
    return [to_sft_example(problem, s, bug, rng) for problem, s in zip(problems, strategies, strict=True)]


def check_strategy_weights(weights: dict[str, float], key: str = "strategy_weights") -> dict[str, float]:
    """`weights`, or a ValueError naming the config `key` when a strategy is unknown or the weights are
    negative or sum to 0."""
    unknown = sorted(set(weights) - set(STRATEGIES))
    if unknown:
        raise ValueError(f"config key {key!r} has unknown strategies {unknown}; valid ones are {STRATEGIES}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"config key {key!r} must be weights >= 0 with a positive sum, got {weights}")
    return weights
