"""List tasks with near-miss instructions: the Self-Taught Evaluator's tiny world (papers_A §5.6).

A task is an instruction and a list of digits, e.g. `sort up: 3 1 4 1 5`, with one exact output
(`1 1 3 4 5`). Every instruction has a *near miss*, a nearby instruction with a different output
(`sort down`, `5 4 3 1 1`). The near miss makes the paper's modified-instruction pairs: y_w is the
output of x, y_l the output of the near miss x' (a fluent answer to the wrong question). The random
corruption pairs (two elements of y_w swapped, or one changed) are the baseline negatives.

    TASKS  instruction     near miss      example (5 2 8 2 7)
           sort up         sort down      2 2 5 7 8     / 8 7 5 2 2
           reverse         reverse half   7 2 8 2 5     / 8 2 5 2 7
           rotate left     rotate right   2 8 2 7 5     / 7 5 2 8 2
           evens           odds           2 8 2         / 5 7
           first three     last three     5 2 8         / 8 2 7
           add one         add two        6 3 9 3 8     / 7 4 0 4 9   (mod 10)
           dedupe          repeats        5 2 8 7       / 2
           swap ends       swap pairs     7 2 8 2 5     / 2 5 2 8 7

The judge's world format (`JUDGE_PROMPT`, `judgment`) is the trace of §5.6: the judge computes the
output, checks each candidate against it, and names the one that matches,
`sort up: 3 1 2 A: 3 2 1 B: 1 2 3` -> `1 2 3 A 1=3- 2=2- 3=1- no B 1=1+ 2=2+ 3=3+ yes [[B]]`. The checks are
element-wise (`aligned_check`): comparing two whole digit strings 15-30 tokens apart is what a
small model from scratch did not learn (a 2-layer judge with `A yes B no` checks wrote the same
checks whatever it computed, docs/results.md); each `c=a` pair puts the digits to compare side
by side, and a running `+` / `-` mark supervises the comparison where it happens (without marks
the same judge wrote the pairs right and its yes/no ignored them).
Splits: train, valid and test share the instructions of `TRAIN_TASKS` and never a digit list;
`heldout` holds the families of `HELDOUT_TASKS`, never trained (the paper's held-out task families).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Digits = tuple[int, ...]


def _reverse_half(xs: Digits) -> Digits:
    half = len(xs) // 2
    return tuple(reversed(xs[:half])) + xs[half:]


def _dedupe(xs: Digits) -> Digits:
    return tuple(dict.fromkeys(xs))


def _repeats(xs: Digits) -> Digits:
    return tuple(x for x in dict.fromkeys(xs) if xs.count(x) > 1)


def _swap_pairs(xs: Digits) -> Digits:
    out = list(xs)
    for i in range(0, len(out) - 1, 2):
        out[i], out[i + 1] = out[i + 1], out[i]
    return tuple(out)


TASKS: dict[str, Callable[[Digits], Digits]] = {
    "sort up": lambda xs: tuple(sorted(xs)),
    "sort down": lambda xs: tuple(sorted(xs, reverse=True)),
    "reverse": lambda xs: tuple(reversed(xs)),
    "reverse half": _reverse_half,
    "rotate left": lambda xs: xs[1:] + xs[:1],
    "rotate right": lambda xs: xs[-1:] + xs[:-1],
    "evens": lambda xs: tuple(x for x in xs if x % 2 == 0),
    "odds": lambda xs: tuple(x for x in xs if x % 2 == 1),
    "first three": lambda xs: xs[:3],
    "last three": lambda xs: xs[-3:],
    "add one": lambda xs: tuple((x + 1) % 10 for x in xs),
    "add two": lambda xs: tuple((x + 2) % 10 for x in xs),
    "dedupe": _dedupe,
    "repeats": _repeats,
    "swap ends": lambda xs: xs[-1:] + xs[1:-1] + xs[:1],
    "swap pairs": _swap_pairs,
}
"""Instruction -> exact output."""
NEAR_MISS: dict[str, str] = {
    **{a: b for a, b in zip(list(TASKS)[::2], list(TASKS)[1::2], strict=True)},
    **{b: a for a, b in zip(list(TASKS)[::2], list(TASKS)[1::2], strict=True)},
}
"""Each instruction's near miss (the table's pairs, both ways)."""
HELDOUT_TASKS = ("dedupe", "repeats", "swap ends", "swap pairs")
"""Held-out families: the `heldout` split, never in train, valid or test."""
TRAIN_TASKS = tuple(t for t in TASKS if t not in HELDOUT_TASKS)
NEGATIVES = ("modified_instruction", "random_corruption")
JUDGE_PROMPT = "{question} A: {response_a} B: {response_b}"
"""The list judge's prompt: `<instruction>: <digits> A: <output> B: <output>`."""
POINTWISE_PROMPT = "{question} R: {response}"
"""The pointwise list judge's prompt (`world-pointwise@1`): one response, scored 1 or 0."""
SPLIT_SEEDS = {"train": 0, "valid": 1, "test": 2, "heldout": 3}


def show(xs: Sequence[int]) -> str:
    """Digits as the world writes them, `3 1 4`; the empty list as `none`."""
    return " ".join(map(str, xs)) if xs else "none"


@dataclass(frozen=True)
class ListTask:
    instruction: str
    digits: Digits

    @property
    def question(self) -> str:
        return f"{self.instruction}: {show(self.digits)}"

    @property
    def answer(self) -> str:
        return show(TASKS[self.instruction](self.digits))

    @property
    def id(self) -> str:
        return f"list-{self.instruction.replace(' ', '-')}-{''.join(map(str, self.digits))}"


@dataclass(frozen=True)
class ListPair:
    """A task with its correct output (chosen) and a wrong one (rejected)."""

    task: ListTask
    rejected: str
    negative: str
    """How `rejected` was made: one of `NEGATIVES`."""

    @property
    def chosen(self) -> str:
        return self.task.answer


def split_tasks(split: str) -> tuple[str, ...]:
    """Instructions of a split: `HELDOUT_TASKS` for heldout, `TRAIN_TASKS` for the others."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"list tasks: split must be one of {sorted(SPLIT_SEEDS)}, got {split!r}")
    return HELDOUT_TASKS if split == "heldout" else TRAIN_TASKS


def sample_task(rng: random.Random, instructions: Sequence[str]) -> ListTask:
    """A task of one of `instructions` on 4-7 random digits."""
    return ListTask(rng.choice(instructions), tuple(rng.randrange(10) for _ in range(rng.randint(4, 7))))


def corrupt(output: Digits, rng: random.Random) -> Digits:
    """A random corruption of a non-empty output: two different elements swapped, or one changed."""
    distinct = [
        (i, j) for i in range(len(output)) for j in range(i + 1, len(output)) if output[i] != output[j]
    ]
    out = list(output)
    if distinct and rng.random() < 0.5:
        i, j = rng.choice(distinct)
        out[i], out[j] = out[j], out[i]
    else:
        i = rng.randrange(len(out))
        out[i] = (out[i] + rng.randint(1, 9)) % 10
    return tuple(out)


def make_pair(task: ListTask, negative: str, rng: random.Random) -> ListPair | None:
    """The pair of `task` with a `negative` rejected output; None when it would equal the chosen one
    (the near miss gives the same output, e.g. sorting an already sorted list) or is empty."""
    output = TASKS[task.instruction](task.digits)
    if negative == "modified_instruction":
        rejected = TASKS[NEAR_MISS[task.instruction]](task.digits)
    elif negative == "random_corruption":
        rejected = corrupt(output, rng) if output else ()
    else:
        raise ValueError(f"negative must be one of {NEGATIVES}, got {negative!r}")
    if not rejected or rejected == output:
        return None
    return ListPair(task, show(rejected), negative)


def sample_list_pairs(split: str, num: int, negative: str, seed: int = 0) -> list[ListPair]:
    """`num` pairs of distinct tasks of `split` (module doc), deterministic in the arguments."""
    instructions, pairs, seen = split_tasks(split), [], set()
    rng = random.Random(f"list-pairs|{split}|{negative}|{seed}|{SPLIT_SEEDS[split]}")
    for _ in range(100 * num):
        task = sample_task(rng, instructions)
        if task in seen or _split_of(task) != split:
            continue
        pair = make_pair(task, negative, rng)
        if pair is not None:
            seen.add(task)
            pairs.append(pair)
            if len(pairs) == num:
                return pairs
    raise ValueError(f"list tasks: only {len(pairs)} distinct {split} pairs found, asked for {num}")


def _split_of(task: ListTask) -> str:
    """Train, valid and test never share a digit list: a hash of the digits picks the split;
    every task of `HELDOUT_TASKS` is heldout."""
    if task.instruction in HELDOUT_TASKS:
        return "heldout"
    bucket = sum((i + 1) * d for i, d in enumerate(task.digits)) % 10
    return "valid" if bucket == 0 else "test" if bucket == 1 else "train"


def elements(output: str) -> list[str]:
    """An output's elements: `"1 1 3"` -> `["1", "1", "3"]`; `none` (the empty list) -> `[]`."""
    return [] if output == "none" else output.split()


def aligned_check(computed: str, shown: str) -> str:
    """One candidate's check against the judge's computed output, element by element: each pair
    `c=a` (computed element, shown element; the shorter side padded with `_`) is marked `+` while
    every pair so far matches and `-` from the first mismatch on; then `yes` when the last mark
    is `+`: `1=1+ 2=4- 3=3- no`. Every step reads tokens a fixed few positions back (the pair's
    digits, the previous mark), so a small model can learn each one."""
    ours, theirs = elements(computed), elements(shown)
    width = max(len(ours), len(theirs))
    ours, theirs = ours + ["_"] * (width - len(ours)), theirs + ["_"] * (width - len(theirs))
    pairs, ok = [], True
    for c, a in zip(ours, theirs, strict=True):
        ok = ok and c == a
        pairs.append(f"{c}={a}{'+' if ok else '-'}")
    return " ".join([*pairs, "yes" if ok else "no"])


def judgment(pair: ListPair, swapped: bool, *, wrong: bool = False) -> str:
    """The judge trace of `pair` shown in one order (`swapped`: the rejected output as A): the
    computed output, an element-wise check of each candidate (`aligned_check`), the verdict, e.g.
    `1 1 3 A 1=3- 1=1- 3=1- no B 1=1+ 1=1+ 3=3+ yes [[B]]`. `wrong` writes the trace of a judge that
    computed the near miss (or a corruption) instead: its checks and verdict follow it."""
    computed = pair.rejected if wrong else pair.chosen
    shown = (pair.rejected, pair.chosen) if swapped else (pair.chosen, pair.rejected)
    return check_trace(computed, *shown)


def computed_output(trace: str) -> str | None:
    """The output a check trace starts with (`check_trace`'s or `pointwise_trace`'s `computed`), or
    None when the trace has no check: `"1 2 A 1=2- ..."` or `"1 2 R 1=1+ ..."` -> `"1 2"`."""
    match = re.match(r"(.*?) [AR] ", trace)
    return match.group(1).strip() if match else None


def check_trace(computed: str, response_a: str, response_b: str) -> str:
    """The trace of a judge that computed `computed`: it, both checks, and the verdict that names
    the candidate equal to it (B when neither is: the trace is only written for pairs that hold
    `computed`)."""
    verdict = "A" if response_a == computed else "B"
    checks = f"A {aligned_check(computed, response_a)} B {aligned_check(computed, response_b)}"
    return f"{computed} {checks} [[{verdict}]]"


def pointwise_trace(computed: str, response: str) -> str:
    """The pointwise judge's trace: the computed output, the check of the one response, its score
    (1 when it matches), e.g. `1 2 R 1=1+ 2=3- no [[0]]`."""
    return f"{computed} R {aligned_check(computed, response)} [[{int(response == computed)}]]"


def to_preference_record(pair: ListPair) -> dict[str, Any]:
    """A TRL standard preference record with provenance columns (`selftaught eval-judge --data`)."""
    return {
        "id": pair.task.id,
        "prompt": pair.task.question,
        "chosen": pair.chosen,
        "rejected": pair.rejected,
        "answer": pair.chosen,
        "instruction": pair.task.instruction,
        "negative": pair.negative,
        "section": pair.negative,
    }


def solution_record(task: ListTask) -> dict[str, Any]:
    """A task-solving conversation: the question, then its exact output."""
    return {
        "messages": [
            {"role": "user", "content": task.question},
            {"role": "assistant", "content": task.answer},
        ],
        "id": task.id,
    }


def judge_record(pair: ListPair, swapped: bool) -> dict[str, Any]:
    """A judging conversation: the pair in one order (`swapped`: rejected as A) and the correct trace."""
    a, b = (pair.rejected, pair.chosen) if swapped else (pair.chosen, pair.rejected)
    return {
        "messages": [
            {
                "role": "user",
                "content": JUDGE_PROMPT.format(question=pair.task.question, response_a=a, response_b=b),
            },
            {"role": "assistant", "content": judgment(pair, swapped)},
        ],
        "id": f"{pair.task.id}|{'ba' if swapped else 'ab'}",
        "winner": "B" if swapped else "A",
    }


def pointwise_record(pair: ListPair, rejected: bool) -> dict[str, Any]:
    """A pointwise judging conversation: one response of `pair` (`rejected` or chosen) and its trace."""
    response = pair.rejected if rejected else pair.chosen
    return {
        "messages": [
            {
                "role": "user",
                "content": POINTWISE_PROMPT.format(question=pair.task.question, response=response),
            },
            {"role": "assistant", "content": pointwise_trace(pair.chosen, response)},
        ],
        "id": f"{pair.task.id}|{'rejected' if rejected else 'chosen'}",
    }


def seed_judge_records(
    num: int, seed: int = 0, judge_share: float = 0.5, pointwise_share: float = 0.25, thinking: bool = True
) -> list[dict[str, Any]]:
    """The list seed judge's SFT pool (papers_A §5.6: a weak seed that saw easy pairs only): train
    tasks solved (`1 - judge_share` of the pool), and correct traces of random-corruption train pairs,
    `pointwise_share` of them pointwise (one response, either side) and the rest pairwise in a
    random order; no near-miss pair. `thinking=False`: the judgments are the verdict (or score)
    alone, `[[B]]`, for J1's judge without thinking."""
    rng = random.Random(f"list-seed|{seed}")
    num_judge = round(num * judge_share)
    pairs = sample_list_pairs("train", num_judge, "random_corruption", seed=seed)
    records = [
        pointwise_record(pair, rng.random() < 0.5)
        if rng.random() < pointwise_share
        else judge_record(pair, rng.random() < 0.5)
        for pair in pairs
    ]
    if not thinking:
        for record in records:
            answer = record["messages"][-1]
            answer["content"] = answer["content"][answer["content"].rindex("[[") :]
    while len(records) < num:
        task = sample_task(rng, TRAIN_TASKS)
        if _split_of(task) == "train":
            records.append(solution_record(task))
    rng.shuffle(records)
    return records
