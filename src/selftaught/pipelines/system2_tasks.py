"""What the system2-distill flow distils: inputs, prompts, answer extraction and gold checks per task.

A task gives the flow unlabelled training inputs and labelled test inputs as records (`id`,
`question`, `answer`; the flow never reads a training record's `answer`), the template of each role
(System 1's `direct`, and the System 2 method's roles), how to read a final answer, and, for
pairwise tasks, the swapped input and the inverse map of its answer.

- `world-letters`, `world-swaps`, `world-judge`: the System 2 world (`world.system2`); System 1 is
  `<s1> x`, System 2 `<s2> x` (a one-call scratchpad: `cot` with `world-s2@1`). A tiny model cannot
  rephrase or rewrite (papers_A §3.5), so RaR and S2A are not offered here; the judge's "System 2"
  writes its per-letter checks in the scratchpad instead of BSM's three calls.
- `gsm8k`: base-model prompts (`raw`): System 1 is `Question: q\\nAnswer:` (distilled target
  ` The answer is N.`), System 2 few-shot CoT (`gsm8k-cot-8shot@1`, the 8 exemplars of Wei et al.).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selftaught.data.gsm8k import EXEMPLARS, STOP, check_record, reference_answer
from selftaught.data.templates import PromptTemplate, escape_braces, register_template
from selftaught.evals.gsm8k import extract_number, numbers_equal
from selftaught.selection.curation import swap_verdict
from selftaught.world import system2 as world

Record = dict[str, Any]

WORLD_S1 = register_template(PromptTemplate("world-s1", 1, user="<s1> {question}", slots=("question",)))
WORLD_S2 = register_template(PromptTemplate("world-s2", 1, user="<s2> {question}", slots=("question",)))


def _few_shot_cot(num_shots: int) -> PromptTemplate:
    shots = "".join(
        f"Question: {escape_braces(q)}\nAnswer: {escape_braces(a)}\n\n" for q, a in EXEMPLARS[:num_shots]
    )
    text = shots + "Question: {question}\nAnswer:"
    return register_template(
        PromptTemplate(f"gsm8k-cot-{num_shots}shot", 1, user="{question}", slots=("question",), text=text)
    )


GSM8K_COT = _few_shot_cot(8)
GSM8K_COT_4 = _few_shot_cot(4)
"""Few-shot CoT for base models (the exemplars of Wei et al.); 4 shots halve the prompt for CPU runs."""


@dataclass(frozen=True)
class Task:
    name: str
    templates: dict[str, str]
    """Role -> versioned template (`direct` for System 1, the System 2 method's roles)."""
    extract: Callable[[str], str | None]
    same: Callable[[str, str], bool]
    """Whether a final answer equals the gold one."""
    target: Callable[[str], str]
    """The distillation target text for a final answer."""
    raw: bool = False
    stop: list[str] = field(default_factory=list)
    swap: Callable[[Record], Record] | None = None
    """Pairwise tasks: the input with its two candidates swapped (the perturbation)."""
    inverse: Callable[[str], str] | None = None


def _world_task(task: str) -> Task:
    pairwise = task == "judge"
    return Task(
        name=f"world-{task}",
        templates={"direct": WORLD_S1.versioned_name, "cot-zero-shot": WORLD_S2.versioned_name},
        extract=lambda text: world.extract_final(task, text),
        same=str.__eq__,
        target=(lambda final: f"[[{final}]]") if pairwise else (lambda final: final),
        swap=_swap_world_judge if pairwise else None,
        inverse=swap_verdict if pairwise else None,
    )


def _swap_world_judge(record: Record) -> Record:
    question = world.swapped(_world_question(record))
    return {"id": f"{record['id']}-swapped", "question": question.text, "answer": question.answer}


def _world_question(record: Record) -> world.Question:
    words_part, cands = record["question"].split(": ", 1)[1].rsplit(" A: ", 1)
    a, b = cands.split(" B: ")
    return world.Question(
        "judge", record["question"], record["answer"], tuple(words_part.split()), candidates=(a, b)
    )


GSM8K = Task(
    name="gsm8k",
    templates={"direct": "s2d-direct@1", "cot-zero-shot": GSM8K_COT.versioned_name},
    extract=extract_number,
    same=numbers_equal,
    target=lambda final: f" The answer is {final}.",
    raw=True,
    stop=list(STOP),
)

TASKS: dict[str, Task] = {t.name: t for t in [*(_world_task(k) for k in world.TASKS), GSM8K]}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name]


def load_inputs(task: str, split: str, num: int, *, seed: int = 0, path: str | None = None) -> list[Record]:
    """`num` records `{id, question, answer}`: world questions of `split` drawn with `seed`, or the
    first `num` records of the GSM8K-format file `path`."""
    if task == "gsm8k":
        if path is None:
            raise ValueError(
                f"task gsm8k needs a GSM8K-format JSONL for its {split} inputs (train_data / test_data)"
            )
        return _gsm8k_records(Path(path), num)
    items = world.questions(task.removeprefix("world-"), split, num, seed)
    return [{"id": q.id, "question": q.text, "answer": q.answer} for q in items]


def _gsm8k_records(path: Path, num: int) -> list[Record]:
    if not path.is_file():
        raise ValueError(f"GSM8K data {str(path)!r} is not a file; pass a JSONL of question/answer records")
    records: list[Record] = []
    with path.open() as lines:
        for i, line in enumerate(lines):
            if len(records) == num:
                break
            record = json.loads(line)
            check_record(record, f"{path}: record {i}")
            records.append(
                {
                    "id": f"gsm8k-{i}",
                    "question": record["question"],
                    "answer": reference_answer(record["answer"]),
                }
            )
    return records
