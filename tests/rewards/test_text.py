"""Exact match and the format checks; the tiny-world answer reward; base helpers."""

import pytest

from selftaught.rewards.base import completion_text, prompt_text, reward_name, trl_inputs
from selftaught.rewards.registry import build_reward
from selftaught.rewards.text import (
    exact_match_reward,
    length_reward,
    ngram_novelty_reward,
    regex_reward,
    tags_reward,
)
from selftaught.rewards.world import world_answer_reward
from selftaught.types import Completion, Prompt


def test_exact_match_normalises_case_space_and_final_period_only():
    completions = ["  Paris.", "PARIS", "Paris, France", "paris\n", "Lyon"]
    assert exact_match_reward(["q"] * 5, completions, ["Paris"] * 5) == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert exact_match_reward(["q"], ["Paris"], [None]) == [None]


def test_regex_reward_matches_the_whole_completion_across_lines():
    fmt = regex_reward(r"<think>.*?</think>\s*Answer: \d+")
    texts = ["<think>2+2\n=4</think>\nAnswer: 4", "Answer: 4", "<think>x</think> Answer: 4 and more"]
    assert fmt([""] * 3, texts) == [1.0, 0.0, 0.0]
    assert fmt.__name__ == "regex_reward" and regex_reward("x", name="has_x").__name__ == "has_x"
    with pytest.raises(ValueError, match="not a valid regular expression"):
        regex_reward("(unclosed")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("<think>a</think><answer>4</answer>", True),
        ("Sure! <think>a</think> so <answer>4</answer> done", True),
        ("<answer>4</answer><think>a</think>", False),  # wrong order
        ("<think>a</think>", False),  # missing tag
        ("<think>a</think><think>b</think><answer>4</answer>", False),  # repeated
        ("<think>a<answer>4</answer></think>", False),  # nested
        ("</think>a<think><answer>4</answer>", False),  # closed before opened
    ],
)
def test_tags_reward(text, ok):
    assert tags_reward(["think", "answer"])([""], [text]) == [float(ok)]


def test_tags_and_length_arguments_are_checked():
    with pytest.raises(ValueError, match="tags must be non-empty names"):
        tags_reward([])
    with pytest.raises(ValueError, match="min_chars <= max_chars"):
        length_reward(min_chars=5, max_chars=2)
    assert length_reward(min_chars=2, max_chars=4)([""] * 4, ["a", "ab", "abcd", "abcde"]) == [
        0.0,
        1.0,
        1.0,
        0.0,
    ]


def test_world_answer_reward_reads_the_first_answer_and_needs_an_integer_reference():
    completions = [
        "33-25=8 8-7=1 Answer: 1",
        "Answer: 2",
        "8-7=1",
        "Answer: 1 Answer: 2",
        "Answer: -1",
        "Answer: 1",
    ]
    answers = ["1", "1", "1", "1", "-1", "one"]
    assert world_answer_reward(["33-25-7"] * 6, completions, answers) == [1.0, 0.0, 0.0, 1.0, 1.0, None]


def test_trl_inputs_follow_trl_formats_and_expose_meta_as_columns():
    chat = Prompt(
        id="a", messages=[{"role": "user", "content": "2+2"}], answer="4", task="arith", meta={"level": 1}
    )
    raw = Prompt(id="b", messages=[{"role": "user", "content": "2+3"}], text="Q: 2+3\nA:", answer="5")
    done = [Completion("a", "Answer: 4", token_ids=[1, 2]), Completion("b", " 5", finish_reason="length")]
    prompts, completions, columns = trl_inputs([chat, raw], done)
    assert prompts == [chat.messages, "Q: 2+3\nA:"]
    assert completions == [[{"role": "assistant", "content": "Answer: 4"}], " 5"]
    assert columns == {
        "answer": ["4", "5"],
        "task": ["arith", "default"],
        "completion_ids": [[1, 2], []],
        "finish_reason": ["stop", "length"],
        "level": [1, None],
    }
    assert [completion_text(c) for c in completions] == ["Answer: 4", " 5"]
    assert [prompt_text(p) for p in prompts] == ["2+2", "Q: 2+3\nA:"]
    with pytest.raises(ValueError, match="clashes"):
        trl_inputs([Prompt(id="c", messages=chat.messages, meta={"task": "x"})], [done[0]])


def test_reward_name_of_functions_and_callable_objects():
    class Scorer:
        def __call__(self, prompts, completions, **columns):
            return [0.0] * len(completions)

    assert reward_name(world_answer_reward) == "world_answer_reward" and reward_name(Scorer()) == "Scorer"


TWENTY = " ".join(f"w{i}" for i in range(20))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0.0),  # empty
        ("hello there", 0.0),  # two words: no 3-gram
        ("the cat sat", 1 / 1 * 3 / 20),  # one distinct 3-gram, 3 words
        ("a b a b a b", 2 / 4 * 6 / 20),  # aba bab aba bab
        ("The cat. the CAT, the cat!", 2 / 4 * 6 / 20),  # case and punctuation fold away
        (TWENTY, 18 / 18 * 1.0),  # 20 distinct words: full length, no repeat
        (TWENTY + " " + TWENTY, 20 / 38),  # the same 20 again: 18 + 2 wrap-around 3-grams distinct
        ("go " * 22, 1 / 20),  # one 3-gram, 20 times
        ("one two three four five six seven eight nine ten", 8 / 8 * 10 / 20),
    ],
)
def test_ngram_novelty_is_distinct_over_all_3grams_scaled_by_length(text, expected):
    assert ngram_novelty_reward(["p"], [text]) == [pytest.approx(expected)]
    chat = [[{"role": "assistant", "content": text}]]
    assert build_reward("ngram_novelty")(prompts=["p"], completions=chat, task=["story"]) == [
        pytest.approx(expected)
    ]
