"""Procedural reasoning task families for NaturalReasoning's tiny world (papers_A.md §1.6).

Each family draws a question from a random generator and solves any question of its surface form
step by step, ending with `Answer: X`, so the same code is the question writer's generator, the
teacher (an oracle that reads the question) and the grader:

    arith     `33-25-7`                 -> `33-25=8 8-7=1 Answer: 1`       (the world's arithmetic chain)
    units     `3 m 25 cm in cm`         -> `3*100=300 300+25=325 Answer: 325`
    sort      `sort 5 2 9 1`            -> `min 1 min 2 min 5 min 9 Answer: 1 2 5 9`
    logic     `T and F or T`            -> `T and F=F F or T=T Answer: T`
    graph     `a>c b>a c>d; b to d?`    -> `b>a a>c c>d Answer: yes`      (follow the only edge out)
    reverse   `reverse bad`             -> `d da dab Answer: dab`   (letters a-h)
    unitsum   `3 m 25 cm + 48 cm in cm` -> `3*100=300 300+25=325 325+48=373 Answer: 373`

`unitsum` is the out-of-distribution family: it composes the conversion of `units` with the
additions of `arith` and is never in the training families (`TRAIN_FAMILIES`).

The split of a question (train 85%, valid 5%, test 10%) is a hash of its text, as in `world.arith`,
so any seed's draws of a split never meet another split's questions.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

Solution = tuple[list[str], str]
"""The worked steps and the final answer."""
ANSWER_PATTERN = re.compile(r"Answer:\s*(.+?)\s*$", re.MULTILINE)
UNITS = (("m", "cm", 100), ("km", "m", 1000), ("h", "min", 60), ("kg", "g", 1000))
LETTERS = "abcdefgh"


@dataclass(frozen=True)
class Family:
    """One task family: how to draw a question, how to solve one, and how documents talk about it."""

    name: str
    title: str
    """The topic a document about this family names in its first line (the scripted writer reads it)."""
    facts: tuple[str, ...]
    """Sentences of facts that contain no worked reasoning (low-density filler)."""
    draw: Callable[[random.Random], str]
    solve: Callable[[str], Solution | None]
    """The worked solution of a question of this family's form; None for any other text."""


def solution_text(solution: Solution) -> str:
    """`steps Answer: X` on one line, the form every family's solutions take."""
    steps, answer = solution
    return " ".join([*steps, f"Answer: {answer}"])


def extract_answer(text: str) -> str | None:
    """The last `Answer: X` of `text` (whitespace collapsed), or None."""
    found = ANSWER_PATTERN.findall(text)
    return " ".join(found[-1].split()) if found else None


# ---------------------------------------------------------------------------------------- arith


def _draw_arith(rng: random.Random) -> str:
    value = rng.randint(0, 99)
    parts = [str(value)]
    for _ in range(rng.choice((1, 2))):
        op = rng.choice("+-") if value > 0 else "+"
        x = rng.randint(0, 99) if op == "+" else rng.randint(0, min(99, value))
        value = value + x if op == "+" else value - x
        parts.append(f"{op}{x}")
    return "".join(parts)


def _chain(value: int, terms: list[tuple[str, int]]) -> tuple[list[str], int]:
    steps = []
    for op, x in terms:
        new = value + x if op == "+" else value - x
        steps.append(f"{value}{op}{x}={new}")
        value = new
    return steps, value


def _solve_arith(question: str) -> Solution | None:
    if not re.fullmatch(r"\d{1,2}([+-]\d{1,2}){1,4}", question):
        return None
    numbers = re.findall(r"[+-]?\d+", question)
    terms = [(n[0], int(n[1:])) for n in numbers[1:]]
    steps, value = _chain(int(numbers[0]), terms)
    return (steps, str(value)) if value >= 0 else None


# ---------------------------------------------------------------------------------------- units

_UNITS_RE = re.compile(r"(\d) (\w+) (\d{1,2}) (\w+)(?: \+ (\d{1,2}) (\w+))? in (\w+)")


def _draw_units(rng: random.Random) -> str:
    big, small, _ = rng.choice(UNITS)
    return f"{rng.randint(1, 9)} {big} {rng.randint(1, 59)} {small} in {small}"


def _draw_unitsum(rng: random.Random) -> str:
    big, small, _ = rng.choice(UNITS)
    return (
        f"{rng.randint(1, 9)} {big} {rng.randint(1, 59)} {small} + {rng.randint(10, 99)} {small} in {small}"
    )


def _solve_conversion(question: str, with_sum: bool) -> Solution | None:
    match = _UNITS_RE.fullmatch(question)
    if match is None or (match.group(5) is not None) != with_sum:
        return None
    count, big, part, small, extra, extra_unit, target = match.groups()
    factor = {(b, s): f for b, s, f in UNITS}.get((big, small))
    if factor is None or target != small or (with_sum and extra_unit != small):
        return None
    whole = int(count) * factor
    terms = [("+", int(part))] + ([("+", int(extra))] if with_sum else [])
    steps, value = _chain(whole, terms)
    return [f"{count}*{factor}={whole}", *steps], str(value)


# ----------------------------------------------------------------------------------------- sort


def _draw_sort(rng: random.Random) -> str:
    return "sort " + " ".join(str(rng.randint(0, 9)) for _ in range(rng.randint(3, 5)))


def _solve_sort(question: str) -> Solution | None:
    if not re.fullmatch(r"sort( \d){2,6}", question):
        return None
    ordered = sorted(int(x) for x in question.split()[1:])
    return [f"min {x}" for x in ordered], " ".join(map(str, ordered))


# ---------------------------------------------------------------------------------------- logic

_OPS: dict[str, Callable[[bool, bool], bool]] = {
    "and": lambda a, b: a and b,
    "or": lambda a, b: a or b,
    "xor": lambda a, b: a != b,
}


def _draw_logic(rng: random.Random) -> str:
    parts = [rng.choice("TF")]
    for _ in range(rng.randint(1, 3)):
        parts += [rng.choice(sorted(_OPS)), rng.choice("TF")]
    return " ".join(parts)


def _solve_logic(question: str) -> Solution | None:
    if not re.fullmatch(r"[TF]( (and|or|xor) [TF]){1,5}", question):
        return None
    words = question.split()
    value, steps = words[0], []
    for op, x in zip(words[1::2], words[2::2], strict=True):
        new = "T" if _OPS[op](value == "T", x == "T") else "F"
        steps.append(f"{value} {op} {x}={new}")
        value = new
    return steps, value


# ---------------------------------------------------------------------------------------- graph


def _draw_graph(rng: random.Random) -> str:
    nodes = rng.sample(LETTERS, 5)
    edges = [(nodes[i], nodes[i + 1]) for i in range(rng.randint(2, 4))]
    if rng.random() < 0.5:  # break the path: the target may be unreachable
        cut = rng.randrange(len(edges))
        edges[cut] = (edges[cut][0], rng.choice([n for n in LETTERS if n not in nodes]))
    rng.shuffle(edges)
    start, target = nodes[0], nodes[len(edges)] if rng.random() < 0.8 else nodes[-1]
    return " ".join(f"{a}>{b}" for a, b in edges) + f"; {start} to {target}?"


def _solve_graph(question: str) -> Solution | None:
    match = re.fullmatch(r"((?:[a-h]>[a-h] ?)+); ([a-h]) to ([a-h])\?", question)
    if match is None:
        return None
    out: dict[str, str] = {}
    for a, b in (e.split(">") for e in match.group(1).split()):
        if a in out:
            return None  # one edge out of each node, so the walk is the only path
        out[a] = b
    node, target, steps, seen = match.group(2), match.group(3), [], set()
    while node != target and node in out and node not in seen:
        seen.add(node)
        steps.append(f"{node}>{out[node]}")
        node = out[node]
    return (steps or ["stay"]), "yes" if node == target else "no"


# -------------------------------------------------------------------------------------- reverse


def _draw_reverse(rng: random.Random) -> str:
    return "reverse " + "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 5)))


def _solve_reverse(question: str) -> Solution | None:
    if not re.fullmatch(r"reverse [a-h]{2,7}", question):
        return None
    word = question.split()[1][::-1]
    return [word[: i + 1] for i in range(len(word))], word


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "arith",
            "adding and subtracting",
            ("Sums are written left to right.", "A shop adds up prices at the till."),
            _draw_arith,
            _solve_arith,
        ),
        Family(
            "units",
            "unit conversion",
            ("A metre has 100 centimetres.", "An hour has 60 minutes.", "A kilogram has 1000 grams."),
            _draw_units,
            lambda q: _solve_conversion(q, with_sum=False),
        ),
        Family(
            "sort",
            "sorting lists",
            ("A sorted list goes from small to large.", "Librarians sort books by number."),
            _draw_sort,
            _solve_sort,
        ),
        Family(
            "logic",
            "boolean logic",
            ("T means true and F means false.", "Logic gates sit inside every computer."),
            _draw_logic,
            _solve_logic,
        ),
        Family(
            "graph",
            "reachability in graphs",
            ("A road map is a graph of towns.", "An arrow a>b is a one-way road from a to b."),
            _draw_graph,
            _solve_graph,
        ),
        Family(
            "reverse",
            "reversing words",
            ("A palindrome reads the same both ways.", "Mirror writing reverses letters."),
            _draw_reverse,
            _solve_reverse,
        ),
        Family(
            "unitsum",
            "adding measurements",
            ("Lengths in the same unit can be added.",),
            _draw_unitsum,
            lambda q: _solve_conversion(q, with_sum=True),
        ),
    ]
}
TRAIN_FAMILIES = ("arith", "units", "sort", "logic", "graph", "reverse")
OOD_FAMILIES = ("unitsum",)


def family_of(question: str) -> str | None:
    """The family whose solver reads `question`, or None."""
    return next((name for name, f in FAMILIES.items() if f.solve(question.strip()) is not None), None)


def solve(question: str) -> Solution | None:
    """The oracle's worked solution of any family's question (None for text of no family's form)."""
    name = family_of(question)
    return None if name is None else FAMILIES[name].solve(question.strip())


def split_of(question: str) -> str:
    """`train`, `valid` or `test`, from a hash of the question's text (85 / 5 / 10)."""
    bucket = int(hashlib.sha1(f"split|{question}".encode()).hexdigest()[:8], 16) % 100
    return "test" if bucket < 10 else "valid" if bucket < 15 else "train"


def draw_question(family: str, rng: random.Random, split: str | None = None) -> str:
    """A question of `family` (of `split` when given: drawn again until the hash puts it there)."""
    for _ in range(10_000):
        question = FAMILIES[family].draw(rng)
        if split is None or split_of(question) == split:
            return question
    raise RuntimeError(f"family {family!r} drew no question of split {split!r} in 10000 tries")
