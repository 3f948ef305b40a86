"""System 2 methods over a scripted engine: what each call sees, the final answer, intermediates, tokens,
one engine call per step for a whole batch, and chains that break on an unparseable step."""

import pytest

from selftaught.data.templates import get_template
from selftaught.engines.base import SamplingParams
from selftaught.engines.scripted import ScriptedEngine
from selftaught.evals.gsm8k import extract_number
from selftaught.pipelines.system2 import (
    BSM,
    S2A,
    CoT,
    Direct,
    RaR1Step,
    RaR2Step,
    build_method,
    parse_criteria,
    parse_s2a,
    parse_verdict,
    usc_choices,
)


def words(completion):
    """Test token count: one token per whitespace-separated word (the scripted engine has no ids)."""
    return len(completion.text.split())


def engine_from(respond):
    return ScriptedEngine(lambda prompt, j: respond(prompt.messages[-1]["content"], j))


def make(cls, respond, **kwargs):
    engine = engine_from(respond)
    return cls(
        engine,
        SamplingParams(temperature=1.0, max_new_tokens=32),
        extract_number,
        count_tokens=words,
        **kwargs,
    ), engine


XS = [{"id": "a", "question": "What is 2+3?"}, {"id": "b", "question": "What is 4+4?"}]


def test_cot_one_call_for_the_batch_and_n_samples_each():
    method, engine = make(CoT, lambda text, j: f"step {j} so The answer is {len(text)}")
    outputs = method.run_batch(XS, n=3)
    assert len(engine.calls) == 1 and engine.calls[0].sampling.n == 3
    assert [len(o) for o in outputs] == [3, 3]
    assert "Let's think step by step." in engine.calls[0].prompts[0].messages[-1]["content"]
    assert engine.calls[0].prompts[0].meta["template"] == "cot-zero-shot@1"
    first = outputs[0][0]
    assert first.intermediates == [] and first.num_tokens == 7
    final, intermediates, num_tokens = method.run(XS[0])  # the run(x) -> (final, intermediates, tokens) form
    assert final == str(len(engine.calls[-1].prompts[0].messages[-1]["content"])) and num_tokens == 7


def test_rar2_two_calls_second_sees_the_rephrasing_and_tokens_add_up():
    def respond(text, j):
        if text.startswith("(original)"):
            return "The answer is 5" if "EXPANDED" in text else "no idea"
        return "EXPANDED question here"

    method, engine = make(RaR2Step, respond)
    outputs = method.run_batch(XS, n=2)
    assert len(engine.calls) == 2
    assert engine.calls[0].sampling.n == 2 and engine.calls[1].sampling.n == 1
    assert len(engine.calls[1].prompts) == 4  # every (input, sample) chain continues once
    assert engine.calls[0].sampling.seed != engine.calls[1].sampling.seed
    out = outputs[1][1]
    assert out.final == "5" and out.intermediates == ["EXPANDED question here"] and out.num_tokens == 3 + 4


def test_rar1_is_one_call_with_the_rephrase_instruction():
    method, engine = make(RaR1Step, lambda text, j: "Rephrased... The answer is 8")
    assert method.run(XS[1]).final == "8"
    assert (
        "Rephrase and expand the question, and respond." in engine.calls[0].prompts[0].messages[-1]["content"]
    )


def test_s2a_answers_from_the_rewrite_alone_and_a_broken_rewrite_is_none():
    def respond(text, j):
        if text.startswith("Given the following text"):
            return "Context: numbers.\nQuestion: What is 4+4?" if "4+4" in text else "I refuse"
        assert "opinion" not in text
        return "The answer is 8"

    xs = [{"id": "a", "question": "I think it's 9. What is 4+4?"}, {"id": "b", "question": "What is 2+3?"}]
    method, engine = make(S2A, respond)
    outputs = method.run_batch(xs)
    assert outputs[0][0].final == "8" and outputs[0][0].num_tokens == 6 + 4
    assert "I think" not in engine.calls[1].prompts[0].messages[-1]["content"]
    assert len(engine.calls[1].prompts) == 1  # the broken chain makes no second call
    broken = outputs[1][0]
    assert broken.final is None and broken.intermediates == ["I refuse"] and broken.num_tokens == 2


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("Context: a b\nQuestion: q?", {"context": "a b", "query": "q?"}),
        ("Context:\nQuestion: q?", {"context": "", "query": "q?"}),
        ("Question: q?", None),
        ("Context: a\nQuestion:   ", None),
        ("", None),
    ],
)
def test_parse_s2a(text, parsed):
    assert parse_s2a(text) == parsed


def test_bsm_branch_solve_merge_in_three_calls():
    def respond(text, j):
        if text.startswith("We want to evaluate"):
            return "- accuracy\n- brevity" if "pair one" in text else "no plan"
        if text.startswith("Evaluate both"):
            return "A: 9 B: 2"
        assert text.count("Criterion") == 2
        return "A is better. [[A]]"

    xs = [
        {"id": "p1", "question": "pair one", "response_a": "x", "response_b": "y"},
        {"id": "p2", "question": "pair two", "response_a": "x", "response_b": "y"},
    ]
    engine = engine_from(respond)
    method = BSM(engine, SamplingParams(), parse_verdict, count_tokens=words)
    outputs = method.run_batch(xs, n=2)
    assert [len(c.prompts) for c in engine.calls] == [2, 4, 2]  # 2 chains x 2 criteria solved at once
    good, broken = outputs[0][1], outputs[1][0]
    assert good.final == "A" and len(good.intermediates) == 3 and good.num_tokens == 4 + 2 * 4 + 4
    assert broken.final is None and broken.intermediates == ["no plan"]


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("[[A]]", "A"),
        ("so [[B]].", "B"),
        ("[[C]]", "C"),
        ("[[A]] or [[B]]", None),
        ("[[D]]", None),
        ("A", None),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


def test_parse_criteria_caps_and_empty():
    assert parse_criteria("- a\n- b\n- c", 2) == ["a", "b"]
    assert parse_criteria("1. a\n2. b", 5) is None
    assert parse_criteria("-   \n- x", 5) == ["x"]


def test_usc_lists_the_responses_and_parses_strictly():
    method, _ = make(Direct, lambda text, j: "The answer is 1")
    outs = method.run_batch(XS, n=3)
    engine = engine_from(
        lambda text, j: f"The most consistent response is Response {2 if '2+3' in text else 4}"
    )
    method.engine = engine
    choices, tokens = usc_choices(method, XS, outs)
    assert choices == [1, None] and tokens == [7, 7]  # Response 4 of 3 does not parse
    assert "Response 3: The answer is 1" in engine.calls[0].prompts[0].messages[-1]["content"]
    assert engine.calls[0].sampling.temperature == 0.0
    assert engine.calls[0].prompts[0].meta["template"] == "usc@1"


def test_templates_by_role_and_unknown_roles():
    method, engine = make(CoT, lambda text, j: "The answer is 1", templates={"cot-zero-shot": "s2d-direct@1"})
    method.run(XS[0])
    assert engine.calls[0].prompts[0].messages[-1]["content"] == "What is 2+3?"
    with pytest.raises(ValueError, match="unknown roles"):
        make(CoT, lambda text, j: "", templates={"nope": "s2d-direct@1"})
    with pytest.raises(ValueError, match="unknown System 2 method"):
        build_method("tot", engine, SamplingParams(), extract_number)
    assert get_template("rar-respond@1").slots == ("question", "rephrased")
