"""NaturalReasoning's stages: strict parsers (table-driven, malformed replies included), answer
buckets, provenance on every record, and the scripted world model behind the same templates."""

import pytest

from selftaught.engines.base import SamplingParams
from selftaught.engines.scripted import ScriptedEngine
from selftaught.pipelines.natural_reasoning import (
    WorldModel,
    answer_bucket,
    backtranslate,
    parse_question,
    parse_ratings,
    respond,
    score_documents,
)

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=64)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Completeness: 4\nComplexity: 3\nCorrectness: 5\nReasoning: 2",
            {"completeness": 4, "complexity": 3, "correctness": 5, "reasoning": 2},
        ),
        (
            "Reasoning: 5\ncompleteness : 1\nCOMPLEXITY:2\nCorrectness: 3\nOverall: keep",
            {"completeness": 1, "complexity": 2, "correctness": 3, "reasoning": 5},
        ),
        ("Completeness: 4\nComplexity: 3\nCorrectness: 5", None),  # an axis missing
        ("Completeness: 4\nComplexity: 3\nCorrectness: 5\nReasoning: 2\nReasoning: 3", None),  # repeated
        ("Completeness: 4\nComplexity: 3\nCorrectness: 6\nReasoning: 2", None),  # out of range
        ("Completeness: four\nComplexity: 3\nCorrectness: 5\nReasoning: 2", None),
        ("The document is great. Reasoning: 5", None),
        ("", None),
    ],
)
def test_parse_ratings(text, expected):
    assert parse_ratings(text) == expected


@pytest.mark.parametrize(
    ("text", "question", "answer", "self_contained"),
    [
        ("Question: What is 2+3?\nAnswer: 5", "What is 2+3?", "5", True),
        (
            "Question: A train\ngoes 60 km in 1 h. Speed?\nAnswer: 60 km/h,\nsince 60/1 = 60.",
            "A train\ngoes 60 km in 1 h. Speed?",
            "60 km/h,\nsince 60/1 = 60.",
            True,
        ),
        ("Question: Why is the sky blue?\nAnswer: None", "Why is the sky blue?", None, True),
        ("Question: Why?\nAnswer: no answer.", "Why?", None, True),
        (
            "Question: What does the document say about x?\nAnswer: 3",
            "What does the document say about x?",
            "3",
            False,
        ),
    ],
)
def test_parse_question(text, question, answer, self_contained):
    parsed = parse_question(text)
    assert parsed == {
        "question": question,
        "reference_answer": answer,
        "not_self_contained": not self_contained,
    }


@pytest.mark.parametrize(
    "text", ["Question: What is 2+3?", "Answer: 5", "Question: \nAnswer: 5", "Question: x?\nAnswer: ", "5"]
)
def test_malformed_questions_do_not_parse(text):
    assert parse_question(text) is None


@pytest.mark.parametrize(
    ("answer", "bucket"),
    [
        (None, "none"),
        ("", "none"),
        ("42", "single"),
        ("1 2 5 9", "short"),
        ("one two three four five six seven eight nine", "short"),
        (" ".join(["w"] * 10), "long"),
    ],
)
def test_answer_buckets(answer, bucket):
    assert answer_bucket(answer) == bucket


DOCS = [
    {
        "id": "d0",
        "document": "Notes on sorting lists.\nProblem: sort 3 1 2\nSolution: min 1 min 2 min 3 Answer: 1 2 3",
    },
    {"id": "d1", "document": "Notes on sorting lists.\nA sorted list goes from small to large."},
    {"id": "d2", "document": "A shop adds up prices at the till."},
]


def test_annotation_counts_unparsed_ratings_and_keeps_by_the_reasoning_threshold(tmp_path):
    script = {
        "d0": ["Completeness: 5\nComplexity: 3\nCorrectness: 5\nReasoning: 4"],
        "d1": ["Reasoning: high"],
        "d2": ["Completeness: 1\nComplexity: 1\nCorrectness: 3\nReasoning: 2"],
    }
    scored, counts = score_documents(
        tmp_path / "a", DOCS, ScriptedEngine(script), GREEDY, generator="scripted", seed=0, threshold=3
    )
    assert counts == {"num_documents": 3, "num_unparsed": 1, "num_kept": 1}
    assert [r["keep"] for r in scored] == [True, None, False]
    assert scored[0]["provenance"]["completions"] == {
        "template": "nr-annotate@1",
        "generator": "scripted",
        "seed": 0,
    }
    _, lower = score_documents(
        tmp_path / "b", DOCS, ScriptedEngine(script), GREEDY, generator="scripted", seed=0, threshold=2
    )
    assert lower["num_kept"] == 2


def test_backtranslation_keeps_provenance_buckets_and_counts_rejections(tmp_path):
    script = {
        "d0": ["Question: sort 4 2 8\nAnswer: 2 4 8"],
        "d1": ["Question: What does the text say?\nAnswer: none"],
        "d2": ["I cannot."],
    }
    questions, counts = backtranslate(
        tmp_path / "q", DOCS, ScriptedEngine(script), GREEDY, generator="g", seed=3
    )
    assert counts == {"num_documents": 3, "num_unparsed": 1, "num_not_self_contained": 1, "num_questions": 1,
                      "answer_buckets": {"none": 0, "single": 0, "short": 1, "long": 0}}  # fmt: skip
    (q,) = questions
    assert q["question"] == "sort 4 2 8" and q["reference_answer"] == "2 4 8" and q["doc_id"] == "d0"
    assert q["provenance"] == {
        "document": "d0",
        "question": {"template": "nr-question@1", "generator": "g", "seed": 3_000_009},
    }


def test_the_world_model_annotates_writes_and_answers_through_the_templates(tmp_path):
    world = WorldModel()
    scored, counts = score_documents(
        tmp_path / "a", DOCS, world, GREEDY, generator="world", seed=0, threshold=3
    )
    assert counts["num_unparsed"] == 0 and [r["keep"] for r in scored] == [True, False, False]
    questions, _ = backtranslate(tmp_path / "q", DOCS[:2], world, GREEDY, generator="world", seed=0)
    assert questions[0]["question"].startswith("sort ") and questions[0]["question"] != "sort 3 1 2"
    assert questions[1]["reference_answer"] is None  # facts only: no answer derivable
    answered = respond(tmp_path / "r", questions[:1], world, GREEDY, generator="world", seed=0)
    assert answered[0]["response"].endswith(f"Answer: {questions[0]['reference_answer']}")
    assert answered[0]["provenance"]["responses"]["template"] == "nr-respond@1"
