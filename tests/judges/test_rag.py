"""The RAG judges: the correctness and relevance parsers accept the released `eval.py`'s forms on the
last line only and nothing else; the prompts carry the gold answers; the labeller asks every
pending answer in one engine call per attempt and leaves never-parsed answers None."""

import pytest

from selftaught.data.templates import get_template
from selftaught.engines.base import SamplingParams
from selftaught.engines.scripted import ScriptedEngine
from selftaught.judges.rag import (
    CORRECTNESS,
    RELEVANCE,
    SCORE,
    TOURNAMENT,
    gold_text,
    label_with_retries,
    llm_labeler,
    parse_correctness_label,
    parse_relevance_label,
    parse_score,
    passages_text,
    relevance_labeler,
)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Label: Correct", "correct"),
        ("label: incorrect", "incorrect"),
        ("LABEL: REFUSE", "refuse"),
        ("The prediction names Oslo, as the gold does.\n\nLabel: Correct", "correct"),
        ("**Label: Correct**", "correct"),
        ("**Label:** Incorrect", "incorrect"),
        ("Prediction label: Refuse", "refuse"),
        ("**Prediction Label: Correct**", "correct"),
        ("Label: Correct.", "correct"),
        ("  Label:Refuse  \n\n", "refuse"),
    ],
)
def test_correctness_labels_in_the_accepted_forms(text, label):
    assert parse_correctness_label(text) == label


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Correct",
        "Label: Maybe",
        "Label: Correctness",
        "Label: Correct/Incorrect",
        "Label: Correct, I think",
        "Label: Correct\nOn reflection it is wrong.",  # not the last line
        "Label: Present",
        "Verdict: Correct",
    ],
)
def test_correctness_rejects_everything_else(text):
    assert parse_correctness_label(text) is None


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Passage 2 states it.\nLabel: Present", "present"),
        ("**Label: absent**", "absent"),
        ("Prediction label: PRESENT.", "present"),
        ("Label: Absent", "absent"),
    ],
)
def test_relevance_labels_in_the_accepted_forms(text, label):
    assert parse_relevance_label(text) == label


@pytest.mark.parametrize(
    "text", ["", "Present", "Label: Correct", "Label: Presently", "Label: Absent\nbut maybe present"]
)
def test_relevance_rejects_everything_else(text):
    assert parse_relevance_label(text) is None


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("Score: 7", 7),
        ("score: 0", 0),
        ("It agrees with the gold answer.\n\nScore: 9", 9),
        ("**Score: 4**", 4),
        ("**Score:** 4", 4),
        ("Score:3.", 3),
        ("  SCORE: 5  \n\n", 5),
    ],
)
def test_scores_in_the_accepted_forms(text, score):
    assert parse_score(text) == score


@pytest.mark.parametrize(
    "text",
    ["", "7", "Score: 10", "Score: -1", "Score: 7/9", "Score: seven", "Score: 7\nthen more", "Grade: 7"],
)
def test_a_score_in_any_other_form_is_none(text):
    """Strict: one digit on the last line; the caller counts a None (the optimiser as a 0)."""
    assert parse_score(text) is None


RECORDS = [
    {
        "id": f"q{i}",
        "question": f"Where does P{i} live?",
        "answer": ["Oslo", "Christiania"] if i == 0 else "Lima",
        "retrieved_support": [{"text": f"P{i} passage {k}."} for k in range(6)],
    }
    for i in range(3)
]


def test_the_templates_are_registered_and_versioned():
    assert get_template("rag-tournament@1") is TOURNAMENT
    assert get_template("rag-correctness@1") is CORRECTNESS and get_template("rag-relevance@1") is RELEVANCE
    assert get_template("rag-score@1") is SCORE


def test_gold_answers_and_passages_for_the_prompts():
    assert gold_text(RECORDS[0]) == "Oslo; Christiania" and gold_text(RECORDS[1]) == "Lima"
    assert passages_text(RECORDS[0]).splitlines() == [f"[{k + 1}] P0 passage {k}." for k in range(4)]
    with pytest.raises(ValueError, match=r"record 'x' needs a gold `answer`.*got 3"):
        gold_text({"id": "x", "answer": 3})
    with pytest.raises(ValueError, match="record 'x' needs `retrieved_support`"):
        passages_text({"id": "x"})


def test_the_labeler_batches_every_pending_answer_per_attempt():
    seen = {}

    def judge(prompt, j):
        """q0 parses at once, q1 on the third attempt, q2 never."""
        seen[prompt.id] = seen.get(prompt.id, 0) + 1
        if prompt.id.startswith("q0"):
            return "It gives Oslo.\nLabel: Correct"
        if prompt.id.startswith("q1") and seen[prompt.id] == 3:
            return "**Label: Refuse**"
        return "No idea."

    engine = ScriptedEngine(judge)
    sampling = SamplingParams(temperature=0.5, max_new_tokens=32, seed=4)
    labels = llm_labeler(engine, sampling, retries=3)(RECORDS, ["Oslo", "unknown", "Rome"])
    assert labels == ["correct", "refuse", None]
    assert [len(call.prompts) for call in engine.calls] == [3, 2, 2, 1]  # one call per attempt
    assert [call.sampling.seed for call in engine.calls] == [4, 5, 6, 7]
    text = engine.calls[0].prompts[0].messages[-1]["content"]
    assert "Gold answers: Oslo; Christiania" in text and "Prediction: Oslo" in text
    with pytest.raises(ValueError, match="one prediction per record"):
        llm_labeler(engine, sampling)(RECORDS, ["Oslo"])


def test_the_relevance_labeler_gives_present_flags():
    engine = ScriptedEngine(lambda p, j: {"q0": "Label: Present", "q1": "Label: Absent"}.get(p.id[:2], "?"))
    present = relevance_labeler(engine, SamplingParams(), retries=1)(RECORDS)
    assert present == [True, False, None] and len(engine.calls) == 2
    text = engine.calls[0].prompts[0].messages[-1]["content"]
    assert "[4] P0 passage 3." in text and "passage 4" not in text and "Gold answers: Oslo" in text


def test_negative_retries_are_an_error():
    with pytest.raises(ValueError, match="retries must be >= 0, got -1"):
        label_with_retries(
            ScriptedEngine(lambda p, j: ""), [], parse_correctness_label, SamplingParams(), retries=-1
        )
