"""Experiment trackers beside `metrics.jsonl`: the same records sent to TensorBoard, Weights &
Biases or Trackio, named by a run config's `report_to` (as TRL's `report_to`).

    tensorboard   event files in `<run_dir>/tensorboard` (`tensorboard --logdir runs/`)
    wandb         a run named after the run directory, the config logged; `WANDB_MODE=offline`
                  keeps it local (`wandb sync` uploads it later)
    trackio       a run of project `selftaught` named after the run directory, the config logged,
                  in Trackio's local store (a SQLite file per project in `$TRACKIO_DIR`, default
                  `~/.cache/huggingface/trackio`; no network); `trackio show --project selftaught`
                  opens its dashboard. A resumed run continues its Trackio run

Only numbers are sent; the step is each record's `step` (a resumed run sends its redone steps again,
as `metrics.jsonl` holds them). Trackers are optional extras (`pip install 'selftaught[track]'`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

TRACKERS = ("tensorboard", "wandb", "trackio")


class Tracker(Protocol):
    def log(self, step: int, metrics: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class TensorBoardTracker:
    def __init__(self, run_dir: Path) -> None:
        writer_module = _import("torch.utils.tensorboard", "tensorboard")
        self.writer = writer_module.SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        for key, value in _numbers(metrics).items():
            self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker:
    def __init__(self, run_dir: Path, config: dict[str, Any] | None) -> None:
        wandb = _import("wandb", "wandb")
        self.run = wandb.init(project="selftaught", name=run_dir.name, dir=str(run_dir), config=config or {})
        self.run.define_metric("*", step_metric="step")

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self.run.log({**_numbers(metrics), "step": step})

    def close(self) -> None:
        self.run.finish()


class TrackioTracker:
    PROJECT = "selftaught"

    def __init__(self, run_dir: Path, config: dict[str, Any] | None) -> None:
        trackio = _import("trackio", "trackio")
        self.run = trackio.init(
            project=self.PROJECT,
            name=run_dir.name,
            config=config or {},
            resume="allow",  # a resumed run continues its Trackio run (the newest of that name)
            auto_log_cpu=False,
            auto_log_gpu=False,
        )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        reserved = ("step", "time")  # Trackio keeps its own step and timestamp
        self.run.log({k: v for k, v in _numbers(metrics).items() if k not in reserved}, step=step)

    def close(self) -> None:
        self.run.finish()


def build_trackers(names: Sequence[str], run_dir: Path, config: dict[str, Any] | None) -> list[Tracker]:
    """The trackers `names` asks for (an unknown name is a ValueError listing the valid ones)."""
    check_tracker_names(names)
    built: list[Tracker] = []
    for name in names:
        if name == "tensorboard":
            built.append(TensorBoardTracker(run_dir))
        elif name == "wandb":
            built.append(WandbTracker(run_dir, config))
        else:
            built.append(TrackioTracker(run_dir, config))
    return built


def check_tracker_names(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise ValueError(f"report_to: unknown tracker(s) {unknown}; choose from {list(TRACKERS)}")


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _import(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"report_to={package} needs `{package}`: pip install 'selftaught[track]'") from err
