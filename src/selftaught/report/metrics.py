"""A run's metrics as series, grouped into report panels by name (no plotting here).

`metrics.jsonl` holds one record per `RunLog.log` call, and different calls log different keys
(training steps, rollout diagnostics, validation), so every key is its own `Series` of
(step, value) points, each with the wall time of the record that logged it. Each numeric metric goes to the panel of the first rule in `PANEL_RULES`
that matches its name; a name no rule matches, and any metric with a value that is not a number,
goes to "other", which the report lists as a table: nothing is dropped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

import yaml

from selftaught.runlog import read_metrics

OTHER = "other"
"""Panel name of the metrics no panel plots."""
STDERR = "stderr"
"""Rule target of `*stderr` metrics: drawn as the error bars of their `*accuracy` metric."""


@dataclass(frozen=True)
class Panel:
    """One plot of the report: the metrics its rules match, against the step."""

    name: str
    """File stem of the plot (`<name>.png`)."""
    title: str
    ylabel: str
    better: Literal["max", "min"] | None = None
    """The extreme that is best (the summary's `best` column); None: neither is."""
    smooth: bool = True
    """Per-step noise worth an EMA; False for evaluations (error bars), schedules and clocks."""


PANELS = (
    Panel("reward", "Reward of the rollouts", "mean reward", "max"),
    Panel("accuracy", "Validation accuracy (error bars: standard error)", "accuracy", "max", smooth=False),
    Panel("preference", "Chosen vs rejected rewards", "reward"),
    Panel("preference_accuracy", "Training preference accuracy", "share of pairs ranked right", "max"),
    Panel("length", "Lengths", "tokens"),
    Panel("entropy", "Entropy", "nats per token"),
    Panel("staleness", "Staleness of the rollouts", "policy versions behind"),
    Panel("pair_yield", "Pair yield", "share of prompts with a pair", "max"),
    Panel("counts", "Counts per step", "count"),  # the legend names them: prompts, pairs, skipped, ...
    Panel("loss", "Loss", "loss", "min"),
    Panel("logps", "Sequence log-probabilities", "log p"),
    Panel("kl", "KL to the reference", "k3 estimate"),
    Panel("ratio", "Policy ratio and clipped share", "ratio / share"),
    Panel("grad_norm", "Gradient norm (before clipping)", "L2 norm"),
    Panel("lr", "Learning rate", "lr", smooth=False),
    Panel("loss_units", "Loss denominator per step", "tokens (pairs for DPO)"),
    Panel("throughput", "Throughput", "per second", "max"),
    Panel("seconds", "Seconds per step", "s", "min"),
    Panel("elapsed", "Elapsed time", "s since the run started", smooth=False),
)
PANEL_BY_NAME = {panel.name: panel for panel in PANELS}

PANEL_RULES: tuple[tuple[str, str], ...] = (
    ("*stderr", STDERR),
    ("reward_num_none", "counts"),
    ("reward_accuracy", "preference_accuracy"),  # DPO: share of pairs with a positive implicit margin
    ("accuracy", "preference_accuracy"),  # reward model training: share of pairs with r_c > r_r
    ("reward_chosen", "preference"),
    ("reward_rejected", "preference"),
    ("chosen_reward", "preference"),
    ("rejected_reward", "preference"),
    ("*margin", "preference"),
    ("reward", "reward"),
    ("reward_*", "reward"),  # per task, e.g. reward_arith
    ("*accuracy*", "accuracy"),
    ("*_mean_tokens", "length"),
    ("rollout_length", "length"),
    ("length_*", "length"),
    ("*entropy", "entropy"),
    ("staleness*", "staleness"),
    ("pair_yield", "pair_yield"),
    ("num_tokens", "loss_units"),
    ("num_*", "counts"),
    ("skipped_*", "counts"),
    ("loss", "loss"),
    ("*_loss", "loss"),
    ("nll", "loss"),
    ("logps_*", "logps"),
    ("kl", "kl"),
    ("ratio", "ratio"),
    ("clip_*", "ratio"),
    ("grad_norm", "grad_norm"),
    ("lr", "lr"),
    ("*_per_s", "throughput"),
    ("*seconds", "seconds"),
    ("time", "elapsed"),
    ("val_*", "accuracy"),  # `eval_metrics` names group accuracies val_<group>, e.g. val_level1
)
"""(fnmatch pattern, panel name), first match wins: specific names before the patterns they fall under."""


@dataclass
class Series:
    """One metric of one run, sorted by step."""

    steps: list[int]
    values: list[Any]
    """JSON values; the strings `RunLog` writes for non-finite floats ("nan", "inf") are floats again."""
    times: list[float]
    """Seconds since the run started when each value was logged (`run_clock`); NaN where unknown."""

    @property
    def is_numeric(self) -> bool:
        return all(is_number(value) for value in self.values)


@dataclass
class RunMetrics:
    """A run directory read back: its metrics and its config."""

    name: str
    """Label of the run in tables and legends (the directory name by default)."""
    run_dir: Path
    series: dict[str, Series]
    """Metric name -> series, in order of first appearance (`step` is the x axis, not a metric)."""
    config_text: str | None
    """The run's `config.yaml` as written, None when there is none."""


def load_run(run_dir: str | Path, name: str | None = None) -> RunMetrics:
    """Read `<run_dir>/metrics.jsonl` (and `config.yaml` when present); ValueError naming the file
    when it is missing, empty or not JSON lines."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.jsonl"
    try:
        records = read_metrics(run_dir)
    except FileNotFoundError as err:
        raise ValueError(f"{path} does not exist: pass the directory a selftaught recipe wrote") from err
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} has a line that is not JSON ({err}); a run killed mid-write can leave a partial "
            "last line: delete that line"
        ) from err
    if not records:
        raise ValueError(f"{path} is empty: the run has logged no metrics yet")
    config = run_dir / "config.yaml"
    return RunMetrics(
        name=name or run_dir.resolve().name,
        run_dir=run_dir,
        series=collect_series(records, path),
        config_text=config.read_text(encoding="utf-8") if config.exists() else None,
    )


def collect_series(records: list[dict[str, Any]], source: Path | str = "metrics.jsonl") -> dict[str, Series]:
    """One series per key of `records` but `step`. A key logged twice at one step keeps the later
    value: a resumed run logs again the steps after its last checkpoint, and the rerun is what counts."""
    points: dict[str, dict[int, tuple[Any, float]]] = {}
    for index, (record, time) in enumerate(zip(records, run_clock(records), strict=True)):
        if not isinstance(record.get("step"), int):
            raise ValueError(f"{source}: record {index} has no integer `step`; log metrics with RunLog.log")
        for key, value in record.items():
            if key != "step":
                points.setdefault(key, {})[record["step"]] = (_from_json(value), time)
    series = {}
    for key, by_step in points.items():
        steps = sorted(by_step)
        series[key] = Series(steps, [by_step[s][0] for s in steps], [by_step[s][1] for s in steps])
    return series


def run_clock(records: list[dict[str, Any]]) -> list[float]:
    """Seconds since the run started of each record, from the `time` RunLog writes (NaN without
    one). A resumed process starts its clock at 0 again: its times continue the earlier process's."""
    clock, offset, last = [], 0.0, 0.0
    for record in records:
        time = record.get("time")
        if time is None or not is_number(time):
            clock.append(math.nan)
            continue
        if time + offset < last:  # a new process (resume): its clock restarts
            offset = last
        last = time + offset
        clock.append(last)
    return clock


def is_number(value: Any) -> bool:
    """An int or a float; booleans (flags such as `ref_logps_reused`) are not plotted as numbers."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _from_json(value: Any) -> Any:
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def assign_panel(name: str) -> str | None:
    """The panel (or `STDERR`) of metric `name` by the first matching `PANEL_RULES` pattern; None if none."""
    for pattern, panel in PANEL_RULES:
        if fnmatchcase(name, pattern):
            return panel
    return None


def stderr_name(name: str) -> str | None:
    """The metric holding the standard error of accuracy metric `name` (`val_accuracy` -> `val_stderr`)."""
    return name.removesuffix("accuracy") + "stderr" if name.endswith("accuracy") else None


def assign_panels(runs: list[RunMetrics]) -> dict[str, str]:
    """Metric name -> panel name for every metric of `runs`, in order of first appearance: `OTHER`
    when no rule matches or some value is not a number. A `*stderr` metric goes to the panel of
    its `*accuracy` metric (as error bars) when that is logged, else to `OTHER`."""
    names = list(dict.fromkeys(name for run in runs for name in run.series))
    numeric = {name: all(run.series[name].is_numeric for run in runs if name in run.series) for name in names}
    panels: dict[str, str] = {}
    for name in names:
        panel = assign_panel(name) if numeric[name] else None
        if panel == STDERR:
            accuracy = name.removesuffix("stderr") + "accuracy"
            panel = assign_panel(accuracy) if numeric.get(accuracy) else None
        panels[name] = panel or OTHER
    return panels


def panel_lines(panels: dict[str, str]) -> list[tuple[Panel, list[str]]]:
    """The panels that have data, in `PANELS` order, each with the metrics drawn as its lines
    (error-bar metrics are drawn with their accuracy, not as lines)."""
    lines = [
        (panel, [name for name, p in panels.items() if p == panel.name and assign_panel(name) != STDERR])
        for panel in PANELS
    ]
    return [(panel, names) for panel, names in lines if names]


@dataclass
class SummaryRow:
    """One metric of one run in the summary table."""

    run: str
    metric: str
    panel: str
    num_points: int
    first: Any
    last: Any
    best: float | None
    """Max or min (the panel's `better`) over the finite values; None when the panel has no direction."""


def summarize(runs: list[RunMetrics], panels: dict[str, str]) -> list[SummaryRow]:
    """First, last and best value of every metric of every run, ordered by panel (`PANELS`, then
    `OTHER`), then by first appearance."""
    order = {name: index for index, name in enumerate([*PANEL_BY_NAME, OTHER])}
    rows = []
    for name, panel in sorted(panels.items(), key=lambda item: order[item[1]]):
        better = PANEL_BY_NAME[panel].better if panel != OTHER and assign_panel(name) != STDERR else None
        for run in runs:
            series = run.series.get(name)
            if series is not None:
                best = _best(series.values, better)
                rows.append(
                    SummaryRow(
                        run.name, name, panel, len(series.values), series.values[0], series.values[-1], best
                    )
                )
    return rows


def _best(values: list[Any], better: Literal["max", "min"] | None) -> float | None:
    finite = [v for v in values if is_number(v) and math.isfinite(v)]
    if better is None or not finite:
        return None
    return max(finite) if better == "max" else min(finite)


def config_differences(runs: list[RunMetrics]) -> list[tuple[str, list[str]]]:
    """Config keys (dotted, e.g. `rollouts.num_prompts`) whose values differ between `runs`, with
    each run's value as text ("(absent)" where a run has no such key or no config)."""
    flat = [_flatten(yaml.safe_load(run.config_text) or {}) if run.config_text else {} for run in runs]
    keys = list(dict.fromkeys(key for config in flat for key in config))
    differences = []
    for key in keys:
        values = [_config_value(config[key]) if key in config else "(absent)" for config in flat]
        if len(set(values)) > 1:
            differences.append((key, values))
    return differences


def _config_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
