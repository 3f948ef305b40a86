"""What a plotted line shows: its x values (`--x`) and its smoothing (`--smoothing`); no plotting here.

X axes (`X_AXES`), from what `metrics.jsonl` records:

    step      the training step (every record has one)
    time      seconds since the run started: the `time` RunLog writes into every record; a resumed
              run's clock continues where the earlier process's stopped
    samples   cumulative samples, summed from the first per-step count a run logs of
              `SAMPLE_FIELDS`: `num_prompts` (online-rl and its divpo preset: prompts rolled out per
              step, each x the group size in completions), else `num_pairs` (dpo, reward-model: pairs
              trained per step). sft and world-pretrain log no sample count (their batches are tokens).
    tokens    cumulative trained tokens, from the first of `TOKEN_FIELDS` a run logs: `num_tokens`
              (sft, world-pretrain: loss tokens per step), else `train_tokens_per_s` x `train_seconds`
              (online-rl: completion tokens trained per step). dpo and reward-model count pairs, not
              tokens.

A run with `log_every` k > 1 (its `config.yaml`) logs every k-th step: each logged count stands for the
steps since the previous multiple of k. A step that logged no count (an evaluation at step 0, an
online step that made no update) adds nothing: its points share the x of the step before, so an
online-rl curve against tokens has vertical runs where steps made no pairs.

Smoothing is TensorBoard's: an exponential moving average with weight w (0 = off) whose start is
debiased (divided by 1 - w^n after n points), so the first points are not pulled towards 0.
Non-finite values stay gaps and do not enter the average.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import yaml

from selftaught.report.metrics import RunMetrics, Series, is_number

X_AXES = ("step", "samples", "tokens", "time")
X_LABELS = {
    "step": "step",
    "samples": "samples (prompts or pairs)",
    "tokens": "trained tokens",
    "time": "wall time (s)",
}
SAMPLE_FIELDS: tuple[tuple[str, ...], ...] = (("num_prompts",), ("num_pairs",))
"""Per-step sample counts, first logged wins; each a product of the named fields."""
TOKEN_FIELDS: tuple[tuple[str, ...], ...] = (("num_tokens",), ("train_tokens_per_s", "train_seconds"))
"""Per-step trained token counts, first logged wins; each a product of the named fields."""
DEFAULT_SMOOTHING = 0.6
"""TensorBoard's default EMA weight."""


def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's debiased exponential moving average of `values` (weight 0: the values).

    `s_n = (w * m_{n-1} + (1 - w) * v_n) / (1 - w^n)` with `m` the running (biased) average and `n`
    the finite values so far; a non-finite value is its own output and leaves the average unchanged.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {weight}")
    smoothed, last, count = [], 0.0, 0
    for value in values:
        if not math.isfinite(value):
            smoothed.append(value)
            continue
        count += 1
        last = last * weight + (1.0 - weight) * value
        smoothed.append(last / (1.0 - weight**count))
    return smoothed


def x_values(run: RunMetrics, series: Series, x: str) -> list[float]:
    """The x value of each point of `series` (a metric of `run`) on the axis `x` of `X_AXES`."""
    if x == "step":
        return [float(step) for step in series.steps]
    if x == "time":
        return list(series.times)
    if x not in X_AXES:
        raise ValueError(f"unknown x axis {x!r}: choose one of {', '.join(X_AXES)}")
    totals = cumulative(run, SAMPLE_FIELDS if x == "samples" else TOKEN_FIELDS, x)
    return [_total_at(totals, step) for step in series.steps]


def cumulative(run: RunMetrics, fields: tuple[tuple[str, ...], ...], x: str) -> list[tuple[int, float]]:
    """(step, running total) at each step that logged a count of the first of `fields` the run
    logs (a product of its named metrics), each count scaled by the steps it stands for."""
    for names in fields:
        if all(name in run.series and run.series[name].is_numeric for name in names):
            break
    else:
        known = " or ".join(" x ".join(names) for names in fields)
        raise ValueError(
            f"--x {x}: run {run.name} logs no {known} (see selftaught.report.curves); use --x step or time"
        )
    per_step = _product(run.series[name] for name in names)
    every = log_every(run)
    totals, total = [], 0.0
    for step in sorted(per_step):
        count = per_step[step]
        if math.isfinite(count):
            total += count * _steps_logged_by(step, every)
        totals.append((step, total))
    return totals


def _steps_logged_by(step: int, every: int) -> int:
    """How many steps the record of `step` stands for when every `every`-th step is logged (and the
    last): the steps since the previous multiple of `every`. Step 0 (before training) is itself."""
    return step - every * ((step - 1) // every) if step > 0 else 1


def _product(series: Any) -> dict[int, float]:
    """Step -> the product of `series`' values at the steps all of them logged."""
    product: dict[int, float] | None = None
    for one in series:
        values = dict(zip(one.steps, one.values, strict=True))
        product = values if product is None else {s: v * values[s] for s, v in product.items() if s in values}
    return {step: float(value) for step, value in (product or {}).items()}


def _total_at(totals: list[tuple[int, float]], step: int) -> float:
    """The running total after the last counted step at or before `step` (0 before the first)."""
    total = 0.0
    for counted, value in totals:
        if counted > step:
            break
        total = value
    return total


def log_every(run: RunMetrics) -> int:
    """The run's `log_every` from its config.yaml (1 when absent)."""
    config = yaml.safe_load(run.config_text) if run.config_text else None
    value = config.get("log_every") if isinstance(config, dict) else None
    return int(value) if value is not None and is_number(value) and value >= 1 else 1
