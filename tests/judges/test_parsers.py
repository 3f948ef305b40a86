"""Strict judge parsers, table-driven on realistic well-formed and malformed judge outputs."""

import pytest

from selftaught.judges.parsers import (
    parse_answer_verdict,
    parse_bare_verdict,
    parse_bare_verdict_or_tie,
    parse_bracket_score,
    parse_pairwise_scores,
    parse_pointwise_score,
    parse_scores_and_verdict,
)

THINK = "<think>A gives 12, which matches my own computation 7+5=12; B gives 13.</think>"


@pytest.mark.parametrize(
    ("text", "verdict", "error"),
    [
        (f"{THINK}\n<answer> [[A]] </answer>", "A", None),
        (f"{THINK}<answer>[[B]]</answer>", "B", None),
        (f"{THINK}\n<answer>\nAssistant B is better: [[B]]\n</answer>\n", "B", None),
        (f"{THINK}<answer> [[A]] [[A]] </answer>", "A", None),
        # the verdict quoted while thinking does not count; only the last answer block does
        ("<think>I might answer [[A]] but B is right</think><answer>[[B]]</answer>", "B", None),
        ("<answer>[[A]]</answer> wait, let me re-check. <answer>[[B]]</answer>", "B", None),
        # a complete block followed by an unclosed one: the last complete block counts
        ("<answer>[[A]]</answer> <answer>[[B]]", "A", None),
        (f"{THINK}<answer> [[A]] or [[B]] </answer>", None, "contradictory_verdict"),
        (f"{THINK}\n[[A]]", None, "no_answer_block"),
        (f"{THINK}<answer> [[A]]", None, "no_answer_block"),  # truncated before </answer>
        ("<think>A is better because", None, "no_answer_block"),
        ("", None, "no_answer_block"),
        (f"{THINK}<answer> A </answer>", None, "no_verdict"),
        (f"{THINK}<answer> [[C]] </answer>", None, "no_verdict"),  # no tie in J1's verdict format
        (f"{THINK}<answer> [A] </answer>", None, "no_verdict"),
        (f"{THINK}<answer> [[a]] </answer>", None, "no_verdict"),
        (f"{THINK}<Answer> [[A]] </Answer>", None, "no_answer_block"),
    ],
)
def test_answer_verdict(text, verdict, error):
    parsed = parse_answer_verdict(text)
    assert (parsed.verdict, parsed.error, parsed.scores) == (verdict, error, None)


@pytest.mark.parametrize(
    ("text", "verdict", "error"),
    [
        ("45+64=109 109+36=145 Answer: 145 [[A]]", "A", None),
        ("Answer: 145 [[B]]</s>", "B", None),
        ("Answer: 145 [[A]] [[A]]", "A", None),
        ("Answer: 145 [[A]] [[B]]", None, "contradictory_verdict"),
        ("45+64=109 109+36=145 Answer: 145", None, "no_verdict"),
        ("Answer: 145 [[C]]", None, "no_verdict"),
        ("Answer: 145 [[A", None, "no_verdict"),
    ],
)
def test_bare_verdict(text, verdict, error):
    parsed = parse_bare_verdict(text)
    assert (parsed.verdict, parsed.error) == (verdict, error)


@pytest.mark.parametrize(
    ("text", "verdict", "error"),
    [
        ("Assistant A solves it correctly while B does not.\n\n[[A]]", "A", None),
        ("Both answers are equally correct. [[C]]", "tie", None),
        ('Final verdict: "[[B]]"', "B", None),
        ("A is right ([[A]]), no wait, [[B]]", None, "contradictory_verdict"),
        ("It is a tie [[C]], or maybe [[A]]", None, "contradictory_verdict"),
        ("Both are fine.", None, "no_verdict"),
    ],
)
def test_bare_verdict_or_tie(text, verdict, error):
    parsed = parse_bare_verdict_or_tie(text)
    assert (parsed.verdict, parsed.error) == (verdict, error)


@pytest.mark.parametrize(
    ("text", "scores", "error"),
    [
        ("1 2 R 1=1+ 2=2+ yes [[1]]", [1.0], None),
        ("1 2 R 1=1+ 2=3- no [[0]]</s>", [0.0], None),
        ("R [[ 7.5 ]]", [7.5], None),
        ("R [[1]] then [[0]]", [0.0], None),  # the last score counts
        ("1 2 R 1=1+ 2=2+ yes", None, "no_score"),
        ("1 2 R [[A]]", None, "no_score"),
        ("R [[11]]", None, "score_out_of_range"),
    ],
)
def test_bracket_score(text, scores, error):
    parsed = parse_bracket_score(text)
    assert (parsed.scores, parsed.error, parsed.verdict) == (scores, error, None)


@pytest.mark.parametrize(
    ("text", "verdict", "scores", "error"),
    [
        (f"{THINK}<score_A> 8 </score_A> <score_B> 3 </score_B>", "A", [8.0, 3.0], None),
        (f"{THINK}<score_A>2.5</score_A><score_B>9.5</score_B>", "B", [2.5, 9.5], None),
        (f"{THINK}<score_A>7</score_A> <score_B>7.0</score_B>", "tie", [7.0, 7.0], None),
        (f"{THINK}<score_A>0</score_A> <score_B>10</score_B>", "B", [0.0, 10.0], None),
        # the last block of each tag counts
        (
            "<score_A>1</score_A><score_B>9</score_B> revised: <score_A>9</score_A><score_B>1</score_B>",
            "A",
            [9.0, 1.0],
            None,
        ),
        (f"{THINK}<score_A> 8/10 </score_A> <score_B> 3 </score_B>", None, None, "bad_score_A"),
        (f"{THINK}<score_A> 8 </score_A> <score_B> three </score_B>", None, None, "bad_score_B"),
        (f"{THINK}<score_A> 11 </score_A> <score_B> 3 </score_B>", None, None, "score_A_out_of_range"),
        (f"{THINK}<score_A> 8 </score_A> <score_B> -1 </score_B>", None, None, "score_B_out_of_range"),
        (f"{THINK}<score_A> 8 </score_A>", None, None, "no_score_B"),
        (f"{THINK}<score_A> 8 </score_A> <score_B> 3", None, None, "no_score_B"),
        (f"{THINK}<score_A> 8 3 </score_A> <score_B> 3 </score_B>", None, None, "bad_score_A"),
    ],
)
def test_pairwise_scores(text, verdict, scores, error):
    parsed = parse_pairwise_scores(text)
    assert (parsed.verdict, parsed.scores, parsed.error) == (verdict, scores, error)


@pytest.mark.parametrize(
    ("text", "verdict", "scores", "error", "meta"),
    [
        (
            "<score_A>8</score_A><score_B>3</score_B><answer>[[A]]</answer>",
            "A",
            [8.0, 3.0],
            None,
            {"score_verdict": "A", "scores_contradict_verdict": False},
        ),
        # the verdict is the answer; scores that favour the other response are recorded, not obeyed
        (
            "<score_A>8</score_A><score_B>3</score_B><answer>[[B]]</answer>",
            "B",
            [8.0, 3.0],
            None,
            {"score_verdict": "A", "scores_contradict_verdict": True},
        ),
        (
            "<score_A>5</score_A><score_B>5</score_B><answer>[[B]]</answer>",
            "B",
            [5.0, 5.0],
            None,
            {"score_verdict": "tie", "scores_contradict_verdict": False},
        ),
        (
            "<score_A>high</score_A><score_B>3</score_B><answer>[[A]]</answer>",
            "A",
            None,
            None,
            {"score_verdict": None, "score_error": "bad_score_A"},
        ),
        (
            "<score_A>8</score_A><score_B>3</score_B>",
            None,
            [8.0, 3.0],
            "no_answer_block",
            {"score_verdict": "A"},
        ),
    ],
)
def test_scores_and_verdict(text, verdict, scores, error, meta):
    parsed = parse_scores_and_verdict(text)
    assert (parsed.verdict, parsed.scores, parsed.error, parsed.meta) == (verdict, scores, error, meta)


@pytest.mark.parametrize(
    ("text", "scores", "error"),
    [
        (f"{THINK}<score> 7 </score>", [7.0], None),
        (f"{THINK}\n<score>9.5</score>\n", [9.5], None),
        ("<score>3</score> On reflection: <score>4</score>", [4.0], None),
        (f"{THINK}<score> 7/10 </score>", None, "bad_score"),
        (f"{THINK}<score></score>", None, "bad_score"),
        (f"{THINK}<score> 10.5 </score>", None, "score_out_of_range"),
        (f"{THINK}Score: 7", None, "no_score"),
        (f"{THINK}<score> 7", None, "no_score"),
    ],
)
def test_pointwise_score(text, scores, error):
    parsed = parse_pointwise_score(text)
    assert (parsed.verdict, parsed.scores, parsed.error) == (None, scores, error)
