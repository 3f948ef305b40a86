"""Tournament selection: bracket shapes by candidate count, None candidates mapped back to their
original index, drops when the judge never parses, retries, the strict `Best: Prediction k` parser."""

import random

import pytest

from selftaught.selection.tournament import (
    JudgeStats,
    judge_chooser,
    parse_best,
    preference_chooser,
    run_tournament,
)


@pytest.mark.parametrize(
    ("count", "calls", "rounds"),
    [
        (9, 4, [3, 3, 3, 3]),  # three brackets, then a final
        (7, 3, [3, 3, 1, 3]),  # a bracket of one walks over
        (4, 2, [3, 1, 2]),
        (3, 1, [3]),
        (2, 1, [2]),
        (1, 0, [1]),
        (10, 5, [3, 3, 3, 1, 3, 1, 2]),  # 4 winners: a bracket of 3 and one of 1, then a final of 2
    ],
)
def test_bracket_shapes_and_judge_calls(count, calls, rounds):
    seen = []

    def choose(indices):
        seen.append(len(indices))
        return 0

    result = run_tournament([f"c{i}" for i in range(count)], choose, rng=random.Random(0))
    assert result.judge_calls == calls == len(seen)
    assert [len(b) for b in result.brackets] == rounds
    assert result.winner is not None and not result.dropped


@pytest.mark.parametrize("seed", range(5))
def test_a_consistent_judge_finds_the_best_candidate_whatever_the_shuffle(seed):
    scores = [0.1, 0.9, 0.3, 0.5, 0.2, 0.7, 0.0, 0.4, 0.6]
    result = run_tournament(scores, preference_chooser(scores), rng=random.Random(seed))
    assert result.winner == 1


def test_none_candidates_never_enter_and_the_winner_is_an_index_of_the_original_list():
    candidates = [None, "wrong", None, "right", "wrong", None]
    scores = [0, 0, 0, 1, 0, 0]
    for seed in range(10):
        result = run_tournament(candidates, preference_chooser(scores), rng=random.Random(seed))
        assert result.winner == 3  # the released code's choose_best could map this to another index
        assert all(candidates[i] is not None for b in result.brackets for i in b)
    empty = run_tournament([None, None], preference_chooser([0, 0]), rng=random.Random(0))
    assert empty.winner is None and not empty.dropped and empty.judge_calls == 0


def test_ties_go_to_the_earlier_position_so_the_seed_decides():
    winners = {
        run_tournament(["a"] * 9, preference_chooser([1] * 9), rng=random.Random(s)).winner for s in range(20)
    }
    assert len(winners) > 1  # the shuffle, not the list order, breaks ties
    again = [
        run_tournament(["a"] * 9, preference_chooser([1] * 9), rng=random.Random(s)).winner for s in range(20)
    ]
    assert again == [
        run_tournament(["a"] * 9, preference_chooser([1] * 9), rng=random.Random(s)).winner for s in range(20)
    ]


def test_an_unparseable_bracket_drops_the_question():
    calls = []

    def choose(indices):
        calls.append(indices)
        return None if len(calls) == 2 else 0

    result = run_tournament(list("abcdefghi"), choose, rng=random.Random(0))
    assert result.dropped and result.winner is None and result.judge_calls == 2
    with pytest.raises(ValueError, match="position 3"):
        run_tournament(list("abc"), lambda indices: 3, rng=random.Random(0))
    with pytest.raises(ValueError, match="bracket_size"):
        run_tournament(list("abc"), lambda indices: 0, rng=random.Random(0), bracket_size=1)


def test_the_llm_chooser_retries_then_gives_up():
    replies = iter(["I think the first.", "Best: Prediction 5", "Best: Prediction 2"])
    stats = JudgeStats()
    choose = judge_chooser(lambda indices, attempt: next(replies), retries=5, stats=stats)
    assert choose([7, 8, 9]) == 1 and (stats.calls, stats.unparsed, stats.failed) == (3, 2, 0)
    never = judge_chooser(lambda indices, attempt: "no idea", retries=2, stats=stats)
    assert never([0, 1]) is None and (stats.calls, stats.unparsed, stats.failed) == (6, 5, 1)
    attempts = []
    judge_chooser(lambda indices, attempt: attempts.append(attempt) or "x", retries=3)([0, 1])
    assert attempts == [0, 1, 2, 3]  # each retry is told its attempt (to sample anew)


@pytest.mark.parametrize(
    ("text", "num", "expected"),
    [
        ("Best: Prediction 1", 3, 0),
        ("Both are close.\nBest: Prediction 3", 3, 2),
        ("best: prediction 2.", 3, 1),
        ("Best: 2", 3, 1),
        ("Best:Prediction 2", 3, 1),
        ("**Best: Prediction 2**", 3, None),  # decorated: not the strict form
        ("Best: Prediction 2\nActually 3", 3, None),  # not the last line
        ("Best: Prediction 0", 3, None),
        ("Best: Prediction 4", 3, None),
        ("Best: Prediction two", 3, None),
        ("Prediction 2 is best", 3, None),
        ("", 3, None),
    ],
)
def test_parse_best_table(text, num, expected):
    assert parse_best(text, num) == expected
