"""Table-driven tests of the NaturalThoughts selectors: preferences, ties, empty pools, budgets over the pool."""

from __future__ import annotations

import numpy as np
import pytest

from selftaught.selection.traces import (
    Agreement,
    ClusterUniform,
    LengthPower,
    NearestNeighbours,
    Random,
    StrategyWindow,
    StratifiedByDomain,
    Verbosity,
    selection_stats,
)


def rec(i: int, **fields):
    return {"id": f"q{i}", "question": f"question {i}", **fields}


def ids(records):
    return [r["id"] for r in records]


def fake_embed(texts):
    """Two well-separated blobs: questions containing 'alpha' vs 'beta', jittered by their index."""
    rows = []
    for t in texts:
        base = np.array([10.0, 0.0]) if "alpha" in t else np.array([0.0, 10.0])
        k = int(t.split()[-1])
        rows.append(base + 0.01 * np.array([k % 7, k % 5]))
    return np.array(rows)


POOL_AGREE = [
    rec(0, agree=True),
    rec(1, agree=False),
    rec(2, agree=None),
    rec(3, agree=False),
    rec(4, agree=True),
]
POOL_VERB = [rec(i, verbosity=v) for i, v in enumerate([0, 5, 10, 4, 6, None, 5])]
POOL_STRAT = [
    rec(0, strategies=["a"], num_steps=1),  # |S| = 1 <= r_min
    rec(1, strategies=["a", "b"], num_steps=2),  # inside, dense
    rec(2, strategies=["a", "b"], num_steps=5),  # inside, sparse (2 < 0.5 * 5)
    rec(3, strategies=["a", "b", "c"], num_steps=3),  # inside, dense
    rec(4, strategies=None, num_steps=3),  # unannotated
    rec(5, strategies=["a", "b", "c", "d"], num_steps=4),  # > r_max
]
POOL_LEN = [
    rec(i, num_tokens_think=t, num_tokens_answer=2 * (t > 0)) for i, t in enumerate([10, 200, 0, 100, 300])
] + [rec(5, num_tokens_think=None, num_tokens_answer=None)]

CASES = [
    # selector, pool, budget, seed, expected ids (order = pool order)
    ("disagree first", Agreement("disagree"), POOL_AGREE, 2, 0, ["q1", "q3"]),
    ("agree first", Agreement("agree"), POOL_AGREE, 2, 0, ["q0", "q4"]),
    (
        "disagree fills with agree, unknown last",
        Agreement("disagree"),
        POOL_AGREE,
        4,
        0,
        ["q0", "q1", "q3", "q4"],
    ),
    ("budget over pool: all", Agreement("disagree"), POOL_AGREE, 99, 0, ["q0", "q1", "q2", "q3", "q4"]),
    ("empty pool", Agreement("disagree"), [], 5, 0, []),
    ("zero budget", Random(), POOL_AGREE, 0, 0, []),
    ("verbosity low", Verbosity("low"), POOL_VERB, 2, 0, ["q0", "q3"]),
    ("verbosity high", Verbosity("high"), POOL_VERB, 2, 0, ["q2", "q4"]),
    ("verbosity med: both 5s (a tie) first", Verbosity("med"), POOL_VERB, 2, 0, ["q1", "q6"]),
    ("verbosity unparsed last", Verbosity("low"), POOL_VERB, 6, 0, ["q0", "q1", "q2", "q3", "q4", "q6"]),
    ("strategy window (1, 3] dense", StrategyWindow(1, 3, True, 0.5), POOL_STRAT, 2, 0, ["q1", "q3"]),
    ("strategy window no density", StrategyWindow(1, 3, False), POOL_STRAT, 3, 0, ["q1", "q2", "q3"]),
    (
        "strategy window unannotated last",
        StrategyWindow(1, 3, True, 0.5),
        POOL_STRAT,
        5,
        0,
        ["q0", "q1", "q2", "q3", "q5"],
    ),
    ("length: zero and uncounted last", LengthPower(c=50, tau=2.5), POOL_LEN, 4, 0, ["q0", "q1", "q3", "q4"]),
    ("length: clipped weights all 1", LengthPower(c=1, tau=2.5), POOL_LEN, 4, 0, ["q0", "q1", "q3", "q4"]),
]


@pytest.mark.parametrize(
    ("name", "selector", "pool", "budget", "seed", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_selector_table(name, selector, pool, budget, seed, expected):
    assert ids(selector.select(pool, budget, seed)) == expected


@pytest.mark.parametrize(
    "selector",
    [
        Random(),
        StratifiedByDomain(),
        Agreement(),
        Verbosity("med"),
        StrategyWindow(),
        LengthPower(),
        ClusterUniform(fake_embed, 2),
    ],
)
def test_every_selector_is_deterministic_sized_and_a_subset(selector):
    pool = [
        rec(
            i,
            domain="alpha" if i % 3 else "beta",
            agree=bool(i % 2),
            verbosity=i % 11,
            strategies=["a"] * (i % 2),
            num_steps=i % 4,
            num_tokens_think=i,
            num_tokens_answer=1,
        )
        for i in range(30)
    ]
    for r in pool:
        r["question"] = f"{r['domain']} {r['id'][1:]}"
    first, again = selector.select(pool, 10, 3), selector.select(pool, 10, 3)
    assert ids(first) == ids(again) and len(first) == 10 and len(set(ids(first))) == 10
    assert set(ids(first)) <= set(ids(pool))
    assert ids(first) == [r["id"] for r in pool if r["id"] in set(ids(first))]  # pool order
    assert len(selector.select(pool, 100, 3)) == 30 and selector.select([], 4, 3) == []


def test_ties_are_broken_by_the_seed_not_pool_order():
    pool = [rec(i, verbosity=5) for i in range(20)]
    picks = {tuple(ids(Verbosity("med").select(pool, 5, seed))) for seed in range(6)}
    assert len(picks) > 1


def test_negative_budget_is_an_error():
    with pytest.raises(ValueError, match="budget"):
        Random().select([rec(0)], -1, 0)


def test_stratified_by_domain_is_uniform_over_domains():
    pool = (
        [rec(i, domain="a") for i in range(20)]
        + [rec(20 + i, domain="b") for i in range(4)]
        + [rec(30, domain=None)]
    )
    picked = StratifiedByDomain().select(pool, 8, 0)
    assert sum(r["domain"] == "a" for r in picked) == 4 and sum(r["domain"] == "b" for r in picked) == 4
    picked = StratifiedByDomain().select(pool, 12, 0)  # b runs out at 4: a fills
    assert sum(r["domain"] == "b" for r in picked) == 4 and all(r["domain"] is not None for r in picked)
    assert len(StratifiedByDomain().select(pool, 25, 0)) == 25  # the unparsed one last


def test_cluster_uniform_balances_hdbscan_clusters():
    pool = [rec(i, question=f"alpha {i}") for i in range(40)] + [
        rec(40 + i, question=f"beta {i}") for i in range(8)
    ]
    selector = ClusterUniform(fake_embed, min_cluster_size=3)
    labels = selector.clusters(pool)
    assert len({label for label in labels if label >= 0}) >= 2
    picked = selector.select(pool, 16, 0)
    beta = sum("beta" in r["question"] for r in picked)
    assert beta >= 6  # random would give about 16 * 8 / 48 = 2.7


def test_cluster_uniform_tiny_pool_is_all_noise():
    assert ClusterUniform(fake_embed, min_cluster_size=5).clusters([rec(0), rec(1)]) == [-1, -1]


def test_length_power_prefers_long_traces():
    pool = [rec(i, num_tokens_think=10 if i < 50 else 100, num_tokens_answer=0) for i in range(100)]
    long_share = np.mean(
        [
            sum(r["num_tokens_think"] == 100 for r in LengthPower(c=5000, tau=2.5).select(pool, 20, s))
            for s in range(10)
        ]
    )
    assert long_share > 18  # weights 10^-2.5 vs 1: nearly all 20 from the long half


def test_nearest_neighbours_round_robin_over_seeds():
    pool = [rec(i, question=f"alpha {i}") for i in range(5)] + [
        rec(5 + i, question=f"beta {i}") for i in range(5)
    ]
    picked = NearestNeighbours(fake_embed, ("alpha 0", "beta 0")).select(pool, 4, 0)
    assert (
        sum("alpha" in r["question"] for r in picked) == 2
        and sum("beta" in r["question"] for r in picked) == 2
    )
    assert len(NearestNeighbours(fake_embed, ("alpha 0",)).select(pool, 50, 0)) == 10
    with pytest.raises(ValueError, match="seed questions"):
        NearestNeighbours(fake_embed, ()).select(pool, 2, 0)


def test_selection_stats():
    stats = selection_stats(
        [
            rec(0, agree=False, num_tokens_think=3, num_tokens_answer=1, strategies=["a"]),
            rec(1, agree=True, num_tokens_think=5, num_tokens_answer=1, strategies=[]),
        ]
    )
    assert stats == {"num": 2.0, "mean_tokens": 5.0, "disagree_share": 0.5, "mean_strategies": 0.5}
