"""List tasks with near-miss instructions (the Self-Taught Evaluator's tiny world)."""

import random

import pytest

from selftaught.judges import load_judge_pairs
from selftaught.judges.parsers import parse_bare_verdict
from selftaught.world.list_tasks import (
    HELDOUT_TASKS,
    NEAR_MISS,
    TASKS,
    TRAIN_TASKS,
    ListTask,
    aligned_check,
    check_trace,
    computed_output,
    corrupt,
    judgment,
    make_pair,
    pointwise_record,
    pointwise_trace,
    sample_list_pairs,
    seed_judge_records,
)

DIGITS = (5, 2, 8, 2, 7)


@pytest.mark.parametrize(
    ("instruction", "output"),
    [
        ("sort up", (2, 2, 5, 7, 8)),
        ("sort down", (8, 7, 5, 2, 2)),
        ("reverse", (7, 2, 8, 2, 5)),
        ("reverse half", (2, 5, 8, 2, 7)),
        ("rotate left", (2, 8, 2, 7, 5)),
        ("rotate right", (7, 5, 2, 8, 2)),
        ("evens", (2, 8, 2)),
        ("odds", (5, 7)),
        ("first three", (5, 2, 8)),
        ("last three", (8, 2, 7)),
        ("add one", (6, 3, 9, 3, 8)),
        ("add two", (7, 4, 0, 4, 9)),
        ("dedupe", (5, 2, 8, 7)),
        ("repeats", (2,)),
        ("swap ends", (7, 2, 8, 2, 5)),
        ("swap pairs", (2, 5, 2, 8, 7)),
    ],
)
def test_every_task_on_one_list(instruction, output):
    assert TASKS[instruction](DIGITS) == output


def test_near_misses_pair_up_and_splits_hold_families_out():
    assert all(NEAR_MISS[NEAR_MISS[t]] == t and NEAR_MISS[t] != t for t in TASKS)
    assert set(TRAIN_TASKS) | set(HELDOUT_TASKS) == set(TASKS) and not set(TRAIN_TASKS) & set(HELDOUT_TASKS)
    lists = {
        split: {p.task.digits for p in sample_list_pairs(split, 150, "modified_instruction")}
        for split in ("train", "valid", "test")
    }
    assert (
        not lists["train"] & lists["valid"]
        and not lists["train"] & lists["test"]
        and not lists["valid"] & lists["test"]
    )
    assert {p.task.instruction for p in sample_list_pairs("heldout", 50, "random_corruption")} <= set(
        HELDOUT_TASKS
    )
    assert {p.task.instruction for p in sample_list_pairs("valid", 200, "random_corruption")} == set(
        TRAIN_TASKS
    )


def test_pairs_are_right_against_wrong_and_deterministic():
    for negative in ("modified_instruction", "random_corruption"):
        pairs = sample_list_pairs("train", 200, negative, seed=3)
        assert pairs == sample_list_pairs("train", 200, negative, seed=3)
        assert len({p.task for p in pairs}) == 200
        for pair in pairs:
            assert pair.rejected != pair.chosen and pair.rejected != "none"
            if negative == "modified_instruction":
                near = TASKS[NEAR_MISS[pair.task.instruction]](pair.task.digits)
                assert pair.rejected == " ".join(map(str, near))
            else:
                assert len(pair.rejected.split()) == len(pair.chosen.split())
    # a near miss with the same output gives no pair (sorting a sorted list descending differs; a
    # constant list does not)
    assert make_pair(ListTask("sort up", (3, 3, 3, 3)), "modified_instruction", random.Random(0)) is None


def test_corruption_changes_the_output():
    rng = random.Random(0)
    for _ in range(500):
        output = tuple(rng.randrange(10) for _ in range(rng.randint(1, 7)))
        corrupted = corrupt(output, rng)
        assert corrupted != output and len(corrupted) == len(output)


@pytest.mark.parametrize(
    ("computed", "shown", "check"),
    [
        ("1 2 3", "1 2 3", "1=1+ 2=2+ 3=3+ yes"),
        ("1 2 3", "3 2 1", "1=3- 2=2- 3=1- no"),
        ("1 2 3", "1 2 4", "1=1+ 2=2+ 3=4- no"),
        ("2 4", "2 4 6", "2=2+ 4=4+ _=6- no"),
        ("5 7 9", "5", "5=5+ 7=_- 9=_- no"),
        ("none", "none", "yes"),
        ("none", "3", "_=3- no"),
    ],
)
def test_aligned_check_pairs_elements_and_pads_the_shorter_side(computed, shown, check):
    assert aligned_check(computed, shown) == check


def test_check_trace_names_the_candidate_equal_to_the_computed_output():
    assert check_trace("1 2", "2 1", "1 2") == "1 2 A 1=2- 2=1- no B 1=1+ 2=2+ yes [[B]]"
    assert check_trace("1 2", "1 2", "1 3") == "1 2 A 1=1+ 2=2+ yes B 1=1+ 2=3- no [[A]]"


def test_computed_output_reads_pairwise_and_pointwise_traces():
    assert computed_output(check_trace("1 2", "2 1", "1 2")) == "1 2"
    assert computed_output(pointwise_trace("none", "3")) == "none"
    assert computed_output("[[A]]") is None


def test_pointwise_traces_score_the_one_response_against_the_computed_output():
    assert pointwise_trace("1 2", "1 2") == "1 2 R 1=1+ 2=2+ yes [[1]]"
    assert pointwise_trace("1 2", "2") == "1 2 R 1=2- 2=_- no [[0]]"
    pair = sample_list_pairs("train", 1, "random_corruption", seed=0)[0]
    for rejected in (False, True):
        record = pointwise_record(pair, rejected)
        assert record["messages"][0]["content"].endswith(f" R: {pair.rejected if rejected else pair.chosen}")
        assert record["messages"][-1]["content"].endswith(f"[[{int(not rejected)}]]")


def test_judgment_trace_follows_its_computed_output():
    pair = sample_list_pairs("train", 1, "modified_instruction", seed=0)[0]
    for swapped, winner in ((False, "A"), (True, "B")):
        right = judgment(pair, swapped)
        assert right.startswith(pair.chosen + " ") and parse_bare_verdict(right).verdict == winner
        wrong = judgment(pair, swapped, wrong=True)
        assert wrong.startswith(pair.rejected + " ") and parse_bare_verdict(wrong).verdict != winner


def test_seed_pool_mixes_solutions_and_easy_judgments():
    records = seed_judge_records(400, seed=1)
    judge = [r for r in records if "winner" in r]
    pointwise = [r for r in records if " R: " in r["messages"][0]["content"]]
    assert len(records) == 400 and len(judge) + len(pointwise) == 200
    assert 30 <= len(pointwise) <= 70  # pointwise_share 0.25 of the 200 judging conversations
    assert {r["winner"] for r in judge} == {"A", "B"}
    for record in judge:
        verdict = parse_bare_verdict(record["messages"][1]["content"]).verdict
        assert verdict == record["winner"]


def test_the_no_thinking_pool_keeps_only_the_verdicts():
    thinking, bare = seed_judge_records(200, seed=2), seed_judge_records(200, seed=2, thinking=False)
    for a, b in zip(thinking, bare, strict=True):
        assert a["messages"][0] == b["messages"][0]
        answer = a["messages"][-1]["content"]
        expected = answer[answer.index("[[") :] if "[[" in answer else answer  # solutions stay whole
        assert b["messages"][-1]["content"] == expected


def test_load_judge_pairs_reads_list_pairs_with_sections():
    pairs = load_judge_pairs("world-lists:test:random_corruption", limit=5)
    assert len(pairs) == 5 and all(p.meta["section"] == "random_corruption" for p in pairs)
    assert load_judge_pairs("world-lists:valid", limit=2)[0].meta["negative"] == "modified_instruction"
    with pytest.raises(ValueError, match="negative must be one of"):
        load_judge_pairs("world-lists:test:typo", limit=2)
    with pytest.raises(ValueError, match="split must be one of"):
        load_judge_pairs("world-lists:nope", limit=2)
