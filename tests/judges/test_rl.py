"""J1's judge prompts and rewards: sibling prompts side by side with stable ids, per-sample rewards
(verdict, scores, format), sibling rewards (consistency across orders, pointwise pairs) and their
weighted sum, table-driven over unreadable judgments, ties and missing siblings."""

from dataclasses import dataclass

import pytest

from selftaught.judges.evaluate import load_judge_pairs
from selftaught.judges.rl import (
    JudgePromptSource,
    JudgeScorer,
    consistency_rewards,
    judge_format_reward,
    judge_prompt,
    judge_scores_reward,
    judge_thinking_reward,
    judge_verdict_reward,
    pointwise_pair_rewards,
)
from selftaught.judges.templates import get_template
from selftaught.types import Completion, Prompt

WORLD = "world-pairwise-verdict@1"
SCORES = "j1-pairwise-scores@1"
PAVS = "j1-pairwise-scores-verdict@1"
POINTWISE = "j1-pointwise@1"


@pytest.fixture(scope="module")
def pairs():
    return load_judge_pairs("world:train", limit=6, seed=0)


def test_both_orders_sit_side_by_side_with_stable_sibling_ids(pairs):
    source = JudgePromptSource(pairs, get_template(WORLD), per_step=4, seed=0)
    units = source.units_at(1)
    assert len(units) == 2 and all(len(unit) == 2 for unit in units)
    for unit in units:
        ab, ba = unit
        pid = ab.meta["pair_id"]
        assert (ab.id, ba.id) == (f"{pid}|ab", f"{pid}|ba") and ba.meta["pair_id"] == pid
        assert (ab.meta["winner"], ba.meta["winner"]) == ("A", "B")
        shown_ab, shown_ba = ab.messages[-1]["content"], ba.messages[-1]["content"]
        assert shown_ab != shown_ba and shown_ab.split(" A: ")[0] == shown_ba.split(" A: ")[0]
    assert [p.id for p in source.at(1)] == [p.id for unit in units for p in unit]
    assert [p.id for p in source.at(1)] == [
        p.id for p in JudgePromptSource(pairs, get_template(WORLD), 4, 0).at(1)
    ]
    assert [p.id for p in source.at(2)] != [p.id for p in source.at(1)]


def test_single_order_draws_one_order_per_pair_and_keeps_the_prompt_count(pairs):
    source = JudgePromptSource(pairs, get_template(WORLD), per_step=4, seed=0, both_orders=False)
    prompts = [p for step in range(1, 7) for p in source.at(step)]
    assert all(len(source.at(step)) == 4 for step in range(1, 4))
    assert {p.meta["order"] for p in prompts} == {"ab", "ba"}
    assert all(p.meta["winner"] == {"ab": "A", "ba": "B"}[p.meta["order"]] for p in prompts)


def test_pointwise_prompts_are_the_two_halves(pairs):
    source = JudgePromptSource(pairs, get_template(POINTWISE), per_step=4, seed=0, prompt_style="text")
    chosen, rejected = source.units_at(1)[0]
    assert (chosen.meta["order"], rejected.meta["order"]) == ("chosen", "rejected")
    assert chosen.meta["winner"] is None and chosen.text is not None and chosen.text.endswith("<think>")
    with pytest.raises(ValueError, match="num_prompts must be >= 2"):
        JudgePromptSource(pairs, get_template(POINTWISE), per_step=1, seed=0)


# --- per-sample rewards: (template, judgment, winner) -> (verdict, scores, format) ----------------

PER_SAMPLE = [
    (WORLD, "1+1=2 Answer: 2 [[A]]", "A", 1.0, 0.0, 1.0),
    (WORLD, "1+1=2 Answer: 2 [[A]]", "B", 0.0, 0.0, 1.0),
    (WORLD, "1+1=2 Answer: 2", "A", 0.0, 0.0, 0.0),  # no verdict: wrong, and not well-formed
    (WORLD, "[[A]] [[B]]", "A", 0.0, 0.0, 0.0),  # contradictory
    (WORLD, "", "B", 0.0, 0.0, 0.0),  # empty
    (WORLD, "ok [[C]]", "A", 0.0, 0.0, 0.0),  # no tie in this template
    (SCORES, "<score_A> 3 </score_A> <score_B> 8 </score_B>", "B", 1.0, 1.0, 1.0),
    (SCORES, "<score_A> 5 </score_A> <score_B> 5 </score_B>", "A", 0.0, 0.0, 1.0),  # tie: wrong, parses
    (SCORES, "<score_A> 11 </score_A> <score_B> 5 </score_B>", "A", 0.0, 0.0, 0.0),  # out of range
    (PAVS, "<score_A>9</score_A><score_B>2</score_B> <answer>[[B]]</answer>", "B", 1.0, 0.0, 1.0),
    (PAVS, "<score_A>9</score_A><score_B>2</score_B>", "A", 0.0, 1.0, 0.0),  # no answer block
]


@pytest.mark.parametrize(("template", "text", "winner", "verdict", "scores", "form"), PER_SAMPLE)
def test_per_sample_rewards(template, text, winner, verdict, scores, form):
    columns = {"winner": [winner], "judge_template": [template]}
    assert judge_verdict_reward(["q"], [text], **columns) == [verdict]
    assert judge_scores_reward(["q"], [text], **columns) == [scores]
    assert judge_format_reward(["q"], [text], **columns) == [form]


THINKING = [
    ("45+64=109 109+36=145 Answer: 145 [[A]]", "145", 1.0),
    ("45+64=99 99+36=135 Answer: 135 [[A]]", "145", 0.0),  # a dropped carry
    ("[[A]]", "145", 0.0),  # no working at all
    ("Answer: 145 [[B]]", None, None),  # no reference: not scored
]


@pytest.mark.parametrize(("text", "reference", "want"), THINKING)
def test_the_thinking_reward_checks_the_judges_own_answer(text, reference, want):
    assert judge_thinking_reward(["q"], [text], reference=[reference]) == [want]


def test_prompts_without_a_winner_are_not_scored():
    columns = {"winner": [None, "A"], "judge_template": [POINTWISE, WORLD]}
    assert judge_verdict_reward(["q", "q"], ["<score> 7 </score>", "[[A]]"], **columns) == [None, 1.0]
    assert judge_verdict_reward(["q"], ["[[A]]"]) == [None]  # not a judge prompt at all
    assert judge_format_reward(
        ["q"], [[{"role": "assistant", "content": "[[A]]"}]], judge_template=[WORLD]
    ) == [1.0]


# --- sibling rewards ------------------------------------------------------------------------------


@dataclass
class Group:
    prompt: Prompt
    completions: list[Completion]
    rewards: list
    step: int = 1


def group(pair, order, texts, template=WORLD, step=1):
    prompt = judge_prompt(pair, get_template(template), order)
    return Group(prompt, [Completion(prompt.id, t) for t in texts], [None] * len(texts), step)


CONSISTENCY = [
    # ab judgments, ba judgments -> consistency of ab, of ba
    (["[[A]]", "[[A]]", "[[B]]"], ["[[B]]", "[[A]]", "[[B]]"], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]),
    (["[[A]]", "junk"], ["[[B]]", "[[B]]"], [1.0, 0.0], [1.0, 0.0]),  # unreadable = wrong
    (["[[A]]", "[[A]]"], ["[[B]]"], [1.0, None], [1.0]),  # sibling has fewer samples
]


@pytest.mark.parametrize(("ab", "ba", "want_ab", "want_ba"), CONSISTENCY)
def test_consistency_pairs_sample_i_with_sample_i_of_the_other_order(pairs, ab, ba, want_ab, want_ba):
    groups = [group(pairs[0], "ab", ab), group(pairs[0], "ba", ba)]
    assert consistency_rewards(groups) == [want_ab, want_ba]


PARTIAL = [
    # ab judgments, ba judgments -> partial credit of both (the share of the two orders right)
    (["[[A]]", "[[A]]", "[[B]]", "junk"], ["[[B]]", "[[A]]", "[[A]]", "[[B]]"], [1.0, 0.5, 0.0, 0.5]),
    (["[[A]]", "[[B]]"], ["[[A]]"], [0.5, None]),  # sibling has fewer samples
]


@pytest.mark.parametrize(("ab", "ba", "want_ab"), PARTIAL)
def test_partial_consistency_credits_one_right_order_with_half(pairs, ab, ba, want_ab):
    groups = [group(pairs[0], "ab", ab), group(pairs[0], "ba", ba)]
    rewards = consistency_rewards(groups, partial=True)
    assert rewards[0] == want_ab and rewards[1] == want_ab[: len(ba)]
    assert JudgeScorer({"consistency_partial": 1.0})(groups) == rewards


def test_a_missing_sibling_gives_none_not_zero(pairs):
    alone = [group(pairs[0], "ab", ["[[A]]"]), group(pairs[1], "ba", ["[[B]]"])]
    assert consistency_rewards(alone) == [[None], [None]]
    other_step = [group(pairs[0], "ab", ["[[A]]"], step=1), group(pairs[0], "ba", ["[[B]]"], step=2)]
    assert consistency_rewards(other_step) == [[None], [None]]
    scorer = JudgeScorer({"verdict": 1.0, "consistency": 1.0})
    assert scorer(alone) == [[None], [None]]
    assert JudgeScorer({"verdict": 1.0, "consistency": 0.0})(alone) == [[1.0], [1.0]]


POINTWISE_CASES = [
    # chosen scores, rejected scores -> reward of both halves
    (["<score> 8 </score>", "<score> 3 </score>"], ["<score> 2 </score>", "<score> 3 </score>"], [1.0, 0.0]),
    (["<score> 8 </score>", "no score"], ["<score> 9 </score>", "<score> 1 </score>"], [0.0, 0.0]),
    (["<score> 5 </score>"], ["<score> 5 </score>"], [0.0]),  # a tie is not a win
]


@pytest.mark.parametrize(("chosen", "rejected", "want"), POINTWISE_CASES)
def test_pointwise_halves_share_the_pair_reward(pairs, chosen, rejected, want):
    groups = [group(pairs[0], "chosen", chosen, POINTWISE), group(pairs[0], "rejected", rejected, POINTWISE)]
    assert pointwise_pair_rewards(groups) == [want, want]
    assert pointwise_pair_rewards(groups[:1]) == [[None] * len(chosen)]


def test_the_scorer_sums_weighted_components(pairs):
    groups = [
        group(pairs[0], "ab", ["[[A]]", "[[B]]", "x"]),
        group(pairs[0], "ba", ["[[B]]", "[[B]]", "[[B]]"]),
    ]
    scorer = JudgeScorer({"verdict": 1.0, "consistency": 0.5, "format": 0.1})
    assert scorer(groups) == [[1.6, 0.1, 0.0], [1.6, 1.1, 1.1]]
    answer = groups[0].prompt.meta["reference"]
    thinking = [group(pairs[0], "ab", [f"Answer: {answer} [[B]]", "Answer: -1 [[A]]"])]
    assert JudgeScorer({"verdict": 1.0, "thinking": 0.5})(thinking) == [[0.5, 1.0]]
    with pytest.raises(ValueError, match="unknown judge reward"):
        JudgeScorer({"verdicts": 1.0})
