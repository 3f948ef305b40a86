"""The System 2 world: disjoint splits, the System 1 heuristics, the noisy scratchpad, strict extraction."""

import random

import pytest

from selftaught.world import system2 as world


@pytest.mark.parametrize("task", world.TASKS)
def test_splits_are_disjoint_and_questions_parse_back(task):
    train = {q.text for q in world.questions(task, "train", 300)}
    test = world.questions(task, "test", 100)
    assert not train & {q.text for q in test} and len({q.text for q in test}) == 100
    assert all(world.parse_question(q.text) == q for q in test)
    assert world.questions(task, "test", 100) == test  # the same call, the same list


def test_gold_answers():
    q = world.parse_question("last letters: tiger moon apple cat")
    assert q.answer == "rnet" and world.heuristic_letters(q.words) == "rnet"  # no long word
    assert world.heuristic_letters(("planet", "cat")) == "pt"  # a long word's first letter
    assert world.parse_question("ball a swaps ab bc ca").answer == "a"  # a->b->c->a
    assert world.track("a", ("cd", "ab")) == ["a", "b"]
    judge = world.parse_question("judge last letters: tiger moon A: rx B: rn")
    assert judge.answer == "B" and world.swapped(judge).answer == "A"
    assert world.s1_verdict(judge) == "A"  # both first letters right: the biased heuristic says A


def test_s1_heuristics_are_worse_than_gold():
    letters = world.questions("letters", "test", 300)
    assert sum(world.heuristic_letters(q.words) == q.answer for q in letters) < 0.4 * 300
    judge = world.questions("judge", "test", 300)
    biased = sum(world.s1_verdict(q) == world.s1_verdict(world.swapped(q)) for q in judge)
    assert biased > 0.5 * 300  # the same verdict in both orders: position-inconsistent


@pytest.mark.parametrize("task", world.TASKS)
def test_scratchpad_without_noise_is_right_and_extracts(task):
    rng = random.Random(0)
    for q in world.questions(task, "valid", 50):
        assert world.extract_final(task, world.s2_target(q, rng, 0.0)) == q.answer
        assert world.extract_final(task, world.s1_target(q)) is not None


def test_scratchpad_noise_rate():
    rng = random.Random(0)
    qs = world.questions("letters", "train", 400)
    wrong = sum(world.extract_final("letters", world.s2_target(q, rng, 0.1)) != q.answer for q in qs)
    expected = sum(1 - 0.9 ** len(q.words) for q in qs)
    assert abs(wrong - expected) < 0.25 * expected


@pytest.mark.parametrize(
    "task, text, final",
    [
        ("letters", "tiger r moon n Answer: rn", "rn"),
        ("letters", "rn", "rn"),
        ("letters", "tiger r Answer: ", None),
        ("letters", "Answer: R1", None),
        ("swaps", "ab:b Answer: b", "b"),
        ("swaps", "Answer: f", None),
        ("swaps", "bc", None),
        ("judge", "x Answer: rn A=yes B=no [[A]]", "A"),
        ("judge", "[[B]]", "B"),
        ("judge", "[[A]] [[B]]", None),
        ("judge", "[[C]]", None),
        ("judge", "", None),
    ],
)
def test_extract_final_is_strict(task, text, final):
    assert world.extract_final(task, text) == final


def test_sft_records_pair_both_formats():
    records = world.sft_records(200, seed=0)
    assert len(records) == 200
    modes = {(r["task"], r["mode"]) for r in records}
    assert modes == {(t, m) for t in world.TASKS for m in ("s1", "s2")}
    for r in records:
        user = r["messages"][0]["content"]
        assert user.startswith(world.CONTROL[r["mode"]] + " ")
        assert ("Answer: " in r["messages"][1]["content"]) == (r["mode"] == "s2" and r["task"] != "judge")
