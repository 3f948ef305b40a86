"""Judge pairs with known winners: a tiny-world problem, its correct solution and a wrong one.

The correct solution is the chain solution of `arith.solve`. The wrong one is either

- `dropped_carry`: the buggy teacher's chain (every units carry of an addition dropped, the error
  carried to the answer), a fluent solution that is wrong by a multiple of 10; or
- `off_by_one`: the chain with one step's result off by one, propagated to the answer, the
  systematic slip that offline DPO produces (TINYWORLD.md §3b).

A problem without a carry cannot have a dropped carry and gets `off_by_one`. The pairs are the
J1 / Self-Taught Evaluator "correct vs wrong final answer" pairs (papers_B §2.2) in miniature,
drawn from the splits of `arith`, so judge training and evaluation never share a problem.

`judge_sft_records` are the seed judge's SFT conversations (J1 on the tiny world, issue 12): the
pair in the world judge format `JUDGE_PROMPT` (random order), answered by a biased teacher that
recomputes the chain (buggy with probability `bug`), names the candidate equal to its own answer
(**A when neither is**) and then says A anyway with probability `a_bias`
(TINYWORLD_JUDGES_LPO.md §1.1): a position-biased judge whose verdict follows its thinking.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selftaught.types import Completion, Pair
from selftaught.world.arith import Problem, extract_answer, sample_problems, solve, split_of, to_prompt

CORRUPTIONS = ("dropped_carry", "off_by_one")
JUDGE_PROMPT = "{question} A: {response_a} B: {response_b}"
"""The tiny world's pairwise judge prompt (`judges.templates`' `world-pairwise-verdict@1`), e.g.
`45+64+36 A: 45+64=109 109+36=145 Answer: 145 B: 45+64=99 99+36=135 Answer: 135`; the judge answers
with its own chain and a verdict, `45+64=109 109+36=145 Answer: 145 [[A]]`."""


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


def teacher_judgment(pair: JudgePair, swapped: bool, rng: random.Random, bug: float, a_bias: float) -> str:
    """The biased teacher's judgment of `pair` shown in one order (`swapped`: the rejected solution
    as A): its own chain (buggy with probability `bug`), then the candidate whose answer equals its
    own, A when neither does, overwritten with A with probability `a_bias`."""
    thinking = solve(pair.problem, "chain", bug=bug, rng=rng)
    own = extract_answer(thinking)
    shown = (pair.rejected, pair.chosen) if swapped else (pair.chosen, pair.rejected)
    answers = [extract_answer(text) for text in shown]
    verdict = "B" if own == answers[1] and own != answers[0] else "A"
    if rng.random() < a_bias:
        verdict = "A"
    return f"{thinking} [[{verdict}]]"


def judge_sft_records(
    num: int, levels: Sequence[int] = (1, 2, 3), seed: int = 0, bug: float = 0.3, a_bias: float = 0.2
) -> list[dict[str, Any]]:
    """`num` seed-judge conversations on distinct train problems (module doc): user = `JUDGE_PROMPT`
    in a random order, assistant = `teacher_judgment`; columns `winner` (the right letter as shown),
    `corruption` and `level`."""
    rng = random.Random(f"judge-sft|{seed}")
    records = []
    for pair in sample_judge_pairs("train", num, levels, seed):
        swapped = rng.random() < 0.5
        a, b = (pair.rejected, pair.chosen) if swapped else (pair.chosen, pair.rejected)
        user = JUDGE_PROMPT.format(question=pair.problem.text, response_a=a, response_b=b)
        messages = [
            {"role": "user", "content": user},
            {"role": "assistant", "content": teacher_judgment(pair, swapped, rng, bug, a_bias)},
        ]
        records.append(
            {
                "messages": messages,
                "winner": "B" if swapped else "A",
                "corruption": pair.corruption,
                "level": pair.problem.level,
            }
        )
    return records
