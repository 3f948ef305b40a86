"""LLM judges of the RAG self-demos (papers_A.md §4.1 steps 4 and 8, §4.2): versioned templates and
strict parsers for the gold-aware tournament judge, the three-way correctness judge and the
relevance judge, and a batched labeller with retries.

| template | slots | the judge ends with | parser |
|---|---|---|---|
| `rag-tournament@1` | question, answer (gold), passages (first 4), predictions | `Best: Prediction k` | `selection.tournament.parse_best` |
| `rag-correctness@1` | question, answers (gold), prediction | `Label: Correct\\|Incorrect\\|Refuse` | `parse_correctness_label` |
| `rag-relevance@1` | passages (first 4), question, answers (gold) | `Label: Present\\|Absent` | `parse_relevance_label` |
| `rag-score@1` | question, answer (gold), prediction | `Score: d` (0-9) | `parse_score` |

The templates paraphrase the paper's (its `.jinja` files are not released). The label parsers read
the last non-empty line only, in the forms the released `eval.py` accepts: `Label: Correct`, any
case, optionally bold (`**Label: Correct**`, `**Label:** Correct`) or as `Prediction label: ...`,
with an optional final period. Anything else is None, counted by the caller, never mapped to a label.
`rag-score@1` is the prompt optimiser's self-scoring (`pipelines.prompt_optimization`): its last
line must be `Score: d`, one digit (same optional bold and period); the optimiser counts a None as a
score of 0, as the paper does, and reports how many there were.

    labels = llm_labeler(engine, sampling)(records, predictions)      # "correct" | ... | None
    present = relevance_labeler(engine, sampling)(records)            # True | False | None
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from selftaught.data.templates import PromptTemplate, register_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.types import Prompt

JUDGE_PASSAGES = 4
"""Passages a judge sees (the paper's `contexts[:4]`)."""

TOURNAMENT = register_template(
    PromptTemplate(
        "rag-tournament",
        1,
        system=(
            "You are judging answers to a question. You are given the gold answer and the passages that "
            "were retrieved for the question. Choose the prediction that answers the question best: one that "
            "agrees with the gold answer is best; when none does, a prediction that declines to answer is "
            "better than one that states something wrong. Prefer a direct, well-supported answer."
        ),
        user=(
            "Question: {question}\n\nGold answer: {answer}\n\nPassages:\n{passages}\n\n{predictions}\n\n"
            "Compare the predictions briefly, then end with one line in exactly this form: "
            "Best: Prediction k"
        ),
        slots=("question", "answer", "passages", "predictions"),
    )
)
"""The gold-aware tournament judge (`judge/{sys,usr}.jinja`): one bracket's candidates as
`Prediction 1..k`."""

CORRECTNESS = register_template(
    PromptTemplate(
        "rag-correctness",
        1,
        system=(
            "You check answers against gold answers. Label a prediction Correct when it gives one of the "
            "gold answers (in any wording), Refuse when it declines to answer or says it does not know, and "
            "Incorrect when it gives any other answer."
        ),
        user=(
            "Question: {question}\n\nGold answers: {answers}\n\nPrediction: {prediction}\n\n"
            "Explain briefly, then end with one line in exactly this form: "
            "Label: Correct, Label: Incorrect or Label: Refuse"
        ),
        slots=("question", "answers", "prediction"),
    )
)
"""The three-way correctness judge (`judge/eval/{sys,usr}.jinja`)."""

RELEVANCE = register_template(
    PromptTemplate(
        "rag-relevance",
        1,
        system=(
            "You check whether passages contain the answer to a question. Label them Present when one of "
            "the passages states one of the gold answers to the question, and Absent otherwise."
        ),
        user=(
            "Passages:\n{passages}\n\nQuestion: {question}\n\nGold answers: {answers}\n\n"
            "Explain briefly, then end with one line in exactly this form: Label: Present or Label: Absent"
        ),
        slots=("passages", "question", "answers"),
    )
)
"""The relevance judge (`judge/false_refusals/{sys,usr}.jinja`): does the context hold the answer?"""

SCORE = register_template(
    PromptTemplate(
        "rag-score",
        1,
        system=(
            "You grade an answer to a question against the gold answer. Give a high score to an answer that "
            "agrees with the gold answer and answers the question directly, a low one to an answer that "
            "contradicts it, misses it or does not answer."
        ),
        user=(
            "Question: {question}\n\nGold answer: {answer}\n\nPrediction: {prediction}\n\n"
            "Explain briefly, then end with one line in exactly this form: Score: d\n"
            "where d is one digit from 0 (wrong or no answer) to 9 (correct and direct)."
        ),
        slots=("question", "answer", "prediction"),
    )
)
"""The prompt optimiser's self-scoring prompt (`iterative/score/{sys,example}.jinja`)."""

CORRECTNESS_LABELS = ("correct", "incorrect", "refuse")
RELEVANCE_LABELS = ("present", "absent")

Record = Mapping[str, Any]
Labeler = Callable[[Sequence[Record], Sequence[str]], "list[str | None]"]
"""`(records, predictions) -> one label per prediction` (None: the judge never gave a parseable one)."""


def _label_pattern(labels: Sequence[str]) -> re.Pattern[str]:
    return re.compile(
        r"\**\s*(?:prediction\s+)?label\s*:\s*\**\s*(" + "|".join(labels) + r")\s*\.?\s*\**\s*\.?",
        re.IGNORECASE,
    )


CORRECTNESS_PATTERN = _label_pattern(CORRECTNESS_LABELS)
RELEVANCE_PATTERN = _label_pattern(RELEVANCE_LABELS)
SCORE_PATTERN = re.compile(r"\**\s*score\s*:\s*\**\s*([0-9])\s*\.?\s*\**\s*\.?", re.IGNORECASE)


def parse_last_line(text: str, pattern: re.Pattern[str]) -> str | None:
    """The lower-cased label of `pattern` when the last non-empty line of `text` is exactly that
    form, else None."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    match = pattern.fullmatch(lines[-1]) if lines else None
    return None if match is None else match.group(1).lower()


def parse_correctness_label(text: str) -> str | None:
    """`correct`, `incorrect` or `refuse` from the judge's last line (`Label: Correct`, any case,
    optionally bold or `Prediction label: ...`), or None.

    >>> parse_correctness_label("It names Oslo.\\n**Label: Correct**"), parse_correctness_label("Correct")
    ('correct', None)
    """
    return parse_last_line(text, CORRECTNESS_PATTERN)


def parse_relevance_label(text: str) -> str | None:
    """`present` or `absent` from the judge's last line (`Label: Present`, same forms), or None.

    >>> parse_relevance_label("Passage 2 says so.\\nLabel: present."), parse_relevance_label("Label: maybe")
    ('present', None)
    """
    return parse_last_line(text, RELEVANCE_PATTERN)


def parse_score(text: str) -> int | None:
    """The digit of a last line `Score: d` (any case, optionally bold, optional period), or None: a
    score elsewhere, two digits or a missing line do not parse.

    >>> parse_score("Close to the gold answer.\\n**Score: 7**"), parse_score("Score: 10"), parse_score("7")
    (7, None, None)
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    match = SCORE_PATTERN.fullmatch(lines[-1]) if lines else None
    return None if match is None else int(match.group(1))


def gold_text(record: Record) -> str:
    """The record's gold `answer`: a string as is, a list of strings joined by `; `."""
    answer = record.get("answer")
    if isinstance(answer, str):
        return answer
    if isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer):
        return "; ".join(answer)
    raise ValueError(
        f"record {record.get('id')!r} needs a gold `answer`: a string or a non-empty list of strings, "
        f"got {answer!r}"
    )


def passages_text(record: Record, num: int = JUDGE_PASSAGES) -> str:
    """The text of the record's first `num` `retrieved_support` passages, one `[i] text` line each."""
    support = record.get("retrieved_support")
    if not isinstance(support, list) or not all(isinstance(p, dict) and "text" in p for p in support):
        raise ValueError(
            f"record {record.get('id')!r} needs `retrieved_support`: a list of passages with a `text`"
        )
    return "\n".join(f"[{i}] {p['text']}" for i, p in enumerate(support[:num], start=1))


def tournament_values(record: Record, candidates: Sequence[str]) -> dict[str, str]:
    """The slots of `TOURNAMENT` for one bracket: the candidates in the order given, as
    `Prediction 1: ...`, `Prediction 2: ...`."""
    predictions = "\n\n".join(f"Prediction {k}: {text}" for k, text in enumerate(candidates, start=1))
    return {
        "question": record["question"],
        "answer": gold_text(record),
        "passages": passages_text(record),
        "predictions": predictions,
    }


def label_with_retries(
    engine: Engine,
    prompts: Sequence[Prompt],
    parse: Callable[[str], str | None],
    sampling: SamplingParams,
    *,
    retries: int = 5,
) -> list[str | None]:
    """One label per prompt: every prompt is asked in one engine call, then the prompts whose reply
    did not parse are asked again together (attempt `a` samples with seed `sampling.seed + a`), up to
    `retries` more times; None where no reply ever parsed."""
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    labels: list[str | None] = [None] * len(prompts)
    pending = list(range(len(prompts)))
    for attempt in range(retries + 1):
        if not pending:
            break
        asked = replace(sampling, n=1, seed=sampling.seed + attempt)
        replies = engine.generate([prompts[i] for i in pending], asked)
        for i, completions in zip(pending, replies, strict=True):
            labels[i] = parse(completions[0].text)
        pending = [i for i in pending if labels[i] is None]
    return labels


def llm_labeler(
    engine: Engine, sampling: SamplingParams, *, template: PromptTemplate = CORRECTNESS, retries: int = 5
) -> Labeler:
    """A three-way labeller over an LLM judge: `labeler(records, predictions)` renders `template`
    (question, gold answers, prediction) for every pair and labels them all with
    `label_with_retries` (one engine call per attempt, not per answer)."""

    def labeler(records: Sequence[Record], predictions: Sequence[str]) -> list[str | None]:
        if len(records) != len(predictions):
            raise ValueError(f"one prediction per record: got {len(predictions)} for {len(records)} records")
        prompts = [
            template.render(
                f"{record.get('id', i)}|correctness",
                {"question": record["question"], "answers": gold_text(record), "prediction": prediction},
            )
            for i, (record, prediction) in enumerate(zip(records, predictions, strict=True))
        ]
        return label_with_retries(engine, prompts, parse_correctness_label, sampling, retries=retries)

    return labeler


def relevance_labeler(
    engine: Engine, sampling: SamplingParams, *, template: PromptTemplate = RELEVANCE, retries: int = 5
) -> Callable[[Sequence[Record]], list[bool | None]]:
    """`present(records)`: per record, True when the judge says its first `JUDGE_PASSAGES` passages
    hold the gold answer, False when not, None when it never parsed (batched like `llm_labeler`)."""

    def present(records: Sequence[Record]) -> list[bool | None]:
        prompts = [
            template.render(
                f"{record.get('id', i)}|relevance",
                {
                    "passages": passages_text(record),
                    "question": record["question"],
                    "answers": gold_text(record),
                },
            )
            for i, record in enumerate(records)
        ]
        labels = label_with_retries(engine, prompts, parse_relevance_label, sampling, retries=retries)
        return [None if label is None else label == "present" for label in labels]

    return present
