"""A `Rubric`: weighted reward functions, routed by task in mixed batches, with a per-function breakdown.

    rubric = Rubric({
        "arith": [world_answer_reward],
        "gsm8k": [(math_answer_reward, 1.0), (tags_reward(["think"]), 0.2)],
    })
    result = rubric.score(prompts, completions)  # records; or rubric.score_batch(...) on TRL inputs
    result.scores[i].value, result.scores[i].breakdown, result.metrics()

The value of a sample is the weighted sum of the functions of its task (its `task` column; a rubric
with a single task applies it to every sample). Weights are not normalised.

None policy: when a function with a non-zero weight cannot score a sample (returns None), the
sample's value is None too: a partial sum would silently treat the missing term as 0. Every None
is counted per function (`RubricResult.num_none`). A user who wants a number instead sets
`none_as` explicitly (the breakdown and the counts still show the None). Weight-0 functions are
monitors: they appear in the breakdown and the metrics but never make the value None.

Truncated completions (`finish_reason == "length"`): `on_truncated` scores them like any other
(`score`, the default), gives them `truncated_penalty` without running the functions (`penalty`),
or makes their value None (`none`). (torchtitan `experiments/rl/rubrics/rubric.py` short-circuit.)

A `Rubric` is itself a reward function with the TRL signature, so it can be handed to TRL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from selftaught.rewards.base import RewardFn, TextOrChat, reward_name, trl_inputs
from selftaught.types import Completion, Prompt, Score, StrEnum

WeightedFn = RewardFn | tuple[RewardFn, float]
"""A reward function with weight 1, or `(function, weight)`."""


class OnTruncated(StrEnum):
    """What a `Rubric` does with a completion that hit the token limit (`finish_reason == "length"`)."""

    SCORE = "score"
    """Run the reward functions on it like on any other completion."""
    PENALTY = "penalty"
    """Value `truncated_penalty`; the functions do not run on it."""
    NONE = "none"
    """Value None (could not score), counted; the functions do not run on it."""


@dataclass
class RubricResult:
    """The scores of one batch and what went into them."""

    scores: list[Score]
    """One per completion: `value` (None = could not score), `breakdown` (each function's raw value)."""
    num_none: dict[str, int] = field(default_factory=dict)
    """Per function: samples it was applied to and returned None for."""
    num_applied: dict[str, int] = field(default_factory=dict)
    """Per function: samples it was applied to (its task's samples, truncated ones excluded unless scored)."""
    num_truncated: int = 0
    """Samples short-circuited by `on_truncated` (penalty or None)."""

    @property
    def values(self) -> list[float | None]:
        return [score.value for score in self.scores]

    def metrics(self, prefix: str = "reward") -> dict[str, float]:
        """Flat metrics: mean value and None count overall and per function; a mean over no value is left out."""
        metrics: dict[str, float] = {
            f"{prefix}_num_none": sum(v is None for v in self.values),
            f"{prefix}_num_truncated": self.num_truncated,
        }
        _put_mean(metrics, f"{prefix}_mean", self.values)
        for name, num_none in self.num_none.items():
            metrics[f"{prefix}_{name}_num_none"] = num_none
            _put_mean(metrics, f"{prefix}_{name}_mean", [s.breakdown.get(name) for s in self.scores])
        return metrics


def _put_mean(metrics: dict[str, float], key: str, values: Sequence[float | None]) -> None:
    present = [v for v in values if v is not None]
    if present:
        metrics[key] = sum(present) / len(present)


class Rubric:
    """Weighted reward functions per task; see the module doc for the None and truncation policies."""

    def __init__(
        self,
        tasks: Mapping[str, Sequence[WeightedFn]],
        *,
        none_as: float | None = None,
        on_truncated: OnTruncated | str = OnTruncated.SCORE,
        truncated_penalty: float = 0.0,
    ):
        """`tasks` maps a task name to its functions, each a function (weight 1) or `(function, weight)`.

        Functions are told apart by `reward_name`; two different functions with one name are an
        error (the format-check factories take `name=`).
        """
        if not tasks:
            raise ValueError("Rubric needs at least one task, e.g. Rubric({'default': [math_answer_reward]})")
        self.weights: dict[str, dict[str, float]] = {}
        self.functions: dict[str, RewardFn] = {}
        for task, weighted in tasks.items():
            self.weights[task] = self._register(task, weighted)
        self.none_as = none_as
        self.on_truncated = OnTruncated(on_truncated)
        self.truncated_penalty = truncated_penalty

    def _register(self, task: str, weighted: Sequence[WeightedFn]) -> dict[str, float]:
        if not weighted:
            raise ValueError(f"Rubric task {task!r} has no reward functions")
        weights: dict[str, float] = {}
        for item in weighted:
            fn, weight = item if isinstance(item, tuple) else (item, 1.0)
            name = reward_name(fn)
            if not math.isfinite(weight):
                raise ValueError(
                    f"Rubric task {task!r}: weight of {name} must be a finite number, got {weight}"
                )
            if name in weights or self.functions.get(name, fn) is not fn:
                raise ValueError(
                    f"Rubric: two reward functions are named {name!r}; give one another name (name=...)"
                )
            self.functions[name] = fn
            weights[name] = float(weight)
        return weights

    def __call__(
        self, prompts: list[TextOrChat], completions: list[TextOrChat], **columns: Any
    ) -> list[float | None]:
        """The values of `score_batch`: the rubric as a TRL-signature reward function."""
        return self.score_batch(prompts, completions, **columns).values

    def score(self, prompts: Sequence[Prompt], completions: Sequence[Completion]) -> RubricResult:
        """Score records, one prompt per completion (the columns come from `trl_inputs`)."""
        trl_prompts, trl_completions, columns = trl_inputs(prompts, completions)
        return self.score_batch(trl_prompts, trl_completions, **columns)

    def score_batch(
        self, prompts: list[TextOrChat], completions: list[TextOrChat], **columns: Any
    ) -> RubricResult:
        """Score TRL-style inputs. Reads the `task` column (routing) and `finish_reason` (truncation)
        when present; every column is passed on to the functions, restricted to their samples."""
        num = len(completions)
        if len(prompts) != num:
            raise ValueError(
                f"Rubric: got {len(prompts)} prompts for {num} completions; pass one per completion"
            )
        tasks = self._tasks(columns.get("task"), num)
        short_circuit = self._short_circuited(columns.get("finish_reason"), num)
        outputs: dict[str, dict[int, float | None]] = {}
        for name, fn in self.functions.items():
            rows = [i for i in range(num) if name in self.weights[tasks[i]] and not short_circuit[i]]
            if rows:
                outputs[name] = dict(
                    zip(rows, _call(fn, name, rows, prompts, completions, columns), strict=True)
                )
        scores = [self._combine(tasks[i], i, outputs, short_circuit[i]) for i in range(num)]
        return RubricResult(
            scores=scores,
            num_none={name: sum(v is None for v in out.values()) for name, out in outputs.items()},
            num_applied={name: len(out) for name, out in outputs.items()},
            num_truncated=sum(short_circuit),
        )

    def _tasks(self, task_column: Sequence[str] | None, num: int) -> list[str]:
        if task_column is None:
            if len(self.weights) != 1:
                raise ValueError(
                    f"Rubric has tasks {sorted(self.weights)} but the batch has no `task` column to route by; "
                    "add one (Prompt.task)"
                )
            return [next(iter(self.weights))] * num
        unknown = sorted({str(t) for t in task_column} - set(self.weights))
        if unknown:
            raise ValueError(
                f"Rubric has no reward functions for task(s) {unknown}; its tasks are {sorted(self.weights)}"
            )
        return list(task_column)

    def _short_circuited(self, finish_reasons: Sequence[str] | None, num: int) -> list[bool]:
        if self.on_truncated is OnTruncated.SCORE or finish_reasons is None:
            return [False] * num
        return [reason == "length" for reason in finish_reasons]

    def _combine(
        self, task: str, i: int, outputs: dict[str, dict[int, float | None]], truncated: bool
    ) -> Score:
        if truncated:
            value = self.truncated_penalty if self.on_truncated is OnTruncated.PENALTY else None
            return Score(value=value, rationale="truncated (finish_reason 'length')")
        breakdown = {name: outputs[name][i] for name in self.weights[task]}
        missing = [name for name, v in breakdown.items() if v is None and self.weights[task][name] != 0]
        if missing and self.none_as is None:
            return Score(value=None, breakdown=breakdown, rationale=f"could not score: {', '.join(missing)}")
        value = 0.0
        for name, weight in self.weights[task].items():
            part = breakdown[name]
            if part is None:  # none_as is set, or a weight-0 monitor
                part = self.none_as if self.none_as is not None else 0.0
            value += weight * part
        return Score(value=value, breakdown=breakdown)


def _call(
    fn: RewardFn,
    name: str,
    rows: list[int],
    prompts: list[TextOrChat],
    completions: list[TextOrChat],
    columns: dict[str, Any],
) -> list[float | None]:
    """`fn` on the samples `rows`, with list columns cut to those rows; checks what it returns."""
    num = len(completions)
    sub_columns = {}
    for key, value in columns.items():
        if isinstance(value, list):
            if len(value) != num:
                raise ValueError(f"Rubric: column `{key}` has {len(value)} entries for {num} completions")
            value = [value[i] for i in rows]
        sub_columns[key] = value  # non-list values (TRL's trainer_state, log_extra) are shared as they are
    # by keyword, as TRL calls them: some TRL functions take `completions` first (think_format_reward)
    values = fn(prompts=[prompts[i] for i in rows], completions=[completions[i] for i in rows], **sub_columns)
    if not isinstance(values, list) or len(values) != len(rows):
        raise ValueError(
            f"reward function {name} must return a list of {len(rows)} values, got {values!r:.200}"
        )
    for value in values:
        if value is not None and (not isinstance(value, int | float) or not math.isfinite(value)):
            raise ValueError(
                f"reward function {name} returned {value!r}; a reward is a finite number, or None for could not score"
            )
    return [None if v is None else float(v) for v in values]
