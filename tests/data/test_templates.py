"""Generation templates: versioned names, declared slots checked at build and render, chat and raw forms."""

import pytest

from selftaught.data import templates
from selftaught.data.templates import (
    PromptTemplate,
    format_fields,
    get_template,
    register_template,
    split_versioned_name,
)

QUESTION = PromptTemplate(
    "test-question",
    1,
    user="Document:\n{document}\n\nWrite a question about {topic}.",
    slots=("document", "topic"),
    system="You write questions. Use {{braces}} literally.",
)


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch):
    monkeypatch.setattr(templates, "PROMPT_TEMPLATES", {})


def test_render_messages_fills_slots_and_keeps_braces_in_values():
    messages = QUESTION.render_messages({"document": "x = {y}", "topic": "sets }{"})
    assert messages == [
        {"role": "system", "content": "You write questions. Use {braces} literally."},
        {"role": "user", "content": "Document:\nx = {y}\n\nWrite a question about sets }{."},
    ]


def test_render_gives_a_prompt_with_provenance_and_raw_text_on_request():
    values = {"document": "d", "topic": "t"}
    chat = QUESTION.render("doc-1", values, answer="42", task="nr", meta={"source": "web"})
    assert (chat.id, chat.text, chat.answer, chat.task) == ("doc-1", None, "42", "nr")
    assert chat.meta == {"source": "web", "template": "test-question@1"}
    raw = QUESTION.render("doc-1", values, raw=True)
    assert raw.messages == chat.messages
    assert (
        raw.text
        == "You write questions. Use {braces} literally.\n\nDocument:\nd\n\nWrite a question about t."
    )


def test_explicit_raw_text_form_is_used_for_base_models():
    template = PromptTemplate(
        "qa", 2, user="{question}", slots=("question",), text="Question: {question}\nAnswer:"
    )
    assert template.render_text({"question": "2+2?"}) == "Question: 2+2?\nAnswer:"
    assert template.render_messages({"question": "2+2?"}) == [{"role": "user", "content": "2+2?"}]


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"document": "d"}, r"missing \['topic'\], unexpected \[\]"),
        ({"document": "d", "topic": "t", "lang": "en"}, r"missing \[\], unexpected \['lang'\]"),
    ],
)
def test_missing_or_extra_slot_is_an_error_naming_it(values, match):
    with pytest.raises(ValueError, match=match):
        QUESTION.render("id", values)
    with pytest.raises(ValueError, match=match):
        QUESTION.render_text(values)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"user": "{document} {topic}", "slots": ("document",)},
            r"declares slots \['document'\] but its texts use",
        ),
        ({"user": "{document}", "slots": ("document", "topic")}, "declares slots"),
        ({"user": "{document}", "slots": ("document",), "text": "{doc}"}, "declares slots"),
        ({"user": "{0} {}", "slots": ()}, "plain names"),
        ({"user": "{a.b}", "slots": ()}, "plain names"),
        ({"user": "a { b", "slots": ()}, "literal braces"),
        ({"user": "x", "slots": (), "name": "a@1"}, "no '@'"),
        ({"user": "x", "slots": (), "version": 0}, "version must be an integer >= 1"),
    ],
)
def test_malformed_templates_fail_when_built(kwargs, match):
    fields = {"name": "t", "version": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        PromptTemplate(**fields)


def test_registry_round_trip_and_a_changed_wording_needs_a_new_version():
    assert register_template(QUESTION) is QUESTION
    assert register_template(QUESTION) is QUESTION  # an equal template again is a no-op
    assert get_template("test-question@1") is QUESTION
    reworded = PromptTemplate("test-question", 1, user="{document} {topic}?", slots=("document", "topic"))
    with pytest.raises(ValueError, match="already registered.*version 2"):
        register_template(reworded)
    register_template(
        PromptTemplate("test-question", 2, user="{document} {topic}?", slots=("document", "topic"))
    )
    assert get_template("test-question@2").versioned_name == "test-question@2"


def test_unknown_name_lists_known_ones_and_suggests_the_newest_version():
    register_template(QUESTION)
    register_template(
        PromptTemplate("test-question", 2, user="{document} {topic}?", slots=("document", "topic"))
    )
    with pytest.raises(ValueError, match=r"did you mean 'test-question@2'\?\); known: test-question@1"):
        get_template("test-question")
    with pytest.raises(
        ValueError, match="unknown prompt template 'nope'; known: test-question@1, test-question@2"
    ):
        get_template("nope")


def test_helpers():
    assert split_versioned_name("nr-question@12") == ("nr-question", 12)
    for bad in ("nr-question", "@1", "x@v1", "x@0"):
        with pytest.raises(ValueError, match="carry a version"):
            split_versioned_name(bad)
    assert format_fields("{a} {{b}} {c}") == ["a", "c"]


def test_judge_templates_render_through_their_prompt_template():
    from selftaught.judges.templates import get_template as get_judge_template

    judge = get_judge_template("ste-pairwise@1")
    generic = judge.prompt_template
    assert (generic.versioned_name, generic.slots) == (
        "ste-pairwise@1",
        ("question", "response_a", "response_b"),
    )
    values = {"question": "q {x}", "response_a": "a", "response_b": "b"}
    assert generic.render_messages(values) == judge.render("q {x}", "a", "b")
    assert generic.render_text(values) == judge.render_text("q {x}", "a", "b")
