"""A small real RAG collection built from one GSM8K train file, for the rag-self-demos Gemma preset.

    gsm8k-rag:passages:<train.jsonl>   the worked solutions of the first `NUM_PASSAGES` problems
    gsm8k-rag:train:<train.jsonl>      questions for the self-demos
    gsm8k-rag:test:<train.jsonl>       questions to evaluate on

A passage is one problem's reference solution (`<<...>>` calculator notes removed, ending "The answer
is N."), id `gsm8k-solution-<i>`. Each question split alternates a problem whose solution is in the
collection (its `gold_passage` names it) with one whose is not (`gold_passage` None, taken after the
collection's problems), `NUM_QUESTIONS` of each, so any prefix (`limit`) holds both kinds; the train
and test splits use different problems. A question's `answer` is the final number (the `#### N`
line). Whether retrieval found a question's own solution is `gold_passage in its passages' ids`,
the flow's `relevance_judge=gold-passage`: the paper's relevance label (answer present in the
passages) computed from the construction instead of by an LLM.

    load_records("gsm8k-rag:passages:../shared/data/gsm8k/train.jsonl")
"""

from __future__ import annotations

import re
from typing import Any

from selftaught.data import gsm8k
from selftaught.data.sources import read_records

PREFIX = "gsm8k-rag:"
SPLITS = ("passages", "train", "test")
NUM_PASSAGES = 256
"""Problems whose solutions form the collection (the first of the file)."""
NUM_QUESTIONS = 32
"""Questions per split with their solution in the collection, and as many without."""
CALCULATOR_NOTE = re.compile(r"<<[^>]*>>")


def gsm8k_rag_records(source: str) -> list[dict[str, Any]]:
    """The records `gsm8k-rag:<split>:<path>` names (module docstring); a ValueError names the forms."""
    split, colon, path = source.removeprefix(PREFIX).partition(":")
    if split not in SPLITS or not colon or not path:
        raise ValueError(
            f"{source!r}: expected gsm8k-rag:<split>:<GSM8K train.jsonl> with split one of {list(SPLITS)}"
        )
    problems = read_records(path, limit=NUM_PASSAGES + 2 * NUM_QUESTIONS)
    if len(problems) < NUM_PASSAGES + 2 * NUM_QUESTIONS:
        raise ValueError(
            f"{path}: gsm8k-rag needs {NUM_PASSAGES + 2 * NUM_QUESTIONS} GSM8K problems, got {len(problems)}"
        )
    for i, problem in enumerate(problems):
        gsm8k.check_record(problem, f"{path}: record {i}")
    if split == "passages":
        return [
            {"id": passage_id(i), "text": solution_text(p)} for i, p in enumerate(problems[:NUM_PASSAGES])
        ]
    offset = 0 if split == "train" else NUM_QUESTIONS
    inside = range(offset, offset + NUM_QUESTIONS)
    outside = range(NUM_PASSAGES + offset, NUM_PASSAGES + offset + NUM_QUESTIONS)
    order = [i for pair in zip(inside, outside, strict=True) for i in pair]
    return [question_record(i, problems[i], passage_id(i) if i < NUM_PASSAGES else None) for i in order]


def passage_id(index: int) -> str:
    return f"gsm8k-solution-{index}"


def solution_text(problem: dict[str, Any]) -> str:
    """The reference solution without its calculator notes, ending "The answer is N."."""
    return " ".join(CALCULATOR_NOTE.sub("", gsm8k.solution(problem["answer"])).split())


def question_record(index: int, problem: dict[str, Any], gold_passage: str | None) -> dict[str, Any]:
    return {
        "id": f"gsm8k-{index}",
        "question": problem["question"],
        "answer": gsm8k.reference_answer(problem["answer"]),
        "gold_passage": gold_passage,
    }
