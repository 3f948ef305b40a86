"""NaturalThoughts stages: strict trace and annotation parsers (table-driven), the oracle annotator read
through the real templates, the difficulty proxy, and targets / inference modes."""

from __future__ import annotations

import random

import pytest

from selftaught.engines.base import SamplingParams
from selftaught.engines.program import ProgramEngine, prompt_text
from selftaught.engines.scripted import ScriptedEngine
from selftaught.pipelines.natural_thoughts import (
    ANSWER_FORMATS,
    annotate,
    difficulty,
    domain_parser,
    parse_agreement,
    parse_steps,
    parse_strategies,
    parse_trace,
    parse_verbosity,
    teacher_traces,
    trace_status,
)
from selftaught.pipelines.thought_targets import (
    Controls,
    InferenceMode,
    TargetMode,
    build_targets,
    final_answer_text,
    mode_prompt,
)
from selftaught.world import traces as world

TRACES = [
    ("<think>a b</think>Answer: 3", False, "ok", {"think": "a b", "response": "Answer: 3"}),
    ("  <think>\nx\n</think>\nAnswer: 3\n", False, "ok", {"think": "x", "response": "Answer: 3"}),
    ("<think>a b Answer: 3", False, "unclosed", None),
    ("Answer: 3", False, "no_think", None),
    ("<think>a</think>", False, "empty_answer", None),
    ("<think>a</think>b<think>c</think>d", False, "nested", None),
    ("a b</think>Answer: 3", True, "ok", {"think": "a b", "response": "Answer: 3"}),
    ("a b Answer: 3", True, "unclosed", None),
]


@pytest.mark.parametrize(("text", "prefilled", "status", "parsed"), TRACES)
def test_trace_parser_is_strict(text, prefilled, status, parsed):
    assert trace_status(text, prefilled) == status
    assert parse_trace(text, prefilled) == parsed


ANNOTATIONS = [
    (domain_parser(["Law", "science"]), "Domain: law", "Law"),
    (domain_parser(["Law", "science"]), "  Domain: Science \n", "science"),
    (domain_parser(["Law", "science"]), "Domain: history", None),
    (domain_parser(["Law", "science"]), "Domain: law\nbecause", None),
    (domain_parser(["Law", "science"]), "The domain is law", None),
    (parse_strategies, "Strategies: verify, backtrack, verify", ["backtrack", "verify"]),
    (parse_strategies, "Strategies: none", []),
    (parse_strategies, "Strategies: self-verification, Exploration", ["exploration", "self-verification"]),
    (parse_strategies, "Strategies:", None),
    (parse_strategies, "Strategies: 1, 2", None),
    (parse_verbosity, "Verbosity: 0", 0),
    (parse_verbosity, "Verbosity: 10", 10),
    (parse_verbosity, "Verbosity: 11", None),
    (parse_verbosity, "Verbosity: 5.5", None),
    (parse_verbosity, "Verbosity: -1", None),
    (parse_steps, "Steps: 12", 12),
    (parse_steps, "Steps: twelve", None),
    (parse_agreement, "Agree: yes", True),
    (parse_agreement, "Agree: NO", False),
    (parse_agreement, "Agree: maybe", None),
    (parse_agreement, "", None),
]


@pytest.mark.parametrize(("parser", "text", "expected"), ANNOTATIONS)
def test_annotation_parsers_are_strict(parser, text, expected):
    assert parser(text) == expected


def teacher_engine():
    return ProgramEngine(lambda p, rng: world.teacher_reply(prompt_text(p), rng))


def annotator_engine():
    return ProgramEngine(lambda p, rng: world.annotator_reply(prompt_text(p)))


def test_oracle_pipeline_recovers_what_the_teacher_wrote(tmp_path):
    questions = world.question_records(num=24, levels=[1, 2, 3, 4], seed=3)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=64)
    traces, counts = teacher_traces(
        tmp_path / "t", questions, teacher_engine(), sampling, len, generator="oracle", seed=0
    )
    assert counts == {"num_questions": 24, "status_ok": 24}
    pool, counts = annotate(
        tmp_path / "a",
        traces,
        annotator_engine(),
        sampling,
        taxonomy=world.DOMAINS,
        generator="oracle",
        seed=0,
    )
    assert counts == {
        "domain_unparsed": 0,
        "strategies_unparsed": 0,
        "verbosity_unparsed": 0,
        "num_steps_unparsed": 0,
    }
    for record in pool:
        facts = world.read_trace(record["think"])
        assert record["num_steps"] == record["level"] == facts.num_steps
        assert record["strategies"] == list(facts.strategies)
        assert record["domain"] == world.domain_of(world.parse_expression(record["question"]))
        assert record["num_tokens_think"] == len(record["think"])
        assert record["response"] == f"Answer: {record['answer']}"
    again, _ = annotate(
        tmp_path / "a",
        traces,
        annotator_engine(),
        sampling,
        taxonomy=world.DOMAINS,
        generator="oracle",
        seed=0,
    )
    assert again == pool


def test_unclosed_traces_are_counted_not_kept(tmp_path):
    questions = [{"id": "a", "question": "1+1"}, {"id": "b", "question": "2+2"}]
    engine = ScriptedEngine({"a": ["<think>1+1=2</think>Answer: 2"], "b": ["<think>2+2=4 Answer: 4"]})
    traces, counts = teacher_traces(tmp_path, questions, engine, SamplingParams(), len, generator="s", seed=0)
    assert [r["id"] for r in traces] == ["a"] and counts == {
        "num_questions": 2,
        "status_ok": 1,
        "status_unclosed": 1,
    }


def test_unparsed_annotations_are_none_and_counted(tmp_path):
    traces = [{"id": "a", "question": "1+1", "think": "1+1=2", "response": "Answer: 2"}]
    engine = ScriptedEngine(lambda p, j: "I think it is about maths")
    pool, counts = annotate(
        tmp_path, traces, engine, SamplingParams(), taxonomy=["maths"], generator="s", seed=0
    )
    assert counts == {
        "domain_unparsed": 1,
        "strategies_unparsed": 1,
        "verbosity_unparsed": 1,
        "num_steps_unparsed": 1,
    }
    assert pool[0]["strategies"] is None and pool[0]["verbosity"] is None


DIFFICULTY = [
    ("Answer: 4", "Answer: 4", True),
    ("Answer: 4", "1+3=5 Answer: 5", False),
    ("Answer: 4", "no idea", False),
    ("no answer", "Answer: 4", None),
]


@pytest.mark.parametrize(("strong", "weak", "agree"), DIFFICULTY)
def test_exact_agreement(tmp_path, strong, weak, agree):
    traces = [{"id": "a", "question": "2+2", "think": "", "response": strong}]
    labelled, counts = difficulty(
        tmp_path,
        traces,
        ScriptedEngine({"a": [weak]}),
        SamplingParams(),
        answers=ANSWER_FORMATS["world"],
        weak_generator="w",
        seed=0,
    )
    assert labelled[0]["agree"] is agree and labelled[0]["weak_response"] == weak
    assert sum(counts.values()) == 1


def test_judged_agreement_counts_unparsed(tmp_path):
    traces = [{"id": i, "question": "2+2", "think": "", "response": "Answer: 4"} for i in ("a", "b", "c")]
    judge = ScriptedEngine({"a": ["Agree: yes"], "b": ["Agree: no"], "c": ["they agree"]})
    labelled, counts = difficulty(
        tmp_path,
        traces,
        ScriptedEngine(lambda p, j: "Answer: 4"),
        SamplingParams(),
        answers=ANSWER_FORMATS["world"],
        weak_generator="w",
        seed=0,
        judge=judge,
        judge_generator="j",
    )
    assert [r["agree"] for r in labelled] == [True, False, None]
    assert counts == {"agree": 1.0, "disagree": 1.0, "agree_unknown": 1.0}


RECORDS = [
    {
        "id": str(i),
        "question": f"{i}+1",
        "think": f"{i}+1={i + 1}",
        "response": f"Answer: {i + 1}",
        "agree": a,
    }
    for i, a in enumerate([True, False, None, False, True, True, True, True, True, True])
]
CONTROLS = Controls(no_think=" /nothink", think=" /think")


@pytest.mark.parametrize(
    ("mode", "p", "expected_s2"),
    [
        ("s2", 0.5, 10),
        ("s1", 0.5, 0),
        ("difficulty_mix", 0.5, 2),
        ("random_mix", 0.0, 0),
        ("random_mix", 1.0, 10),
    ],
)
def test_targets(mode, p, expected_s2):
    built, counts = build_targets(RECORDS, TargetMode(mode), CONTROLS, p=p, seed=0)
    assert counts["s2"] == expected_s2 and counts["s1"] == 10 - expected_s2
    for example in built:
        user, reply = example["messages"][0]["content"], example["messages"][1]["content"]
        if example["target"] == "s2":
            assert user.endswith(" /think") and reply.startswith("<think>") and "</think>Answer: " in reply
        else:
            assert user.endswith(" /nothink") and reply.startswith("Answer: ")
    if mode == "difficulty_mix":
        assert counts["agree_unknown"] == 1 and [e["id"] for e in built if e["target"] == "s2"] == ["1", "3"]


def test_random_mix_share_follows_p():
    many = [dict(RECORDS[0], id=str(i)) for i in range(2000)]
    _, counts = build_targets(many, TargetMode.RANDOM_MIX, CONTROLS, p=0.3, seed=1)
    assert 0.26 < counts["s2"] / 2000 < 0.34


def test_mode_prompts_and_answer_text():
    from selftaught.world.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    record = {"id": "x", "question": "1+1", "answer": "2"}
    think = mode_prompt(tokenizer, record, InferenceMode.THINK, CONTROLS)
    assert think.text.endswith("<|assistant|><think>") and "1+1 /think" in think.text
    assert (
        mode_prompt(tokenizer, record, InferenceMode.NO_THINK, CONTROLS).messages[0]["content"]
        == "1+1 /nothink"
    )
    adaptive = mode_prompt(tokenizer, record, InferenceMode.ADAPTIVE, CONTROLS)
    assert adaptive.text is None and adaptive.messages[0]["content"] == "1+1 /think"
    assert final_answer_text("<think>x</think>Answer: 2") == "Answer: 2"
    assert final_answer_text("<think>x Answer: 2") is None
    assert final_answer_text("Answer: 2") == "Answer: 2"


def test_teacher_strategies_grow_with_level():
    rng = random.Random(0)
    counts = {}
    for level in (1, 4):
        qs = world.question_records(num=200, levels=[level], seed=1)
        counts[level] = sum(
            len(world.read_trace(world.teacher_trace(world.parse_expression(q["question"]), rng)).strategies)
            for q in qs
        )
    assert counts[4] > 2 * counts[1]
