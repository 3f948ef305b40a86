"""Judge templates: names carry versions, slots render, each template's own answer format parses."""

import pytest

from selftaught.judges.templates import TEMPLATES, JudgeKind, get_template

WELL_FORMED = {
    "j1-pairwise-verdict@1": ("<think>B is off by one.</think> <answer> [[A]] </answer>", "A", None),
    "j1-pairwise-scores@1": (
        "<think>..</think> <score_A> 3 </score_A> <score_B> 8.5 </score_B>",
        "B",
        [3.0, 8.5],
    ),
    "j1-pairwise-scores-verdict@1": (
        "<score_A>9</score_A><score_B>2</score_B> <answer>[[A]]</answer>",
        "A",
        [9.0, 2.0],
    ),
    "j1-pointwise@1": ("<think>correct</think> <score> 9 </score>", None, [9.0]),
    "evalplanner-pairwise@1": (
        "<plan>check</plan><execution>B wrong</execution><answer>[[A]]</answer>",
        "A",
        None,
    ),
    "ste-pairwise@1": ("Both are equally good. [[C]]", "tie", None),
    "world-pairwise-verdict@1": ("45+64=109 109+36=145 Answer: 145 [[B]]", "B", None),
    "world-pairwise-fewshot@1": (" [[A]]", "A", None),
    "world-pointwise@1": ("1 2 R 1=1+ 2=3- no [[0]]", None, [0.0]),
    "gsm8k-pairwise-fewshot@1": (" [[B]]", "B", None),
}


def test_every_template_is_versioned_and_covered():
    assert set(TEMPLATES) == set(WELL_FORMED)
    for name, template in TEMPLATES.items():
        family, _, version = name.partition("@")
        assert template.name == name and family and version.isdigit()


@pytest.mark.parametrize("name", sorted(WELL_FORMED))
def test_each_template_parses_its_own_answer_format(name):
    text, verdict, scores = WELL_FORMED[name]
    parsed = get_template(name).parse(text)
    assert (parsed.verdict, parsed.scores, parsed.error) == (verdict, scores, None)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_render_fills_every_slot_in_order(name):
    template = get_template(name)
    # braces in user text must survive str.format untouched
    responses = ("alpha {x}",) if template.kind == JudgeKind.POINTWISE else ("alpha {x}", "beta }{")
    messages = template.render("what is {7+5}?", *responses)
    assert [m["role"] for m in messages] == (["system", "user"] if template.system else ["user"])
    user = messages[-1]["content"]
    assert "what is {7+5}?" in user and "{question}" not in user and "{response" not in user
    positions = [user.index(r) for r in responses]
    assert positions == sorted(positions)
    text = template.render_text("what is {7+5}?", *responses)
    assert text.endswith(template.text_suffix) and all(m["content"] in text for m in messages)


def test_world_template_is_the_compact_tiny_world_format():
    messages = get_template("world-pairwise-verdict@1").render(
        "7+5", "7+5=12 Answer: 12", "7+5=13 Answer: 13"
    )
    assert messages == [{"role": "user", "content": "7+5 A: 7+5=12 Answer: 12 B: 7+5=13 Answer: 13"}]


@pytest.mark.parametrize(
    ("name", "responses"), [("j1-pointwise@1", ("a", "b")), ("j1-pairwise-verdict@1", ("a",))]
)
def test_wrong_number_of_responses_is_an_error(name, responses):
    with pytest.raises(ValueError, match="give [12] response"):
        get_template(name).render("q", *responses)


def test_unknown_template_names_the_versioned_one():
    with pytest.raises(ValueError, match=r"did you mean 'j1-pointwise@1'.*known: j1-pairwise-verdict@1"):
        get_template("j1-pointwise")
    with pytest.raises(ValueError, match="unknown judge template 'nope'; known"):
        get_template("nope")
