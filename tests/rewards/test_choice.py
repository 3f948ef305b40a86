"""choice_reward: the letter a model chose, in the many ways models write it."""

import pytest

from selftaught.rewards.choice import choice_reward, extract_choice, reference_choice

CHOICES = [  # (completion, letter read)
    ("(B)", "B"),
    ("Answer: b", "B"),
    ("answer: (b)", "B"),
    ("The correct option is C.", "C"),
    ("The answer is (D).", "D"),
    ("The answer is option C", "C"),
    ("The answer is A because 2+2=4.", "A"),
    ("I choose D because it is the largest.", "D"),
    ("My final answer: **C**", "C"),
    ("B) 42 apples", "B"),
    ("B.", "B"),
    ("B", "B"),
    ("b", "B"),
    ("**C**", "C"),
    (r"\boxed{A}", "A"),
    (r"So the answer is $\boxed{\text{(E)}}$.", "E"),
    ("Between (A) and (B), the answer is (B).", "B"),
    ("I think it's (A). Wait, no: the answer is C.", "C"),
    ("Options (A) and (C) are wrong; (B) is right.", "B"),
    # no choice: words that look like letters, numbers, letters out of range
    ("I think the answer is a number.", None),
    ("I don't know.", None),
    ("It is a tough question.", None),
    ("A cat sat on the mat.", None),
    ("I think it's 42.", None),
    ("Answer: 42", None),
    ("The answer is K.", None),
    ("", None),
]


@pytest.mark.parametrize(("completion", "letter"), CHOICES)
def test_extract_choice(completion, letter):
    assert extract_choice(completion) == letter


@pytest.mark.parametrize(
    ("reference", "letter"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(C)", "C"),
        ("D.", "D"),
        ("K", None),
        ("BC", None),
        ("42", None),
        ("", None),
        (None, None),
    ],
)
def test_reference_choice(reference, letter):
    assert reference_choice(reference) == letter


def test_reward_is_1_right_0_wrong_or_none_chosen_and_none_for_a_bad_reference():
    completions = ["The answer is (B).", "(C)", "No idea.", "(B)"]
    assert choice_reward(["q"] * 4, completions, ["B", "B", "B", "maybe"]) == [1.0, 0.0, 0.0, None]
