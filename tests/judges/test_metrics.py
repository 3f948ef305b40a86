"""Both-order judge metrics on hand-built verdicts, with each expected value derived in a comment."""

import random

import pytest

from selftaught.judges.metrics import (
    compute_pairwise_metrics,
    compute_pointwise_metrics,
    rewardbench_pointwise_scores,
    rewardbench_scores,
)


def test_always_a_judge_is_right_only_when_chosen_is_shown_first():
    # Chosen shown as A: "A" is right. Chosen shown as B: presented "A" maps back to "B", wrong.
    metrics = compute_pairwise_metrics([("A", "B")] * 5)
    assert metrics.accuracy_chosen_first == 1.0 and metrics.accuracy_chosen_second == 0.0
    assert metrics.accuracy == 0.5 and metrics.consistent_accuracy == 0.0
    assert metrics.flip_rate == 1.0 and metrics.a_rate == 1.0
    assert (metrics.tie_rate, metrics.unparsed_rate, metrics.num_decided_pairs) == (0.0, 0.0, 5)


def test_hand_built_mix():
    verdicts = [
        ("A", "A"),  # right in both orders
        ("A", "B"),  # a flip: presented "A" both times
        ("B", "B"),  # consistently wrong
        (None, "tie"),  # unreadable, then a tie
    ]
    metrics = compute_pairwise_metrics(verdicts)
    assert metrics.num_pairs == 4
    assert metrics.accuracy_chosen_first == 2 / 4  # pairs 1, 2
    assert metrics.accuracy_chosen_second == 1 / 4  # pair 1
    assert metrics.accuracy == pytest.approx(3 / 8)
    assert metrics.consistent_accuracy == 1 / 4
    assert metrics.num_decided_pairs == 3 and metrics.flip_rate == 1 / 3  # pair 2 of pairs 1-3
    assert metrics.tie_rate == 1 / 8 and metrics.unparsed_rate == 1 / 8
    # presented letters: order 1 says A, A, B; order 2 says B, A, A (mapped back A, B, B)
    assert metrics.a_rate == 4 / 6


def test_no_decided_pair_leaves_flip_rate_undefined():
    metrics = compute_pairwise_metrics([(None, None), ("tie", None)])
    assert metrics.flip_rate is None and metrics.a_rate is None and metrics.num_decided_pairs == 0
    assert metrics.accuracy == 0.0 and metrics.unparsed_rate == 3 / 4 and metrics.tie_rate == 1 / 4


def test_mean_accuracy_is_consistent_accuracy_plus_half_the_flips_when_every_pair_is_decided():
    # Per pair: right twice (consistent), right once (a flip), or never; so mean accuracy =
    # consistent + flips / 2, whatever the verdicts.
    rng = random.Random(0)
    verdicts = [(rng.choice("AB"), rng.choice("AB")) for _ in range(200)]
    metrics = compute_pairwise_metrics(verdicts)
    assert metrics.accuracy == pytest.approx(metrics.consistent_accuracy + metrics.flip_rate / 2)


def test_pointwise_metrics_have_no_positions():
    metrics = compute_pointwise_metrics([8.0, 5.0, None, 3.0], [2.0, 5.0, 4.0, 7.0])
    assert metrics.accuracy == 1 / 4 and metrics.consistent_accuracy == 1 / 4  # pair 1
    assert metrics.tie_rate == 1 / 4  # pair 2
    assert metrics.unparsed_rate == 1 / 8  # one of 8 scores
    assert metrics.accuracy_chosen_first is None and metrics.flip_rate is None and metrics.a_rate is None


def test_table_and_errors():
    table = compute_pointwise_metrics([1.0], [0.0]).table()
    assert "| accuracy | 1.000 |" in table and "| num_pairs | 1 |" in table and "| flip_rate | - |" in table
    with pytest.raises(ValueError, match="at least one pair"):
        compute_pairwise_metrics([])
    with pytest.raises(ValueError, match="one chosen and one rejected score per pair"):
        compute_pointwise_metrics([1.0], [])


@pytest.mark.parametrize(
    ("first", "second", "credit"),
    [
        ("A", "A", 1.0),  # right in both orders: right whichever order is drawn
        ("B", "B", 0.0),
        (None, None, 0.5),  # unreadable: a coin flip's credit
        ("tie", "tie", 0.5),
        ("tie", None, 0.5),
    ],
)
def test_rewardbench_credit_when_both_orders_agree(first, second, credit):
    scores = rewardbench_scores([(first, second)], ["p0"], ["chat"])
    assert scores == {"overall": credit, "chat": credit}


def test_rewardbench_draws_one_order_per_pair_by_its_id():
    """An always-A judge (right in the first order only) scores the share of pairs whose coin drew the
    first order: about 0.5, exactly the count the per-id coins give, whatever the other pairs are."""
    ids = [f"pair-{i}" for i in range(400)]
    always_a = [("A", "B")] * len(ids)  # mapped back: chosen shown first wins, chosen shown second loses
    scores = rewardbench_scores(always_a, ids, ["all"] * len(ids))
    drawn_first = sum(random.Random(f"0|{pair_id}").random() < 0.5 for pair_id in ids)
    assert scores["all"] == pytest.approx(drawn_first / len(ids))
    assert 0.4 < scores["all"] < 0.6
    alone = rewardbench_scores(always_a[:1], ids[:1], ["all"])["all"]
    assert alone == (1.0 if random.Random("0|pair-0").random() < 0.5 else 0.0)
    assert rewardbench_scores(always_a, ids, ["all"] * len(ids), seed=1) != scores


def test_rewardbench_overall_is_the_mean_of_sections_not_of_pairs():
    verdicts = [("A", "A")] * 3 + [("B", "B")]
    scores = rewardbench_scores(verdicts, ["a", "b", "c", "d"], ["chat", "chat", "chat", "reasoning"])
    assert scores == {"overall": 0.5, "chat": 1.0, "reasoning": 0.0}


def test_rewardbench_pointwise_and_errors():
    scores = rewardbench_pointwise_scores([9.0, 5.0, None, 3.0], [1.0, 5.0, 2.0, 4.0], ["s"] * 4)
    assert scores == {"overall": (1 + 0.5 + 0.5 + 0) / 4, "s": (1 + 0.5 + 0.5 + 0) / 4}
    with pytest.raises(ValueError, match="one verdict pair, id and section"):
        rewardbench_scores([("A", "A")], ["x", "y"], ["s"])
    with pytest.raises(ValueError, match="one verdict pair"):
        rewardbench_scores([], [], [])
