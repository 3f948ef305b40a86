"""Clocks of the benchmarks, and where the time went (`--profile`). Nothing here trains.

Ours is the recipe's own `run(cfg)`, what `selftaught <recipe>` executes; `recipe_clock` clocks it
at the step boundaries of its loop (`selftaught.train.loop.start` and `loop.end_of_step`, which
every recipe loop calls). TRL's trainer is clocked by a callback (`peers.trl_callbacks`). A
sampling call of either side is timed by wrapping it (`timed_calls`).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from selftaught.train import loop

# ----------------------------------------------------------------------------------------------
# Step clocks


class StepClock:
    """Wall time and real tokens of steps 2..N: `start()` before the first step, `tick()` after each.

    With a `profile_title`, steps 2..N (the timed ones) also run under the torch profiler, and its
    `profile_breakdown` is printed after the last step.
    """

    def __init__(self, tokens_per_step: Sequence[int], profile_title: str | None = None) -> None:
        self.tokens_per_step = list(tokens_per_step)
        self.profile_title = profile_title
        self.profiler: torch.profiler.profile | None = None
        self.ends: list[float] = []

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a child's result, `isolated`) without the profiler: its breakdown is printed."""
        return {**vars(self), "profiler": None}

    def start(self) -> None:
        self.ends = [time.perf_counter()]

    def tick(self) -> None:
        if self.profiler is not None and self.num_steps + 1 == len(self.tokens_per_step):
            self.profiler.__exit__(None, None, None)
        self.ends.append(time.perf_counter())
        if self.profile_title is not None and self.num_steps == 1:
            self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.profiler.__enter__()
            self.ends[-1] = time.perf_counter()  # the profiler's start-up is not part of step 2
        if self.profiler is not None and self.num_steps == len(self.tokens_per_step):
            print(f"  profile of {self.profile_title}, steps 2-{self.num_steps}: {self.seconds:.2f} s wall")
            profile_breakdown(self.profiler, self.seconds)

    @property
    def num_steps(self) -> int:
        return len(self.ends) - 1

    @property
    def seconds(self) -> float:
        return self.ends[-1] - self.ends[1]

    @property
    def step_seconds(self) -> list[float]:
        """Wall time of every step, the first included."""
        return [end - begin for begin, end in zip(self.ends[:-1], self.ends[1:], strict=True)]

    @property
    def tokens(self) -> int:
        return sum(self.tokens_per_step[1 : self.num_steps])

    @property
    def step_tokens_per_s(self) -> list[float]:
        """Throughput of each timed step alone."""
        return [self.tokens_per_step[i] / (self.ends[i + 1] - self.ends[i]) for i in range(1, self.num_steps)]


class timed_calls:
    """Context manager: while open, each call of `owner.<name>` (a method of a class, a function of a
    module, or a plain method of one object) appends its wall time to the yielded list, then passes
    `(args, kwargs, result)` to `check` (untimed) when one is given. With a `region`, each call is
    also a profiler region of that name (`profile_breakdown` shows it as one line)."""

    def __init__(
        self,
        owner: Any,
        name: str,
        check: Callable[[tuple, dict, Any], None] | None = None,
        region: str | None = None,
    ) -> None:
        self.owner, self.name, self.check, self.region = owner, name, check, region
        self.own = vars(owner).get(name)  # None: inherited, or a plain method of an object
        self.seconds: list[float] = []

    def __enter__(self) -> list[float]:
        original, seconds, check = getattr(self.owner, self.name), self.seconds, self.check
        region = self.region

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            with torch.profiler.record_function(region) if region else contextlib.nullcontext():
                result = original(*args, **kwargs)
            seconds.append(time.perf_counter() - start)
            if check is not None:
                check(args, kwargs, result)
            return result

        setattr(self.owner, self.name, timed)
        return self.seconds

    def __exit__(self, *_: Any) -> None:
        if self.own is None:
            delattr(self.owner, self.name)
        else:
            setattr(self.owner, self.name, self.own)


class recipe_clock:
    """Context manager: while open, a recipe's `run(cfg)` drives `clock`. It starts when the loop
    starts (`loop.start` returned: the model is loaded, the data tokenised, a DPO reference scored,
    the optimizer built) and ticks after each step (`loop.end_of_step` returned). The yielded object
    keeps the model the loop trains (`model`), each step's metrics (`step_metrics`) and the clock's
    start (`started`). With `label`, the model's forward is a profiler region of that name. The
    recipe's progress bar and log lines (stderr) are swallowed; an error still propagates."""

    def __init__(self, clock: StepClock, label: str | None = None) -> None:
        self.clock, self.label = clock, label
        self.model: Any = None
        self.step_metrics: list[dict[str, float]] = []
        self.started = float("nan")
        self._signatures = inspect.signature(loop.start), inspect.signature(loop.end_of_step)
        self._patches: list[Any] = [
            timed_calls(loop, "start", self._on_start),
            timed_calls(loop, "end_of_step", self._on_step_end),
            contextlib.redirect_stderr(io.StringIO()),
        ]

    def _on_start(self, args: tuple, kwargs: dict, _: Any) -> None:
        self.model = self._signatures[0].bind(*args, **kwargs).arguments["model"]
        if self.label is not None:  # the decoder body (under a peft model too: hooks on the top
            base = getattr(
                self.model, "get_base_model", lambda: self.model
            )()  # module turn the fused head off)
            label_forward(base.model, self.label)
        self.clock.start()
        self.started = self.clock.ends[0]

    def _on_step_end(self, args: tuple, kwargs: dict, _: Any) -> None:
        self.clock.tick()
        self.step_metrics.append(self._signatures[1].bind(*args, **kwargs).arguments["metrics"])

    def __enter__(self) -> recipe_clock:
        for patch in self._patches:
            patch.__enter__()
        return self

    def __exit__(self, *_: Any) -> None:
        for patch in reversed(self._patches):
            patch.__exit__(None, None, None)

    @property
    def losses(self) -> list[float]:
        """The training loss of every step that made an update."""
        return [m["loss"] for m in self.step_metrics if "loss" in m]


# ----------------------------------------------------------------------------------------------
# Profiling


def label_forward(module: torch.nn.Module, label: str) -> None:
    """Record every call of `module` as a profiler region `label` (via hooks, so TRL's patched
    forward is covered too)."""
    regions: list[Any] = []

    def enter(*_: Any) -> None:
        regions.append(torch.profiler.record_function(label))
        regions[-1].__enter__()

    def leave(*_: Any) -> None:
        regions.pop().__exit__(None, None, None)

    module.register_forward_pre_hook(enter)
    module.register_forward_hook(leave)


REGION_PREFIXES = ("forward:", "sampling")
"""Profiler regions `profile_breakdown` lists by name: `label_forward`'s, and sampling calls
(`timed_calls(..., region="sampling")`), whose forwards are inside them."""


def profile_breakdown(prof: torch.profiler.profile, wall_seconds: float, top: int = 12) -> None:
    """Where the wall time went, from the top-level profiler events: labelled forwards (`label_forward`),
    backward, optimizer, other ops (LM head and loss, collation, clipping, ...), and time inside no op
    (Python, trainer bookkeeping, and the profiler's own per-op cost, which slows a tiny-model step by
    up to 1.6x); then the `top` ops by self CPU time."""
    totals: dict[str, float] = {}
    for event in prof.events():
        if event.cpu_parent is not None:
            continue
        name = event.name
        if name.startswith("autograd::engine"):
            name = "backward"
        elif name.startswith("Optimizer."):
            name = "optimizer " + name.split("#")[-1]
        elif not name.startswith(REGION_PREFIXES):
            name = "other ops"
        totals[name] = totals.get(name, 0.0) + event.cpu_time_total / 1e6
    totals["no op (python, bookkeeping)"] = wall_seconds - sum(totals.values())
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"    {name:<34}{seconds:>8.3f} s {seconds / wall_seconds:>7.1%}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=44))
