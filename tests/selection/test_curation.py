"""The System 2 curation filters, table-driven: ties, empty pools, all-unparseable samples, thresholds."""

import pytest

from selftaught.selection.curation import (
    first_targets,
    majority_targets,
    parse_usc,
    perturbation_targets,
    swap_verdict,
    usc_targets,
)


@pytest.mark.parametrize(
    "finals, min_share, targets, dropped",
    [
        ([["a"] * 5 + ["b"] * 3], 5 / 8, ["a"], {}),  # exactly the threshold
        ([["a"] * 4 + ["b"] * 4], 0.0, [None], {"num_tied": 1}),  # a tie is no majority
        ([["a"] * 4 + [None] * 4], 5 / 8, [None], {"num_below_share": 1}),  # unparsed count against
        ([["a"] * 4 + [None] * 4], 0.5, ["a"], {}),
        ([[None] * 8], 0.0, [None], {"num_no_answer": 1}),  # all unparseable
        ([[]], 0.0, [None], {"num_no_answer": 1}),  # no sample at all
        ([], 0.5, [], {}),  # empty pool
        ([["x"], ["y", "y", "z"], ["q", "r"]], 0.6, ["x", "y", None], {"num_tied": 1}),
    ],
)
def test_majority_targets(finals, min_share, targets, dropped):
    got, counts = majority_targets(finals, min_share)
    assert got == targets
    assert counts["num_items"] == len(finals) and counts["num_kept"] == sum(t is not None for t in targets)
    for key in ("num_no_answer", "num_tied", "num_below_share"):
        assert counts[key] == dropped.get(key, 0), key


def test_majority_counts_unparsed_samples():
    _, counts = majority_targets([["a", None, None], [None]], 0.0)
    assert counts["num_unparsed"] == 3


@pytest.mark.parametrize(
    "text, n, index",
    [
        ("The most consistent response is Response 3", 5, 2),
        ("The most consistent response is Response 1. It agrees.", 1, 0),
        ("The most consistent response is Response 0", 5, None),
        ("The most consistent response is Response 6", 5, None),
        (
            "The most consistent response is Response 2 ... The most consistent response is Response 3",
            5,
            None,
        ),
        ("Response 2 is the most consistent", 5, None),
        ("the most consistent response is response 2", 5, None),
        ("", 5, None),
    ],
)
def test_parse_usc(text, n, index):
    assert parse_usc(text, n) == index


@pytest.mark.parametrize(
    "finals, choices, targets, counts",
    [
        ([["1", "2", "2"]], [1], ["2"], {"num_kept": 1}),
        ([["1", None, "2"]], [1], [None], {"num_chosen_unparsed": 1}),
        ([["1", "2"]], [None], [None], {"num_choice_unparsed": 1}),
        ([], [], [], {}),
        ([[None, None]], [0], [None], {"num_chosen_unparsed": 1}),
    ],
)
def test_usc_targets(finals, choices, targets, counts):
    got, stats = usc_targets(finals, choices)
    assert got == targets
    for key in ("num_kept", "num_choice_unparsed", "num_chosen_unparsed"):
        assert stats[key] == counts.get(key, 0), key


def test_usc_targets_needs_one_choice_per_input():
    with pytest.raises(ValueError, match="one per input"):
        usc_targets([["1"]], [])


@pytest.mark.parametrize(
    "finals, swapped, targets, counts",
    [
        ([["A"]], [["B"]], ["A"], {"num_kept": 1}),  # consistent: A first = B after the swap
        ([["A"]], [["A"]], [None], {"num_disagree": 1}),  # position bias: A in both orders
        ([["B", "B", "A"]], [["A", "A", "A"]], ["B"], {"num_kept": 1}),  # majority per side
        ([["A", "B"]], [["B"]], [None], {"num_no_answer": 1}),  # a tied side has no answer
        ([[None]], [["A"]], [None], {"num_no_answer": 1}),
        ([["C"]], [["C"]], ["C"], {"num_kept": 1}),  # a tie verdict maps to itself
        ([], [], [], {}),
    ],
)
def test_perturbation_targets(finals, swapped, targets, counts):
    got, stats = perturbation_targets(finals, swapped, swap_verdict)
    assert got == targets
    for key in ("num_kept", "num_no_answer", "num_disagree"):
        assert stats[key] == counts.get(key, 0), key


def test_perturbation_threshold_applies_to_each_side():
    finals, swapped = [["A", "A", "B", "B", "A"]], [["B"] * 5]
    assert perturbation_targets(finals, swapped, swap_verdict, min_share=0.6)[0] == ["A"]
    assert perturbation_targets(finals, swapped, swap_verdict, min_share=0.8)[0] == [None]


@pytest.mark.parametrize(
    "finals, targets",
    [([["x", "y"]], ["x"]), ([[None, "y"]], [None]), ([[]], [None]), ([], [])],
)
def test_first_targets_is_no_filter(finals, targets):
    got, stats = first_targets(finals)
    assert got == targets and stats["num_kept"] == sum(t is not None for t in targets)
