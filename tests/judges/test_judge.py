"""Pairwise and pointwise judges over a ScriptedEngine: prompts, both orders, parsing, aggregation."""

import pytest

from selftaught.engines.base import SamplingParams
from selftaught.engines.scripted import ScriptedEngine
from selftaught.judges.judge import (
    PairwiseJudge,
    PointwiseJudge,
    build_judge,
    majority_verdict,
    mean_scores,
    question_text,
    swap_verdict,
)
from selftaught.types import Judgment, Prompt

VERDICT = "<think>checked</think> <answer> [[{}]] </answer>"


def prompt(pid: str = "p0", question: str = "7+5") -> Prompt:
    return Prompt(id=pid, messages=[{"role": "user", "content": question}])


def shown(judge_prompt: Prompt) -> tuple[str, str]:
    """(response shown as A, response shown as B) of a j1 pairwise prompt."""
    user = judge_prompt.messages[-1]["content"]
    a = user.split("[The Start of Assistant A's Answer]\n")[1].split("\n[The End")[0]
    b = user.split("[The Start of Assistant B's Answer]\n")[1].split("\n[The End")[0]
    return a, b


def prefers(word: str):
    """A scripted judge that picks the response equal to `word`, wherever it is shown."""
    return lambda p, i: VERDICT.format("A" if shown(p)[0] == word else "B")


def test_build_prompt_shows_responses_in_the_asked_order():
    judge = PairwiseJudge(ScriptedEngine({}))
    original = judge.build_prompt(prompt(), "twelve", "thirteen")
    swapped = judge.build_prompt(prompt(), "thirteen", "twelve", swapped=True)
    assert (original.id, swapped.id) == ("p0|ab", "p0|ba")
    assert shown(original) == ("twelve", "thirteen") and shown(swapped) == ("thirteen", "twelve")
    assert original.text is None and original.meta["template"] == "j1-pairwise-verdict@1"
    assert "[User Question]\n7+5\n" in original.messages[0]["content"]


def test_text_style_prompts_carry_the_raw_text():
    judge = PairwiseJudge(ScriptedEngine({}), prompt_style="text")
    judge_prompt = judge.build_prompt(prompt(), "twelve", "thirteen")
    assert judge_prompt.text is not None and judge_prompt.text.endswith("<think>")
    assert judge_prompt.messages[0]["content"] in judge_prompt.text


def test_both_orders_in_one_call_and_verdicts_map_back_to_the_pair():
    engine = ScriptedEngine(prefers("good"))
    judge = PairwiseJudge(engine, sampling=SamplingParams(temperature=0, max_new_tokens=64))
    results = judge.judge_both_orders([prompt("p0"), prompt("p1")], ["good", "bad"], ["bad", "good"])
    [call] = engine.calls
    assert [p.id for p in call.prompts] == ["p0|ab", "p1|ab", "p0|ba", "p1|ba"]
    assert call.sampling.max_new_tokens == 64
    # the judge always finds "good": pair 0 has it first, pair 1 second
    assert [r.verdicts() for r in results] == [("A", "A"), ("B", "B")]
    first = results[0]
    assert [j.verdict for j in first.original + first.swapped] == ["A", "B"]
    assert [j.swapped for j in first.original + first.swapped] == [False, True]
    judgment = first.swapped[0]
    assert judgment.prompt_id == "p0" and judgment.template == "j1-pairwise-verdict@1"
    assert judgment.raw == VERDICT.format("B")
    assert judgment.meta == {"sample_index": 0, "finish_reason": "stop", "num_tokens": 0}
    assert Judgment.from_json(judgment.to_json()) == judgment


def test_a_position_biased_judge_flips():
    judge = PairwiseJudge(ScriptedEngine(lambda p, i: VERDICT.format("A")))
    [result] = judge.judge_both_orders([prompt()], ["good"], ["bad"])
    assert result.verdicts() == ("A", "B")


def test_unreadable_judgments_keep_raw_text_and_reason():
    judge = PairwiseJudge(ScriptedEngine(lambda p, i: "<think>A is right [[A]] or is it [[B]]"))
    [[judgment]] = judge.judge([prompt()], ["x"], ["y"])
    assert judgment.verdict is None and judgment.raw.startswith("<think>A is right")
    assert judgment.meta["parse_error"] == "no_answer_block"


@pytest.mark.parametrize(
    ("outputs", "verdict"),
    [
        (["A", "B", "A"], "A"),
        (["A", "B"], "tie"),
        (["B", None, None], "B"),  # unreadable samples do not vote
        ([None, None], None),
    ],
)
def test_k_samples_aggregate_by_majority(outputs, verdict):
    texts = [VERDICT.format(v) if v else "no verdict" for v in outputs]
    judge = PairwiseJudge(ScriptedEngine({"p0|ab": texts}), sampling=SamplingParams(n=len(texts)))
    [judgments] = judge.judge([prompt()], ["x"], ["y"])
    assert [j.verdict for j in judgments] == outputs
    assert [j.meta["sample_index"] for j in judgments] == list(range(len(texts)))
    assert majority_verdict(judgments) == verdict


def test_majority_counts_ties_as_a_verdict():
    judgments = [Judgment("p", "", verdict=v) for v in ("tie", "tie", "A")]
    assert majority_verdict(judgments) == "tie"
    assert [swap_verdict(v) for v in ("A", "B", "tie", None)] == ["B", "A", "tie", None]


def test_pointwise_scores_and_mean_over_samples():
    texts = ["<score> 7 </score>", "<score> eleven </score>", "<score>8</score>"]
    engine = ScriptedEngine({"p0|one": texts})
    judge = PointwiseJudge(engine, sampling=SamplingParams(n=3))
    [judgments] = judge.score([prompt()], ["twelve"])
    assert [j.scores for j in judgments] == [[7.0], None, [8.0]]
    assert judgments[1].meta["parse_error"] == "bad_score"
    assert mean_scores(judgments) == [7.5]
    assert mean_scores(judgments[1:2]) is None
    assert "twelve" in engine.calls[0].prompts[0].messages[0]["content"]


def test_mean_scores_is_per_position_for_pairwise_scores():
    judgments = [Judgment("p", "", scores=[8.0, 2.0]), Judgment("p", "", scores=[6.0, 4.0])]
    assert mean_scores(judgments) == [7.0, 3.0]


def test_build_judge_picks_the_kind_and_rejects_mismatches():
    engine = ScriptedEngine({})
    assert isinstance(build_judge(engine, "j1-pointwise@1"), PointwiseJudge)
    assert isinstance(build_judge(engine, "ste-pairwise@1"), PairwiseJudge)
    with pytest.raises(ValueError, match="j1-pointwise@1 is pointwise; a PairwiseJudge needs a pairwise"):
        PairwiseJudge(engine, "j1-pointwise@1")
    with pytest.raises(ValueError, match="prompt_style must be one of"):
        PairwiseJudge(engine, prompt_style="raw")
    with pytest.raises(ValueError, match="same length"):
        PairwiseJudge(engine).judge([prompt()], ["a"], [])


def test_question_text():
    assert question_text(prompt(question="7+5")) == "7+5"
    chat = Prompt("c", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert question_text(chat) == "system: Be brief.\nuser: Hi"
    assert question_text(Prompt("t", [], text="Question: 7+5\nAnswer:")) == "Question: 7+5\nAnswer:"
    with pytest.raises(ValueError, match="'e' has neither messages nor text"):
        question_text(Prompt("e", []))
