"""NaturalThoughts data stages (papers_A.md §2.1 steps 2-4): teacher traces, their annotation and the
difficulty proxy, each a resumable `generate` + `parse` stage over versioned templates.

    traces, counts = teacher_traces(run / "traces", questions, teacher, sampling, count_tokens, ...)
    pool, counts = annotate(run / "annotate", traces, annotator, sampling, taxonomy=DOMAINS, ...)
    pool, counts = difficulty(run / "difficulty", pool, weak, sampling, answers=ANSWER_FORMATS["world"], ...)

A trace record: `{id, question, answer (the reference, when known), think, response (the final
answer after </think>), num_tokens_think, num_tokens_answer, trace_status}`. `<think>...</think>` is
parsed strictly (`trace_status`): a reply without the closing tag, with a second think block or with
nothing after it is not guessed at; it is kept out of the pool and counted by status.

Annotations (strict one-line replies, None when a reply does not parse, counted): `domain` (one of a
taxonomy the caller passes), `strategies` (a sorted list: the set of meta-reasoning strategies),
`verbosity` (0-10), `num_steps`. The difficulty proxy: a weaker model's answer (`weak_response`) and
`agree` (True / False / None): an exact check of the two final answers, or a judge over
`nt-agree@1`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selftaught.data.gsm8k import EXEMPLARS
from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.data.templates import PromptTemplate, escape_braces, get_template, register_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.evals.gsm8k import extract_number, numbers_equal
from selftaught.pipelines.stages import Record, generate, parse
from selftaught.world.arith import extract_answer

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
REPLY = "Reply with one line: "

TEACHER = register_template(PromptTemplate("nt-teacher", 1, user="{question}", slots=("question",)))
"""The teacher sees the question alone (an R1-style model opens `<think>` itself)."""
TEACHER_PREFILLED = register_template(
    PromptTemplate(
        "nt-teacher-prefilled",
        1,
        user="{question}",
        text="Question: {question}\nThink step by step inside <think> </think>, then give the answer.\n<think>",
        slots=("question",),
    )
)
"""Base models: a raw prompt that ends with `<think>` (parse with `prefilled=True`)."""


def _fewshot_text(num_shots: int = 4) -> str:
    shots = []
    for question, answer in EXEMPLARS[:num_shots]:
        reasoning, _, final = answer.rpartition(" The answer is ")
        shots.append(f"Question: {question}\nAnswer: <think>{reasoning}</think>The answer is {final}")
    return escape_braces("\n\n".join(shots)) + "\n\nQuestion: {question}\nAnswer: <think>"


TEACHER_FEWSHOT = register_template(
    PromptTemplate("nt-teacher-fewshot", 1, user="{question}", text=_fewshot_text(), slots=("question",))
)
"""Base models: four Wei et al. exemplars rewritten as `<think>reasoning</think>The answer is N.`, then
the question and `Answer: <think>` (parse with `prefilled=True`; stop at the next `Question:`)."""
PREFILLED_TEMPLATES = ("nt-teacher-prefilled@1", "nt-teacher-fewshot@1")
"""Teacher templates whose raw text ends with `<think>`: prompted raw, parsed with `prefilled=True`."""
DOMAIN = register_template(
    PromptTemplate(
        "nt-domain",
        1,
        user="Classify the domain of this question. Domains: {domains}.\nQuestion: {question}\n"
        f"{REPLY}Domain: <one of the domains>",
        slots=("domains", "question"),
    )
)
STRATEGIES = register_template(
    PromptTemplate(
        "nt-strategies",
        1,
        user="Which meta-reasoning strategies (such as self-verification, backtracking, exploration) does "
        "this reasoning use?\nQuestion: {question}\nReasoning: {think}\n"
        f"{REPLY}Strategies: <comma-separated names, or none>",
        slots=("question", "think"),
    )
)
VERBOSITY = register_template(
    PromptTemplate(
        "nt-verbosity",
        1,
        user="Rate the verbosity of this reasoning from 0 (efficient, no rambling) to 10 (excessive "
        f"rambling without progress).\nQuestion: {{question}}\nReasoning: {{think}}\n{REPLY}Verbosity: <0-10>",
        slots=("question", "think"),
    )
)
STEPS = register_template(
    PromptTemplate(
        "nt-steps",
        1,
        user="Count the reasoning steps that make progress towards the answer.\nQuestion: {question}\n"
        f"Reasoning: {{think}}\n{REPLY}Steps: <a number>",
        slots=("question", "think"),
    )
)
WEAK = register_template(PromptTemplate("nt-weak", 1, user="{question}", slots=("question",)))
"""The weaker model answers the question directly (no long chain of thought)."""
AGREE = register_template(
    PromptTemplate(
        "nt-agree",
        1,
        user="Question: {question}\nAnswer A: {response}\nAnswer B: {weak_response}\n"
        f"Do the two final answers agree? {REPLY}Agree: <yes or no>",
        slots=("question", "response", "weak_response"),
    )
)


@dataclass(frozen=True)
class AnswerFormat:
    """How final answers are read and compared (the exact agreement checker, the evaluator)."""

    name: str
    extract: Callable[[str], Any]
    """Text -> the final answer, or None when there is none."""
    equal: Callable[[Any, Any], bool]


ANSWER_FORMATS = {
    "world": AnswerFormat("world", extract_answer, lambda a, b: int(a) == int(b)),
    "number": AnswerFormat("number", extract_number, lambda a, b: numbers_equal(str(a), str(b))),
}
"""`world`: `Answer: N` (the tiny world); `number`: GSM8K style (after `The answer is`, else the last number)."""


# --- traces -----------------------------------------------------------------------------------------


def trace_status(text: str, prefilled: bool = False) -> str:
    """`ok`, `no_think` (no opening tag), `unclosed` (no closing tag), `nested` (more than one think
    block) or `empty_answer` (nothing after `</think>`). `prefilled`: the prompt ended with `<think>`."""
    full = (THINK_OPEN + text) if prefilled else text.lstrip()
    if not full.startswith(THINK_OPEN):
        return "no_think"
    if THINK_CLOSE not in full:
        return "unclosed"
    if full.count(THINK_OPEN) > 1 or full.count(THINK_CLOSE) > 1:
        return "nested"
    if not full.split(THINK_CLOSE, 1)[1].strip():
        return "empty_answer"
    return "ok"


def parse_trace(text: str, prefilled: bool = False) -> dict[str, str] | None:
    """`{"think", "response"}` of a reply `<think>T</think>A` (both stripped), None unless `ok`."""
    if trace_status(text, prefilled) != "ok":
        return None
    full = (THINK_OPEN + text) if prefilled else text.lstrip()
    think, response = full[len(THINK_OPEN) :].split(THINK_CLOSE, 1)
    return {"think": think.strip(), "response": response.strip()}


def teacher_traces(
    out_dir: str | os.PathLike[str],
    questions: Sequence[Record],
    engine: Engine,
    sampling: SamplingParams,
    count_tokens: Callable[[str], int],
    *,
    generator: str,
    seed: int,
    template: PromptTemplate = TEACHER,
    raw: bool = False,
    prefilled: bool = False,
    counter: str = "len",
) -> tuple[list[Record], dict[str, float]]:
    """One teacher reply per question, parsed into trace records; the `ok` ones and counts by status.

    `count_tokens` measures the think and answer parts (use the student's tokenizer); `counter` names
    it in the stage's fingerprint (functions cannot be hashed). Stages: `generated/`, `traces/`.
    """
    out = Path(out_dir)
    replies = generate(
        out / "generated", questions, engine, template, sampling, generator=generator, seed=seed, raw=raw
    )

    def run_shard(chunk: list[Record]) -> list[Record]:
        return [_trace_record(r, prefilled, count_tokens) for r in chunk]

    config = {"stage": "traces", "prefilled": prefilled, "counter": counter, "records": replies}
    fingerprint = compute_fingerprint(config)
    records = run_stage(
        out / "traces", replies, run_shard, shard_size=1024, fingerprint=fingerprint, desc="traces"
    )
    statuses = Counter(r["trace_status"] for r in records)
    counts = {"num_questions": len(records), **{f"status_{k}": float(v) for k, v in sorted(statuses.items())}}
    return [r for r in records if r["trace_status"] == "ok"], counts


def _trace_record(record: Record, prefilled: bool, count_tokens: Callable[[str], int]) -> Record:
    text = record["completions"][0]["text"]
    trace = parse_trace(text, prefilled)
    parsed: dict[str, str | None] = {"think": None, "response": None} if trace is None else {**trace}
    kept = {k: v for k, v in record.items() if k != "completions"}
    return {
        **kept,
        **parsed,
        "trace_status": trace_status(text, prefilled),
        "num_tokens_think": None if parsed["think"] is None else count_tokens(parsed["think"]),
        "num_tokens_answer": None if parsed["response"] is None else count_tokens(parsed["response"]),
    }


# --- annotation -------------------------------------------------------------------------------------


def one_line(key: str, text: str) -> str | None:
    """The value of a reply that is exactly one line `Key: value` (surrounding whitespace allowed)."""
    match = re.fullmatch(rf"\s*{re.escape(key)}:[ \t]*([^\n]*?)\s*", text)
    return match.group(1) if match and match.group(1) else None


def domain_parser(taxonomy: Sequence[str]) -> Callable[[str], str | None]:
    """`Domain: <name>` with a name of `taxonomy` (any case) -> the taxonomy's spelling, else None."""
    by_lower = {name.lower(): name for name in taxonomy}
    return lambda text: by_lower.get((one_line("Domain", text) or "").lower())


def parse_strategies(text: str) -> list[str] | None:
    """`Strategies: a, b` -> sorted distinct names (lower case); `Strategies: none` -> []; else None."""
    value = one_line("Strategies", text)
    if value is None:
        return None
    if value.lower() == "none":
        return []
    names = [name.strip().lower() for name in value.split(",")]
    if not all(re.fullmatch(r"[a-z][a-z -]*", name) for name in names):
        return None
    return sorted(set(names))


def parse_verbosity(text: str) -> int | None:
    value = one_line("Verbosity", text)
    return int(value) if value is not None and re.fullmatch(r"\d{1,2}", value) and int(value) <= 10 else None


def parse_steps(text: str) -> int | None:
    value = one_line("Steps", text)
    return int(value) if value is not None and re.fullmatch(r"\d{1,4}", value) else None


def parse_agreement(text: str) -> bool | None:
    value = (one_line("Agree", text) or "").lower()
    return {"yes": True, "no": False}.get(value)


def annotate(
    out_dir: str | os.PathLike[str],
    traces: Sequence[Record],
    engine: Engine,
    sampling: SamplingParams,
    *,
    taxonomy: Sequence[str],
    generator: str,
    seed: int,
) -> tuple[list[Record], dict[str, float]]:
    """Every trace with `domain`, `strategies`, `verbosity` and `num_steps` (None where the reply did not
    parse); counts `<field>_unparsed`. One generate + parse stage per field under `out_dir/<field>`."""
    domains = ", ".join(taxonomy)
    jobs = [
        ("domain", DOMAIN, domain_parser(taxonomy), f"nt-domain@1|{domains}"),
        ("strategies", STRATEGIES, parse_strategies, "nt-strategies@1"),
        ("verbosity", VERBOSITY, parse_verbosity, "nt-verbosity@1"),
        ("num_steps", STEPS, parse_steps, "nt-steps@1"),
    ]
    inputs = [
        {"id": r["id"], "question": r["question"], "think": r["think"], "domains": domains} for r in traces
    ]
    values: dict[str, list[Any]] = {}
    counts: dict[str, float] = {}
    for field, template, parser, parser_name in jobs:
        stage = Path(out_dir) / field
        asked = generate(
            stage / "generated", inputs, engine, template, sampling, generator=generator, seed=seed
        )
        parsed, _ = parse(stage / "parsed", asked, parser, parser_name=parser_name)
        values[field] = [r["parsed"][0] for r in parsed]
        counts[f"{field}_unparsed"] = float(sum(v is None for v in values[field]))
    annotated = [{**r, **{f: values[f][i] for f in values}} for i, r in enumerate(traces)]
    return annotated, counts


def difficulty(
    out_dir: str | os.PathLike[str],
    traces: Sequence[Record],
    weak: Engine,
    sampling: SamplingParams,
    *,
    answers: AnswerFormat,
    weak_generator: str,
    seed: int,
    judge: Engine | None = None,
    judge_sampling: SamplingParams | None = None,
    judge_generator: str = "",
) -> tuple[list[Record], dict[str, float]]:
    """Every trace with `weak_response` and `agree`; counts of agree / disagree / unknown.

    Without `judge`, `agree` is the exact check: the teacher's and the weak model's final answers read
    with `answers` and compared (None when the teacher's has no answer; a weak reply with none
    disagrees). With `judge`, the judge's `Agree: yes|no` over `nt-agree@1` (None when unparsed)."""
    out = Path(out_dir)
    inputs = [{"id": r["id"], "question": r["question"]} for r in traces]
    asked = generate(out / "weak", inputs, weak, WEAK, sampling, generator=weak_generator, seed=seed)
    weak_texts = [r["completions"][0]["text"] for r in asked]
    records = [{**r, "weak_response": w} for r, w in zip(traces, weak_texts, strict=True)]
    if judge is None:
        labels = [exact_agreement(r["response"], r["weak_response"], answers) for r in records]
    else:
        pairs = [
            {"id": r["id"], **{k: r[k] for k in ("question", "response", "weak_response")}} for r in records
        ]
        judged = generate(
            out / "judge",
            pairs,
            judge,
            get_template("nt-agree@1"),
            judge_sampling or sampling,
            generator=judge_generator,
            seed=seed,
        )
        parsed, _ = parse(out / "judge-parsed", judged, parse_agreement, parser_name="nt-agree@1")
        labels = [r["parsed"][0] for r in parsed]
    labelled = [{**r, "agree": a} for r, a in zip(records, labels, strict=True)]
    counts = {
        "agree": float(sum(a is True for a in labels)),
        "disagree": float(sum(a is False for a in labels)),
        "agree_unknown": float(sum(a is None for a in labels)),
    }
    return labelled, counts


def exact_agreement(response: str, weak_response: str, answers: AnswerFormat) -> bool | None:
    """Whether the two final answers are equal; None when the teacher's has none (a weak reply without
    an answer disagrees)."""
    strong, weak = answers.extract(response), answers.extract(weak_response)
    if strong is None:
        return None
    return weak is not None and answers.equal(strong, weak)
