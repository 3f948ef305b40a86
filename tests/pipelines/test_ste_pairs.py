"""Self-Taught Evaluator pair synthesis from instructions: classify and keep a category, answer (y_w),
then a modified instruction with its answer (y_l) or a direct bad answer; unreadable replies are
dropped and counted, every stage is reused on a rerun."""

import pytest

from selftaught.engines.scripted import ScriptedEngine
from selftaught.pipelines import ste_pairs
from selftaught.pipelines.ste_pairs import parse_bad, parse_category, parse_modified, synthesize_pairs

INSTRUCTIONS = [
    {"id": "q0", "instruction": "Why is the sky blue?"},
    {"id": "q1", "instruction": "Write a poem about rain."},
    {"id": "q2", "instruction": "Why do cats purr?"},
    {"id": "q3", "instruction": "Why does ice float?"},
]


def fake_llm(prompt, i):
    text = prompt.messages[-1]["content"]
    if text.startswith("Classify"):
        return "Category: creative writing" if "poem" in text else "Category: Knowledge & Reasoning"
    if text.startswith("Below are a user question"):
        if "ice" in text:
            return "I cannot help with that."  # no markers: dropped
        question = text.split("[User Question]\n")[1].split("\n")[0]
        return (
            f"{ste_pairs.MODIFIED_START}\n{question} Answer in one word.\n{ste_pairs.MODIFIED_ANSWER_START}\n"
            f"Physics.\n{ste_pairs.MODIFIED_ANSWER_END}"
        )
    if text.startswith("Below is a user question"):
        return f"{ste_pairs.BAD_START}\nBecause of magic.\n{ste_pairs.BAD_END}"
    return f"A careful answer to: {text}"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Category: Knowledge & Reasoning", "knowledge & reasoning"),
        ("Thinking...\nCategory: math.", "math"),
        ("Category: astrology", None),
        ("It is about coding.", None),
    ],
)
def test_parse_category(text, category):
    assert parse_category(text) == category


def test_parsers_need_every_marker():
    good = f"{ste_pairs.MODIFIED_START}\nx'\n{ste_pairs.MODIFIED_ANSWER_START}\ny\n{ste_pairs.MODIFIED_ANSWER_END}"
    assert parse_modified(good) == {"instruction": "x'", "response": "y"}
    assert parse_modified(good.replace(ste_pairs.MODIFIED_ANSWER_END, "")) is None
    assert parse_modified(good.replace(ste_pairs.MODIFIED_START, "")) is None
    assert parse_bad(f"{ste_pairs.BAD_START} no {ste_pairs.BAD_END}") == {"response": "no"}
    assert parse_bad("no markers") is None


def test_modified_instruction_pairs_keep_the_reasoning_category_and_drop_unreadable_replies(
    tmp_path, monkeypatch
):
    pairs, counts = synthesize_pairs(tmp_path, INSTRUCTIONS, ScriptedEngine(fake_llm), generator="fake")
    assert counts == {
        "num_instructions": 4,
        "num_unclassified": 0,
        "num_kept_category": 3,  # the poem is creative writing
        "num_unparsed_worse": 1,  # the ice reply has no markers
        "num_pairs": 2,
    }
    assert [p["id"] for p in pairs] == ["q0", "q2"]
    first = pairs[0]
    assert first["chosen"] == "A careful answer to: Why is the sky blue?" and first["rejected"] == "Physics."
    assert first["modified_instruction"] == "Why is the sky blue? Answer in one word."
    assert first["category"] == "knowledge & reasoning" and first["mode"] == "modified_instruction"
    assert set(first["provenance"]) == {"completions", "chosen", "worse"}

    def never(*args, **kwargs):
        raise AssertionError("a stage ran again")

    monkeypatch.setattr(ScriptedEngine, "generate", never)
    again, _ = synthesize_pairs(tmp_path, INSTRUCTIONS, ScriptedEngine(fake_llm), generator="fake")
    assert again == pairs


def test_direct_bad_mode_without_classification(tmp_path):
    pairs, counts = synthesize_pairs(
        tmp_path, INSTRUCTIONS, ScriptedEngine(fake_llm), generator="fake", mode="direct_bad", keep=()
    )
    assert counts["num_pairs"] == 4 and "num_unclassified" not in counts
    assert {p["rejected"] for p in pairs} == {"Because of magic."} and pairs[0][
        "modified_instruction"
    ] is None


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="pair mode"):
        synthesize_pairs(tmp_path, INSTRUCTIONS, ScriptedEngine(fake_llm), generator="f", mode="nope")
    with pytest.raises(ValueError, match="keep categories"):
        synthesize_pairs(tmp_path, INSTRUCTIONS, ScriptedEngine(fake_llm), generator="f", keep=("maths",))
