"""math_answer_reward: many ways a model writes the right answer, many wrong ones, unscorable references."""

import json
import threading
from pathlib import Path

import pytest

from selftaught.rewards.math import (
    answer_span,
    last_boxed,
    math_answer_reward,
    parse_reference,
    score_math_answer,
)

GSM8K_JANET = (
    "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
    "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18"
)

RIGHT = [  # (reference, completion)
    ("42", r"The answer is \boxed{42}."),
    ("-3", r"So $\boxed{-3}$."),
    ("42", r"\boxed{42} apples"),
    ("3", r"\boxed{2}? No wait, I dropped a carry. The answer is \boxed{3}."),
    ("1000", "The answer is $1,000."),
    ("1000", r"In total: \boxed{1,000}"),
    ("1000", "1,000.00"),
    ("42", "Step 1: 40 + 2 = 42.\n#### 42"),
    ("42", "#### 42\n\nQuestion: How many apples are left if 3 are eaten?"),
    (
        "72",
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\n#### 72",
    ),
    ("10", "Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.\n#### 10"),
    ("0.5", "The answer is 1/2"),
    ("1/2", "The answer is 0.5"),
    (r"\frac{1}{2}", r"So the probability is $\frac{1}{2}$."),
    ("0.5", r"Therefore $x = \frac{1}{2}$"),
    ("2/3", r"\boxed{\dfrac{2}{3}}"),
    ("0.3333333", "1/3"),
    ("0.25", "The answer is 25%."),
    ("50", "She scored 50% on the test, so the answer is 50%."),
    ("-7", "The temperature is now -7 degrees."),
    ("18", "She makes $18 every day at the market."),
    ("18", "The answer is 18 dollars."),
    ("3.5", "It takes 3.5 hours."),
    ("5", "5 apples"),
    ("42", "The answer is 42. I double-checked it 3 times."),
    ("42", "Answer: 42"),
    ("12", "**Answer:** 12"),
    ("42", "The final answer is 42"),
    ("12", "The total number of cookies is 3 × 4 = 12."),
    (r"\frac{\sqrt{3}}{2}", r"\boxed{\frac{\sqrt3}{2}}"),
    ("x^2+1", r"The answer is $x^2 + 1$."),
    ("(3, -1)", r"\boxed{(3,-1)}"),
    (GSM8K_JANET, "The answer is 18."),
    (r"Adding them, we get $\boxed{5}$.", "5"),
    ("7", "#### seven"),  # issue 16: number words are numbers (was scored 0)
    # misses found by the blind held-out table (math_heldout_cases.jsonl)
    ("0", "He had 5 apples and ate all 5, so he has zero apples left."),
    ("18", "He has 18 apples. Each one is red."),  # a lone `one` after the last digit is a pronoun
    ("12.5", "1 out of 8 is 12.5%."),
    ("-15", "Her balance is -$15."),
    ("-15", r"Her balance is -\$15."),
]

WRONG = [
    ("42", "The answer is 41."),
    ("42", r"\boxed{43}"),
    ("42", "#### 24"),
    ("42", "The answer is -42."),
    ("42", "The answer is 420."),
    ("42", "The answer is 4.2"),
    ("2", r"\boxed{2}? No wait. The answer is \boxed{3}."),
    ("0.5", "The answer is 1/3"),
    ("1000", "The answer is $100."),
    ("42", "There are 42 apples, and 3 are eaten, so 39 remain."),
    ("18", "She makes 9 * 2 = 18 dollars, but pays 2, so 16."),
    ("x^2+1", r"$x^2 - 1$"),
    ("(3, -1)", r"\boxed{(-1, 3)}"),
    # no parsable answer: a wrong answer, not an unscorable one
    ("42", "I don't know."),
    ("42", ""),
    ("42", r"The answer is \boxed{42"),  # truncated box
]

UNSCORABLE_REFERENCES = [None, "", "   ", "N/A", "not a number", "#### ???", "The answer is unknown."]


@pytest.mark.parametrize(("reference", "completion"), RIGHT)
def test_right_answers_score_1(reference, completion):
    assert score_math_answer(completion, parse_reference(reference)) == 1.0


@pytest.mark.parametrize(("reference", "completion"), WRONG)
def test_wrong_or_missing_answers_score_0(reference, completion):
    assert score_math_answer(completion, parse_reference(reference)) == 0.0


@pytest.mark.parametrize("reference", UNSCORABLE_REFERENCES)
def test_a_malformed_reference_is_none_whatever_the_completion(reference):
    assert parse_reference(reference) is None
    assert math_answer_reward(["q"], ["The answer is 42."], [reference]) == [None]


def test_last_box_wins_and_braces_nest():
    assert last_boxed(r"\boxed{1} then \boxed{\frac{2}{3}} end") == r"\boxed{\frac{2}{3}}"
    assert last_boxed(r"\fbox{7}") == r"\fbox{7}"
    assert last_boxed(r"\boxed{1} and \boxed{2") == r"\boxed{1}"  # an unclosed last box is skipped
    assert last_boxed("no box") is None
    assert answer_span("work\n#### 1,000\nmore text") == "1,000"


def test_trl_conversational_completions_and_one_reference_per_group():
    completions = [[{"role": "assistant", "content": c}] for c in (r"\boxed{4}", "It is 5.", "Answer: 4")]
    assert math_answer_reward([[{"role": "user", "content": "2+2?"}]] * 3, completions, ["4"] * 3) == [
        1.0,
        0.0,
        1.0,
    ]


def test_missing_answer_column_names_the_column():
    with pytest.raises(ValueError, match="`answer` column"):
        math_answer_reward(["q"], ["4"], None)
    with pytest.raises(ValueError, match="2 entries for 1 completions"):
        math_answer_reward(["q"], ["4"], ["4", "5"])


def test_works_outside_the_main_thread():
    """math-verify's timeout uses signal.alarm (main thread only): elsewhere it must run without it."""
    results: list = []
    worker = threading.Thread(
        target=lambda: results.append(math_answer_reward(["q"] * 2, ["1/2", "3"], ["0.5"] * 2))
    )
    worker.start()
    worker.join()
    assert results == [[1.0, 0.0]]


GRADING_CASES = [
    json.loads(line) for line in (Path(__file__).parent / "math_grading_cases.jsonl").read_text().splitlines()
]


def _grade(case: dict) -> float | None:
    reasons = [case["finish_reason"]] if "finish_reason" in case else None
    [score] = math_answer_reward(["q"], [case["completion"]], [case["reference"]], finish_reason=reasons)
    return score


@pytest.mark.parametrize("case", GRADING_CASES, ids=lambda case: case["class"])
def test_grades_like_a_careful_human(case):
    """Issue 16: each hand-graded case (`math_grading_cases.jsonl`) gets the careful grader's score."""
    assert _grade(case) == case["expected"], case


HELDOUT_CASES = [
    json.loads(line) for line in (Path(__file__).parent / "math_heldout_cases.jsonl").read_text().splitlines()
]


def test_agreement_on_the_blind_held_out_table_is_at_least_95_percent():
    """A table written without seeing the verifier (`math_heldout.py` prints the disagreements; three
    are left: one hard case, `10 degrees below zero`, and two truncation-policy calls)."""
    agree = sum(_grade(case) == case["expected"] for case in HELDOUT_CASES)
    assert len(HELDOUT_CASES) >= 200 and agree / len(HELDOUT_CASES) >= 0.95


def test_agreement_with_careful_grading_is_at_least_95_percent():
    agree = sum(_grade(case) == case["expected"] for case in GRADING_CASES)
    print(f"math verifier agrees with careful grading on {agree}/{len(GRADING_CASES)} cases")
    assert len(GRADING_CASES) >= 100 and agree / len(GRADING_CASES) >= 0.95
