"""Selectors of NaturalThoughts (papers_A.md §2.1 step 5, §2.5): which annotated traces to distil at a
fixed budget. One interface, `select(pool, budget, seed) -> records`:

    Random()                         uniform without replacement
    StratifiedByDomain()             round-robin over domains (equal counts per domain)
    ClusterUniform(embed)            round-robin over HDBSCAN clusters of the question embeddings
    StrategyWindow(r_min, r_max)     |strategies| in (r_min, r_max] and dense enough first
    LengthPower(c, tau)              keep-probability p = min(1, (l / C)^tau) as sampling weights
    Verbosity(mode)                  low: from 0 up; high: from 10 down; med: 5 first, then 4/6, ...
    Agreement(mode)                  the disagree (or agree) subset first
    NearestNeighbours(embed, seeds)  each seed question's nearest pool questions, in turn

Shared rules, so that arms compare at an equal budget:
- The budget is filled whenever the pool allows it: records a rule prefers come first, the ones it
  down-samples follow (a "tier" each, in random order within the tier), so `budget >= len(pool)`
  returns the whole pool under every selector, and an empty pool returns [].
- Records whose annotation a rule needs is None (the annotator's reply did not parse) come last.
- Ties (equal score, equal group size) are broken by a seeded shuffle, never by pool order alone;
  the same (pool, budget, seed) gives the same records.
- The selection is returned in pool order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

Record = dict[str, Any]
Embed = Callable[[Sequence[str]], np.ndarray]
"""Texts -> one row per text (MiniLM: `models.embeddings.Embedder().encode`)."""
MISSING = math.inf
"""The tier of a record whose needed annotation is None: after every real tier."""


class Selector(Protocol):
    def select(self, pool: Sequence[Record], budget: int, seed: int) -> list[Record]: ...


def check_budget(budget: int) -> None:
    if not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget must be an integer >= 0, got {budget!r}")


def ranked(pool: Sequence[Record], budget: int, seed: int, key: Callable[[Record], float]) -> list[Record]:
    """The `budget` records of lowest `key` (ties in a seeded random order), in pool order."""
    check_budget(budget)
    rng = random.Random(seed)
    noise = [rng.random() for _ in pool]
    order = sorted(range(len(pool)), key=lambda i: (key(pool[i]), noise[i]))
    return [pool[i] for i in sorted(order[:budget])]


def round_robin(
    pool: Sequence[Record], budget: int, seed: int, group: Callable[[Record], Any]
) -> list[Record]:
    """Equal counts per group: one record of each group in turn (groups shuffled by the seed, records
    within a group too) until the budget is met; records whose group is None come last."""
    check_budget(budget)
    rng = random.Random(seed)
    groups: dict[Any, list[int]] = {}
    for i, record in enumerate(pool):
        groups.setdefault(group(record), []).append(i)
    missing = groups.pop(None, [])
    names = sorted(groups, key=str)
    rng.shuffle(names)
    for name in names:
        rng.shuffle(groups[name])
    rng.shuffle(missing)
    order = [
        groups[name][turn]
        for turn in range(max(map(len, groups.values()), default=0))
        for name in names
        if turn < len(groups[name])
    ]
    return [pool[i] for i in sorted([*order, *missing][:budget])]


@dataclass(frozen=True)
class Random:
    def select(self, pool: Sequence[Record], budget: int, seed: int) -> list[Record]:
        return ranked(pool, budget, seed, lambda r: 0.0)


@dataclass(frozen=True)
class StratifiedByDomain:
    field: str = "domain"

    def select(self, pool: Sequence[Record], budget: int, seed: int) -> list[Record]:
        return round_robin(pool, budget, seed, lambda r: r.get(self.field))


@dataclass(frozen=True)
class ClusterUniform:
    """HDBSCAN (scikit-learn) over the embeddings of `text_field`; noise points (label -1) come last."""

    embed: Embed
    min_cluster_size: int = 5
    text_field: str = "question"

    def select(self, pool: Sequence[Record], budget: int, seed: int) -> list[Record]:
        check_budget(budget)
        labels = self.clusters(pool)
        by_id = {id(r): (None if label < 0 else int(label)) for r, label in zip(pool, labels, strict=True)}
        return round_robin(pool, budget, seed, lambda r: by_id[id(r)])

    def clusters(self, pool: Sequence[Record]) -> list[int]:
        """One HDBSCAN label per record (-1: noise); all noise when the pool is too small to cluster."""
        from sklearn.cluster import HDBSCAN

        if len(pool) < max(self.min_cluster_size, 2):
            return [-1] * len(pool)
        vectors = np.asarray(self.embed([r[self.text_field] for r in pool]), dtype=np.float64)
        return [
            int(x) for x in HDBSCAN(min_cluster_size=self.min_cluster_size, copy=True).fit_predict(vectors)
        ]


@dataclass(frozen=True)
class StrategyWindow:
    """First the records with `r_min < |strategies| <= r_max` and, with `density_filter`, at least
    `min_density` distinct strategies per reasoning step (the paper's "fewer unique strategies than
    steps" is `min_density=1`); then the down-sampled rest; then unannotated records."""

    r_min: int = 4
    r_max: int = 8
    density_filter: bool = True
    min_density: float = 1.0

    def tier(self, record: Record) -> float:
        strategies, steps = record.get("strategies"), record.get("num_steps")
        if strategies is None or (self.density_filter and steps is None):
            return MISSING
        inside = self.r_min < len(strategies) <= self.r_max
        dense = not self.density_filter or len(strategies) >= self.min_density * (steps or 0)
        return 0.0 if inside and dense else 1.0

    def select(self, pool: Sequence[Record], budget: int, seed: int) -> list[Record]:
        return ranked(pool, budget, seed, self.tier)


def trace_length(record: Record) -> int | None:
    """Response tokens of a trace (think + answer), None when not counted."""
    think, answer = record.get("num_tokens_think"), record.get("num_tokens_answer")
    return None if think is None or answer is None else think + answer


@dataclass(frozen=True)
class LengthPower:
    """Keep-probability `p = min(1, (l / c)^tau)` (C 5000, tau 2.5 in the paper), realised at a fixed
    budget as weighted sampling without replacement with weights p (Efraimidis-Spirakis keys
    `u^(1/p)`): long traces first, mostly. Zero-length and uncounted traces come last."""

    c: float = 5000.0
    tau: float = 2.5

    def weight(self, record: Record) -> float:
        length = trace_length(record)
        return 0.0 if not length else min(1.0, (length / self.c) ** self.tau)

    def select(self, pool: Sequence[Record], budget: int, seed: int) -> list[Record]:
        rng = random.Random(seed)
        keys = {id(r): self._key(self.weight(r), rng.random()) for r in pool}
        return ranked(pool, budget, seed + 1, lambda r: keys[id(r)])

    @staticmethod
    def _key(weight: float, u: float) -> float:
        if weight <= 0.0:
            return MISSING
        return -math.log(max(u, 1e-300)) / weight  # = -log(u^(1/w)): ascending is descending u^(1/w)


@dataclass(frozen=True)
class Verbosity:
    mode: Literal["low", "med", "high"] = "med"

    def score(self, record: Record) -> float:
        value = record.get("verbosity")
        if value is None:
            return MISSING
        return {"low": value, "high": -value, "med": abs(value - 5)}[self.mode]

    def select(self, pool: Sequence[Record], budget: int, seed: int) -> list[Record]:
        if self.mode not in ("low", "med", "high"):
            raise ValueError(f"Verbosity.mode must be low, med or high, got {self.mode!r}")
        return ranked(pool, budget, seed, self.score)


@dataclass(frozen=True)
class Agreement:
    """The `disagree` subset (the weak model's answer differs: hard) or the `agree` one first."""

    mode: Literal["agree", "disagree"] = "disagree"

    def tier(self, record: Record) -> float:
        agree = record.get("agree")
        if agree is None:
            return MISSING
        return 0.0 if agree == (self.mode == "agree") else 1.0

    def select(self, pool: Sequence[Record], budget: int, seed: int) -> list[Record]:
        if self.mode not in ("agree", "disagree"):
            raise ValueError(f"Agreement.mode must be agree or disagree, got {self.mode!r}")
        return ranked(pool, budget, seed, self.tier)


@dataclass(frozen=True)
class NearestNeighbours:
    """Pool questions nearest (cosine) to a seed set (LIMO, s1K), each seed's next nearest in turn."""

    embed: Embed
    seeds: tuple[str, ...] = field(default_factory=tuple)
    text_field: str = "question"

    def select(self, pool: Sequence[Record], budget: int, seed: int) -> list[Record]:
        check_budget(budget)
        if not self.seeds:
            raise ValueError("NearestNeighbours needs seed questions (seeds=...), got none")
        if not pool or budget == 0:
            return []
        rng = random.Random(seed)
        noise = np.array([rng.random() for _ in pool]) * 1e-9
        similarity = (
            _unit(self.embed(list(self.seeds))) @ _unit(self.embed([r[self.text_field] for r in pool])).T
        )
        rankings = [list(np.lexsort((-noise, -np.round(row, 6)))) for row in similarity]
        chosen: list[int] = []
        taken: set[int] = set()
        cursors = [0] * len(rankings)
        while len(chosen) < min(budget, len(pool)):
            for s, ranking in enumerate(rankings):
                while cursors[s] < len(ranking) and ranking[cursors[s]] in taken:
                    cursors[s] += 1
                if cursors[s] < len(ranking) and len(chosen) < budget:
                    taken.add(ranking[cursors[s]])
                    chosen.append(int(ranking[cursors[s]]))
        return [pool[i] for i in sorted(chosen)]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def selection_stats(selected: Sequence[Record]) -> dict[str, float]:
    """What a selection holds: size, mean trace tokens, share of disagreements, mean strategies."""
    lengths = [x for x in map(trace_length, selected) if x is not None]
    labelled = [r["agree"] for r in selected if r.get("agree") is not None]
    strategies = [len(r["strategies"]) for r in selected if r.get("strategies") is not None]
    return {
        "num": float(len(selected)),
        "mean_tokens": float(np.mean(lengths)) if lengths else float("nan"),
        "disagree_share": float(np.mean([not a for a in labelled])) if labelled else float("nan"),
        "mean_strategies": float(np.mean(strategies)) if strategies else float("nan"),
    }
