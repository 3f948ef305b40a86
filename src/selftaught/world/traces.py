"""The tiny world of NaturalThoughts (papers_A.md §2.6): an oracle teacher whose reasoning traces carry
strategy tokens, a controllable amount of filler, and a known difficulty; and the oracle annotator
that reads such a trace back.

Questions are arithmetic chains (`world.arith`); the difficulty is the level (the number of steps).
The teacher's reply is `<think>TRACE</think>Answer: N`. TRACE is a space-separated list of items:

    <explore>33-25-7             a look at what is left to compute, before the step
    33-25=8                      a main step (one per operation, left to right)
    <verify>33-25=8              the step just taken, done again
    <backtrack>8-7=11 8-7=1      a deliberately wrong attempt, abandoned, then the step
    hmm hmm                      filler ("verbosity"): words that make no progress, after the last step

Each step carries each strategy with a probability that grows with the level (`strategy_rates`), so
harder questions get longer traces with more distinct strategies, as R1's do; the number of filler
words is the trace's verbosity (0-10), drawn per trace from a geometric law (P(k) = 0.6 * 0.4^k,
clipped at 10). The strategy items only copy or redo the chain's own steps (a wrong attempt only
inside its tag), so they lengthen a trace without asking a small student for new arithmetic (an
inverse-operation check, a tens-then-units detour and untagged wrong steps broke the `tiny-world`
student's arithmetic in a first try); filler sits
after the last step and is never the most likely next word, so a greedy student does not ramble
(mid-trace filler, uniform 0-10, gave 0% accuracy). The oracle annotator
(`annotator_reply`) recovers the domain, the strategy set, the verbosity and the number of steps
from the text alone, and answers in the annotation templates' reply format.

This is a synthetic proxy: it tests the selection and mixing logic, not claims about natural-language
reasoning strategies.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from selftaught.world.arith import Problem, sample_problems

STRATEGIES = ("verify", "backtrack", "explore")
"""The strategy tokens a trace can carry, `<verify>` etc."""
DOMAINS = ("addition", "subtraction", "mixed")
"""The tiny world's domain taxonomy: which operations a question uses."""
FILLER = "hmm"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_EQUATION = re.compile(r"^(\d+)([+-])(\d+)=(-?\d+)$")
_EXPRESSION = re.compile(r"^\d+(?:[+-]\d+)+$")


@dataclass(frozen=True)
class TeacherStyle:
    """How the oracle teacher writes: per-step strategy probabilities and the verbosity range."""

    strategy_rates: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"verify": (0.0, 0.12), "backtrack": (0.0, 0.08), "explore": (-0.05, 0.07)}
    )
    """Strategy -> (intercept, slope): a step of a level-k question carries it with probability
    `clip(intercept + slope * k, 0, 1)`."""
    max_verbosity: int = 10
    """Filler words at the end of a trace: k with probability (1 - p_more) * p_more^k, clipped here."""
    p_more: float = 0.4
    """Below 0.5, so that stopping is always the likelier continuation for a greedy student."""

    def verbosity(self, rng: random.Random) -> int:
        count = 0
        while count < self.max_verbosity and rng.random() < self.p_more:
            count += 1
        return count

    def rate(self, strategy: str, level: int) -> float:
        intercept, slope = self.strategy_rates[strategy]
        return min(1.0, max(0.0, intercept + slope * level))


def parse_expression(text: str) -> Problem:
    """The problem written as `33-25-7` (surrounding spaces allowed); a ValueError otherwise."""
    expression = text.strip()
    if not _EXPRESSION.match(expression):
        raise ValueError(f"not an arithmetic chain like 33-25-7: {text!r}")
    numbers = [int(x) for x in re.findall(r"\d+", expression)]
    ops = re.findall(r"[+-]", expression)
    value = numbers[0]
    for op, x in zip(ops, numbers[1:], strict=True):
        value = value + x if op == "+" else value - x
    return Problem(level=len(ops), operands=numbers, ops=ops, answer=value)


def domain_of(problem: Problem) -> str:
    """`addition`, `subtraction` or `mixed`: the operations the question uses."""
    kinds = set(problem.ops)
    return "mixed" if len(kinds) == 2 else ("addition" if kinds == {"+"} else "subtraction")


def teacher_trace(problem: Problem, rng: random.Random, style: TeacherStyle | None = None) -> str:
    """The oracle teacher's trace (without the think tags) for `problem`, drawn with `rng`."""
    style = style or TeacherStyle()
    items: list[str] = []
    items_steps: list[int] = []
    value = problem.operands[0]
    for op, x in problem.terms:
        result = value + x if op == "+" else value - x
        if rng.random() < style.rate("explore", problem.level):
            rest = problem.terms[len(items_steps) :]
            items.append("<explore>" + str(value) + "".join(f"{o}{y}" for o, y in rest))
        if rng.random() < style.rate("backtrack", problem.level):
            items.append(f"<backtrack>{value}{op}{x}={result + rng.choice((-10, 10, 1))}")
        items.append(f"{value}{op}{x}={result}")
        if rng.random() < style.rate("verify", problem.level):
            items.append(f"<verify>{value}{op}{x}={result}")
        items_steps.append(result)
        value = result
    items += [FILLER] * style.verbosity(rng)
    return " ".join(items)


def teacher_reply(question: str, rng: random.Random, style: TeacherStyle | None = None) -> str:
    """`<think>TRACE</think>Answer: N` for the chain in the first line of `question`."""
    problem = parse_expression(question.split("\n")[0].split(" ")[0])
    return f"{THINK_OPEN}{teacher_trace(problem, rng, style)}{THINK_CLOSE}Answer: {problem.answer}"


@dataclass(frozen=True)
class TraceFacts:
    """What the oracle annotator reads from a trace."""

    strategies: tuple[str, ...]
    verbosity: int
    num_steps: int


def read_trace(trace: str) -> TraceFacts:
    """The strategies (sorted), filler count (clipped to 10) and main steps of a trace."""
    used, filler, steps = set(), 0, 0
    for item in trace.split():
        tag = re.match(r"^<(\w+)>", item)
        if tag:
            used.add(tag.group(1))
        elif item == FILLER:
            filler += 1
        elif _EQUATION.match(item):
            steps += 1
    return TraceFacts(tuple(sorted(used)), min(filler, 10), steps)


ANNOTATION_KEYS = {"Domain": "domain", "Strategies": "strategies", "Verbosity": "verbosity", "Steps": "steps"}
"""The reply key of each annotation template (`Reply with one line: Domain: ...`) -> its kind."""


def annotator_reply(prompt_text: str) -> str:
    """The oracle annotator's reply to an annotation prompt: the prompt's `Question: ...` and
    `Reasoning: ...` lines are read, and its `Reply with one line: <Key>: ...` line says what is
    asked (`Domain`, `Strategies`, `Verbosity`, `Steps`); the reply is that one line, exactly."""
    fields = dict(re.findall(r"^(Question|Reasoning): ?(.*)$", prompt_text, flags=re.MULTILINE))
    asked = re.search(r"Reply with one line: (\w+):", prompt_text)
    if asked is None or asked.group(1) not in ANNOTATION_KEYS:
        raise ValueError(
            f"not an annotation prompt (no `Reply with one line: <Key>:`): {prompt_text[:200]!r}"
        )
    key = asked.group(1)
    if key == "Domain":
        return f"Domain: {domain_of(parse_expression(fields['Question']))}"
    facts = read_trace(fields.get("Reasoning", ""))
    if key == "Strategies":
        return "Strategies: " + (", ".join(facts.strategies) or "none")
    if key == "Verbosity":
        return f"Verbosity: {facts.verbosity}"
    return f"Steps: {facts.num_steps}"


def question_records(
    *, split: str = "train", num: int = 2000, levels: Sequence[int] = (1, 2, 3, 4, 5), seed: int = 0
) -> list[dict[str, Any]]:
    """`num` distinct problems of `split` as question records: `id`, `question` (the bare chain),
    `answer` (str), `level` (the known difficulty)."""
    return [
        {"id": p.id, "question": p.text, "answer": str(p.answer), "level": p.level}
        for p in sample_problems(split, num, levels, seed=seed)
    ]
