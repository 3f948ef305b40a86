"""NaturalReasoning's data stages (Yuan et al. 2025, papers_A.md §1.1): document annotation on four
axes, question backtranslation with a reference answer or an explicit none, teacher responses.

Each stage is `pipelines.stages.generate` (a versioned template over any engine, resumable shards)
followed by `pipelines.stages.parse` (a strict parser; a reply that does not parse is None,
counted, and never kept or dropped silently):

    score_documents   `nr-annotate@1`: `Completeness: n`, `Complexity: n`, `Correctness: n`,
                      `Reasoning: n` (integers 1-5, each axis exactly once); `keep` = reasoning >=
                      the threshold (None when the reply did not parse)
    backtranslate     `nr-question@1`: `Question: ...` then `Answer: ...` (a reference answer, or
                      `none` when the document does not determine one); a question that refers to
                      "the document" / "the text" is not self-contained and is rejected (counted);
                      answers are bucketed none / single word / short (2-9 words) / long (>= 10)
    respond           `nr-respond@1`: the question as the user turn; one response per question

Every question record carries `provenance`: the document id, the template version, the generator
model and the sampling seed of each stage that made it. `WorldModel` is the tiny world's scripted
annotator, writer and teacher behind the same templates (`world.reasoning_docs`).
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selftaught.data.executors import Executor
from selftaught.data.templates import PromptTemplate, register_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.pipelines.stages import Record, filter_records, generate, parse
from selftaught.types import Completion, Prompt
from selftaught.world.reasoning_docs import AXES, corrupt_solution, question_reply, score_reply, teacher_reply
from selftaught.world.reasoning_tasks import extract_answer, solve

EXAMPLE_DOCUMENT = (
    "Tom has 3 apples and buys 2 more. How many apples does he have? 3 + 2 = 5. He has 5 apples."
)
"""The worked example of the raw-text (base model) forms, one shot each."""
RAW_STOP = ["\nDocument:", "\nNew question:"]
"""Where a base model's reply to a raw-text form ends (it would go on with another document)."""
ANNOTATE = register_template(
    PromptTemplate(
        "nr-annotate",
        1,
        user=(
            "Rate the document below on four axes, each an integer from 1 (poor) to 5 (excellent):\n"
            "Completeness: does it state a problem fully, with its answer?\n"
            "Complexity: how much technical depth does it have?\n"
            "Correctness: is its content technically correct?\n"
            "Reasoning: how much step by step thinking and reasoning does it show?\n"
            "Reply with exactly four lines, `Completeness: n`, `Complexity: n`, `Correctness: n`, "
            "`Reasoning: n`.\n\nDocument:\n{document}"
        ),
        text=(
            "Rate each document from 1 to 5 on completeness, complexity, correctness and reasoning.\n\n"
            f"Document:\n{EXAMPLE_DOCUMENT}\nRatings:\n"
            "Completeness: 5\nComplexity: 2\nCorrectness: 5\nReasoning: 4\n\n"
            "Document:\n{document}\nRatings:\n"
        ),
        slots=("document",),
    )
)
QUESTION = register_template(
    PromptTemplate(
        "nr-question",
        1,
        user=(
            "Write one new, self-contained, challenging reasoning question inspired by the document "
            "below. Do not copy a question from it and do not refer to the document. Then give the "
            "reference answer if the document lets you derive it, else write none.\n"
            "Reply in two parts, `Question: ...` then `Answer: ...`.\n\nDocument:\n{document}"
        ),
        text=(
            "Write one new self-contained question inspired by each document, then its answer (or none).\n\n"
            f"Document:\n{EXAMPLE_DOCUMENT}\nNew question:\n"
            "Question: Sara has 7 pens and gives 3 of them away. How many pens does she have left?\n"
            "Answer: 4\n\n"
            "Document:\n{document}\nNew question:\n"
        ),
        slots=("document",),
    )
)
QUESTION_V2 = register_template(
    PromptTemplate(
        "nr-question",
        2,
        user=QUESTION.user,
        text=(
            "Write one new self-contained question inspired by each document, then its answer (or none).\n\n"
            f"Document:\n{EXAMPLE_DOCUMENT}\nNew question:\n"
            "Question: Tom has 8 apples and buys 5 more. How many apples does he have now?\n"
            "Answer: 13\n\n"
            "Document:\n{document}\nNew question:\n"
        ),
        slots=("document",),
    )
)
"""Version 2 changes only the raw-text form: its example question retells the example document's
story with new numbers (with version 1's unrelated example, Gemma 3 270M copied the example)."""
RESPOND = register_template(PromptTemplate("nr-respond", 1, user="{question}", slots=("question",)))
VERIFY = register_template(
    PromptTemplate(
        "nr-verify",
        1,
        user="Is this solution correct? yes or no.\nQuestion: {question}\nSolution: {response}",
        slots=("question", "response"),
    )
)
AXIS_LINE = re.compile(r"^\s*(\w+)\s*:\s*(\d+)\s*$")
NOT_SELF_CONTAINED = re.compile(r"\b(the|this|above) (document|text|passage|article)\b", re.IGNORECASE)
BUCKETS = ("none", "single", "short", "long")


def parse_ratings(text: str) -> dict[str, int] | None:
    """`{axis: 1..5}` when `text` has each of the four `Axis: n` lines exactly once (any order, other
    lines ignored); None when an axis is missing, repeated or out of range."""
    found: dict[str, list[int]] = {axis: [] for axis in AXES}
    for line in text.splitlines():
        match = AXIS_LINE.match(line)
        if match and match.group(1).lower() in found:
            found[match.group(1).lower()].append(int(match.group(2)))
    if any(len(values) != 1 or not 1 <= values[0] <= 5 for values in found.values()):
        return None
    return {axis: values[0] for axis, values in found.items()}


def parse_question(text: str) -> dict[str, Any] | None:
    """`{"question", "reference_answer"}` from `Question: ...` followed by `Answer: ...` (each may
    span lines; the answer `none`, any case, becomes None); `{"not_self_contained": True, ...}`
    when the question refers to the document; None without both parts or with an empty one."""
    match = re.search(r"Question:\s*(.+?)\s*\n\s*Answer:\s*(.*)", text, re.DOTALL)
    if match is None:
        return None
    question, answer = match.group(1).strip(), match.group(2).strip()
    if not question or not answer:
        return None
    reference = None if answer.rstrip(".").lower() in ("none", "no answer") else answer
    return {
        "question": question,
        "reference_answer": reference,
        "not_self_contained": bool(NOT_SELF_CONTAINED.search(question)),
    }


def answer_bucket(answer: str | None) -> str:
    """The paper's answer-length bucket: none, single (1 word), short (2-9 words), long (>= 10)."""
    words = 0 if answer is None else len(answer.split())
    return "none" if words == 0 else "single" if words == 1 else "short" if words < 10 else "long"


def score_documents(
    out_dir: str | os.PathLike[str],
    documents: Sequence[Record],
    engine: Engine,
    sampling: SamplingParams,
    *,
    generator: str,
    seed: int,
    threshold: int,
    raw: bool = False,
    shard_size: int = 256,
    executor: str | Executor | None = None,
) -> tuple[list[Record], dict[str, float]]:
    """Every document with `ratings` (None when unparsed) and `keep` (reasoning >= `threshold`; None
    when unparsed); counts `num_documents`, `num_unparsed`, `num_kept`."""
    out = Path(out_dir)
    rated = generate(
        out / "replies",
        documents,
        engine,
        ANNOTATE,
        sampling,
        generator=generator,
        seed=seed,
        raw=raw,
        desc="annotate",
        shard_size=shard_size,
        executor=executor,
    )
    rated, _ = parse(
        out / "ratings",
        rated,
        parse_ratings,
        parser_name="parse_ratings@1",
        desc="ratings",
        executor=executor,
    )
    records = []
    for record in rated:
        ratings = record.pop("parsed")[0]
        keep = None if ratings is None else ratings["reasoning"] >= threshold
        records.append({**record, "ratings": ratings, "keep": keep})
    counts: dict[str, float] = {
        "num_documents": len(records),
        "num_unparsed": sum(r["ratings"] is None for r in records),
        "num_kept": sum(r["keep"] is True for r in records),
    }
    return records, counts


def backtranslate(
    out_dir: str | os.PathLike[str],
    documents: Sequence[Record],
    engine: Engine,
    sampling: SamplingParams,
    *,
    generator: str,
    seed: int,
    raw: bool = False,
    shard_size: int = 256,
    template: PromptTemplate = QUESTION,
    executor: str | Executor | None = None,
) -> tuple[list[Record], dict[str, Any]]:
    """One question record per document whose reply parsed into a self-contained question:
    `{id: q-<doc id>, question, reference_answer, answer_bucket, doc_id, provenance}`; counts of
    documents, unparsed replies, rejected (not self-contained) questions and answer buckets."""
    out = Path(out_dir)
    replies = generate(
        out / "replies",
        documents,
        engine,
        template,
        sampling,
        generator=generator,
        seed=seed,
        raw=raw,
        desc="backtranslate",
        shard_size=shard_size,
        executor=executor,
    )
    parsed, _ = parse(
        out / "parsed",
        replies,
        parse_question,
        parser_name="parse_question@1",
        desc="questions",
        executor=executor,
    )
    questions = [_question_record(r) for r in parsed if r["parsed"][0] is not None]
    kept, filtered = filter_records(questions, lambda q: not q.pop("not_self_contained"))
    counts: dict[str, Any] = {
        "num_documents": len(parsed),
        "num_unparsed": sum(r["parsed"][0] is None for r in parsed),
        "num_not_self_contained": filtered["num_dropped"],
        "num_questions": len(kept),
        "answer_buckets": {b: Counter(q["answer_bucket"] for q in kept)[b] for b in BUCKETS},
    }
    return kept, counts


def _question_record(record: Record) -> Record:
    parsed = record["parsed"][0]
    made = record["provenance"]["completions"]
    return {
        "id": f"q-{record['id']}",
        "question": parsed["question"],
        "reference_answer": parsed["reference_answer"],
        "answer_bucket": answer_bucket(parsed["reference_answer"]),
        "not_self_contained": parsed["not_self_contained"],
        "doc_id": record["id"],
        "provenance": {"document": record["id"], "question": made},
    }


def respond(
    out_dir: str | os.PathLike[str],
    questions: Sequence[Record],
    teacher: Engine,
    sampling: SamplingParams,
    *,
    generator: str,
    seed: int,
    shard_size: int = 256,
    executor: str | Executor | None = None,
) -> list[Record]:
    """Each question with `response` (the teacher's text) and `provenance["response"]`."""
    answered = generate(
        out_dir,
        questions,
        teacher,
        RESPOND,
        sampling,
        generator=generator,
        seed=seed,
        output_field="responses",
        desc="respond",
        shard_size=shard_size,
        executor=executor,
    )
    return [{**r, "response": r["responses"][0]["text"]} for r in answered]


def sft_record(question: Record) -> Record:
    """The distillation example: the question as the user turn, the teacher's response as the reply."""
    return {
        "id": question["id"],
        "messages": [
            {"role": "user", "content": question["question"]},
            {"role": "assistant", "content": question["response"]},
        ],
        "provenance": question["provenance"],
    }


class WorldModel:
    """The tiny world's scripted annotator, question writer and teacher (an `Engine`): it answers
    `nr-annotate`, `nr-question` and `nr-respond` prompts from their text alone
    (`world.reasoning_docs`); the writer's draws are seeded by (sampling seed, prompt id, sample)."""

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        return [[self._complete(p, sampling.seed, j) for j in range(sampling.n)] for p in prompts]

    def _complete(self, prompt: Prompt, seed: int, sample: int) -> Completion:
        template, text = prompt.meta.get("template"), prompt.messages[-1]["content"]
        if template == ANNOTATE.versioned_name:
            reply = score_reply(text)
        elif template in (QUESTION.versioned_name, QUESTION_V2.versioned_name):
            reply = question_reply(text, random.Random(f"{seed}|{prompt.id}|{sample}"))
        elif template == RESPOND.versioned_name:
            reply = teacher_reply(text)
        else:
            raise ValueError(
                f"WorldModel answers nr-annotate, nr-question and nr-respond prompts, not {template!r}"
            )
        return Completion(prompt_id=prompt.id, text=reply, finish_reason="stop")


def verification_records(questions: list[Record], num: int, seed: int) -> list[Record]:
    """`num` `nr-verify@1` conversations on the last questions: the oracle's solution -> yes, a
    corrupted one -> no, in turn (tiny world only: the solver must read the question)."""
    rng, records = random.Random(f"verify|{seed}"), []
    for index, question in enumerate(q["question"] for q in questions[::-1][:num]):
        solution = solve(question)
        if solution is None:
            raise ValueError(
                f"verify_examples needs tiny-world questions; {question!r} is not one (set verify_examples=0)"
            )
        response = (
            " ".join([*solution[0], f"Answer: {solution[1]}"])
            if index % 2 == 0
            else corrupt_solution(question, rng)
        )
        user = VERIFY.render_messages({"question": question, "response": response})
        records.append(
            {"messages": [*user, {"role": "assistant", "content": "yes" if index % 2 == 0 else "no"}]}
        )
    return records


def world_correct(question: str, text: str) -> bool:
    """Whether `text` ends in the oracle's answer to the tiny-world `question`."""
    solution = solve(question)
    return solution is not None and extract_answer(text) == solution[1]
