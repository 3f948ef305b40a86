"""n-sample accuracy with a standard error, overall and per group (difficulty level, task).

The unit of sampling is the problem: with n samples per problem, each problem's accuracy is the mean
of its n samples, the reported accuracy is the mean over problems, and the standard error is the
standard deviation of the per-problem accuracies divided by sqrt(number of problems). With n = 1
this is the usual binomial error sqrt(p (1 - p) / N) (up to the N / (N - 1) correction).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from selftaught.engines.base import Engine, SamplingParams
from selftaught.types import Completion, Prompt

Checker = Callable[[Prompt, Completion], bool]
"""Says whether a completion answers its prompt correctly (a missing answer is wrong)."""


@dataclass
class GroupAccuracy:
    num_problems: int
    accuracy: float
    stderr: float


@dataclass
class EvalResult:
    """What `selftaught eval` prints and recipes log."""

    accuracy: float
    stderr: float
    num_problems: int
    num_samples: int
    groups: dict[str, GroupAccuracy] = field(default_factory=dict)
    """Per-group accuracy, keyed by `Prompt.meta[group_by]` (e.g. level)."""
    mean_completion_tokens: float = 0.0
    seconds: float = 0.0
    completions: list[list[Completion]] = field(default_factory=list, repr=False)
    prompts: list[Prompt] = field(default_factory=list, repr=False)
    """The evaluated prompts, aligned with `completions` (to score them further, e.g. with a rubric)."""
    diversity: dict[str, float] = field(default_factory=dict)
    """Diversity of all the samples, for sets that measure it (`world:persona`: validity is the
    accuracy, and per-slot unique ratios, entropies and head shares are here)."""

    def table(self) -> str:
        """A small markdown table: one row per group, then the overall row."""
        lines = ["| group | problems | accuracy | stderr |", "|---|---|---|---|"]
        for name, g in sorted(self.groups.items()):
            lines.append(f"| {name} | {g.num_problems} | {g.accuracy:.3f} | {g.stderr:.3f} |")
        lines.append(f"| **all** | {self.num_problems} | **{self.accuracy:.3f}** | {self.stderr:.3f} |")
        return "\n".join(lines)


def mean_and_stderr(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std / sqrt(n)); stderr 0 for fewer than 2 values."""
    if not values:
        raise ValueError("mean_and_stderr needs at least one value")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


def evaluate_accuracy(
    engine: Engine,
    prompts: list[Prompt],
    is_correct: Checker,
    sampling: SamplingParams,
    *,
    group_by: str | None = "level",
) -> EvalResult:
    """Sample `sampling.n` completions per prompt and score them with `is_correct`."""
    if not prompts:
        raise ValueError("evaluate_accuracy got no prompts")
    start = time.perf_counter()
    completions = engine.generate(prompts, sampling)
    per_problem = [
        sum(is_correct(p, c) for c in cs) / len(cs) for p, cs in zip(prompts, completions, strict=True)
    ]
    accuracy, stderr = mean_and_stderr(per_problem)
    groups: dict[str, list[float]] = defaultdict(list)
    if group_by is not None:
        for prompt, acc in zip(prompts, per_problem, strict=True):
            if group_by in prompt.meta:
                groups[f"{group_by} {prompt.meta[group_by]}"].append(acc)
    all_completions = [c for cs in completions for c in cs]
    return EvalResult(
        accuracy=accuracy,
        stderr=stderr,
        num_problems=len(prompts),
        num_samples=len(all_completions),
        groups={name: GroupAccuracy(len(v), *mean_and_stderr(v)) for name, v in groups.items()},
        mean_completion_tokens=sum(c.num_tokens for c in all_completions) / len(all_completions),
        seconds=time.perf_counter() - start,
        completions=completions,
        prompts=prompts,
    )
