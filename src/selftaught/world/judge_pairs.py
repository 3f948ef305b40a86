"""Judge pairs with known winners: a tiny-world problem, its correct solution and a wrong one.

The correct solution is the chain solution of `arith.solve`. The wrong one is either

- `dropped_carry`: the buggy teacher's chain (every units carry of an addition dropped, the error
  carried to the answer), a fluent solution that is wrong by a multiple of 10; or
- `off_by_one`: the chain with one step's result off by one, propagated to the answer, the
  systematic slip that offline DPO produces (TINYWORLD.md §3b).

A problem without a carry cannot have a dropped carry and gets `off_by_one`. The pairs are the
J1 / Self-Taught Evaluator "correct vs wrong final answer" pairs (papers_B §2.2) in miniature,
drawn from the splits of `arith`, so judge training and evaluation never share a problem.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selftaught.types import Completion, Pair
from selftaught.world.arith import Problem, sample_problems, solve, split_of, to_prompt

CORRUPTIONS = ("dropped_carry", "off_by_one")


@dataclass
class JudgePair:
    """A problem with a correct (chosen) and a wrong (rejected) solution."""

    problem: Problem
    chosen: str
    """The correct chain solution, e.g. `45+64=109 109+36=145 Answer: 145`."""
    rejected: str
    """A wrong solution of the same shape, e.g. `45+64=99 99+36=135 Answer: 135`."""
    corruption: str
    """How `rejected` was made: one of `CORRUPTIONS`."""

    @property
    def id(self) -> str:
        return f"judge-{self.problem.id}"


def dropped_carry_solution(problem: Problem) -> str | None:
    """The buggy teacher's chain solution, or `None` when it is correct (no carry to drop)."""
    buggy = solve(problem, "chain", bug=1.0, rng=random.Random(0))  # bug=1: the coin always says buggy
    return None if buggy == solve(problem, "chain") else buggy


def off_by_one_solution(problem: Problem, rng: random.Random) -> str:
    """The chain solution with one random step's result off by one (up when it is 0), propagated."""
    slip_step = rng.randrange(problem.level)
    steps, value = [], problem.operands[0]
    for step, (op, x) in enumerate(problem.terms):
        result = value + x if op == "+" else value - x
        if step == slip_step:
            result += 1 if result == 0 else rng.choice((-1, 1))
        steps.append(f"{value}{op}{x}={result}")
        value = result
    return " ".join([*steps, f"Answer: {value}"])


def build_judge_pair(problem: Problem, rng: random.Random) -> JudgePair:
    """A pair for `problem`; the corruption is drawn uniformly, `off_by_one` when no carry can be dropped."""
    corruption = rng.choice(CORRUPTIONS)
    rejected = dropped_carry_solution(problem) if corruption == "dropped_carry" else None
    if rejected is None:
        corruption, rejected = "off_by_one", off_by_one_solution(problem, rng)
    return JudgePair(problem, solve(problem, "chain"), rejected, corruption)


def sample_judge_pairs(
    split: str, num: int, levels: Sequence[int] = (1, 2, 3), seed: int = 0
) -> list[JudgePair]:
    """`num` pairs on distinct problems of `split`, levels mixed evenly; deterministic in the arguments.

    Each pair draws its corruption from its own generator, seeded by `seed` and the problem id.
    """
    problems = sample_problems(split, num, levels, seed)
    return [build_judge_pair(problem, random.Random(f"{seed}|{problem.id}")) for problem in problems]


def to_pair(pair: JudgePair) -> Pair:
    """The pair as a `Pair` record (chosen = the correct solution), with its provenance in `meta`."""
    prompt = to_prompt(pair.problem)
    return Pair(
        prompt=prompt,
        chosen=Completion(prompt_id=prompt.id, text=pair.chosen),
        rejected=Completion(prompt_id=prompt.id, text=pair.rejected),
        meta={"id": pair.id, "corruption": pair.corruption, "level": pair.problem.level},
    )


def to_preference_record(pair: JudgePair) -> dict[str, Any]:
    """A TRL conversational preference record: `prompt`, `chosen`, `rejected` plus provenance columns."""
    return {
        "id": pair.id,
        "prompt": [{"role": "user", "content": pair.problem.text}],
        "chosen": [{"role": "assistant", "content": pair.chosen}],
        "rejected": [{"role": "assistant", "content": pair.rejected}],
        "answer": str(pair.problem.answer),
        "level": pair.problem.level,
        "split": split_of(pair.problem),
        "corruption": pair.corruption,
    }
