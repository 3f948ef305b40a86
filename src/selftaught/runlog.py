"""A run directory: the config, a metrics stream, a readable log, and progress bars.

    runs/<name>/
      config.yaml     the full config of the run (what to pass back to reproduce it)
      metrics.jsonl   one JSON object per logged step: {"step": 12, "time": ..., "loss": ...}
      log.txt         timestamped human-readable lines (also printed): the recipe's header,
                      each evaluation (`step 50: val_accuracy 0.612 +- 0.034`), resumes, the end
      env.json        what ran it: selftaught version and git commit, Python / torch / transformers
                      versions, CPU and GPU, the command line (one entry per start, resumes included)

The progress bar of `progress` shows the latest `POSTFIX_KEYS` that `log` received (loss, reward,
validation accuracy), so it changes at the run's `log_every`.

Only one process writes (rank 0 under torchrun): other ranks build a `RunLog` with
`enabled=False` and every call becomes a no-op, so recipes need no `if rank == 0` around logging.
"""

from __future__ import annotations

import fcntl
import json
import math
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

from tqdm.auto import tqdm

from selftaught.config import dump_yaml, to_dict
from selftaught.trackers import Tracker, build_trackers

T = TypeVar("T")

POSTFIX_KEYS = (
    "loss",
    "reward",
    "val_accuracy",
    "val_preference_accuracy",
    "val_pairwise_accuracy",
    "val_loss",
)
"""Logged metrics the progress bar shows (their latest values)."""


class RunLog:
    """Writes one run directory. Use as a context manager or call `close()`."""

    def __init__(
        self, run_dir: str | Path, config: Any | None = None, *, enabled: bool = True, quiet: bool = False
    ):
        self.dir = Path(run_dir)
        self.enabled = enabled
        self.quiet = quiet
        self._start = time.time()
        self._metrics = self._log = self._lock = None
        self._bar: Any = None
        self.postfix: dict[str, str] = {}
        """What the progress bar shows: the latest value of each `POSTFIX_KEYS` metric logged."""
        self.trackers: list[Tracker] = []
        self.previous_config_text: str | None = None
        """The config.yaml this run directory held before this run (None: a new directory)."""
        if not enabled:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_run_dir(self.dir)
        config_path = self.dir / "config.yaml"
        self.previous_config_text = config_path.read_text() if config_path.is_file() else None
        if config is not None:
            dump_yaml(config, config_path)
        _append_environment(self.dir / "env.json")
        report_to = getattr(config, "report_to", None) or []
        self.trackers = build_trackers(report_to, self.dir, to_dict(config) if report_to else None)
        self._metrics = open(self.dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._log = open(self.dir / "log.txt", "a", encoding="utf-8")  # noqa: SIM115

    def log(self, step: int, **metrics: Any) -> dict[str, Any]:
        """Append one line to `metrics.jsonl`; tensors and numpy scalars become floats."""
        record = {"step": step, "time": round(time.time() - self._start, 3)}
        record.update({k: _to_json_value(v) for k, v in metrics.items()})
        if self._metrics is not None:
            self._metrics.write(json.dumps(record) + "\n")
            self._metrics.flush()
        for tracker in self.trackers:
            tracker.log(step, record)
        self._show_on_bar(record)
        return record

    def _show_on_bar(self, record: dict[str, Any]) -> None:
        shown = {
            key: f"{record[key]:.4g}"
            for key in POSTFIX_KEYS
            if isinstance(record.get(key), int | float) and not isinstance(record.get(key), bool)
        }
        if not shown or not self.enabled:
            return
        merged = {**self.postfix, **shown}
        self.postfix = {key: merged[key] for key in POSTFIX_KEYS if key in merged}  # a fixed order
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def info(self, message: str) -> None:
        """A timestamped line in `log.txt`, also printed to stderr unless quiet."""
        if not self.enabled:
            return
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        if not self.quiet:
            tqdm.write(line, file=sys.stderr)
        if self._log is not None:
            self._log.write(line + "\n")
            self._log.flush()

    def progress(self, iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
        """A progress bar over `iterable` (silent on non-writing ranks or when quiet), showing the
        latest loss, reward and validation accuracy that `log` received."""
        self._bar = tqdm(
            iterable, total=total, desc=desc, disable=not self.enabled or self.quiet, leave=False
        )
        if self.postfix:
            self._bar.set_postfix(self.postfix, refresh=False)
        return iter(self._bar)

    def rewind(self, step: int) -> int:
        """Drop the `metrics.jsonl` records after `step` (a resumed run redoes those steps); how many."""
        if self._metrics is None:
            return 0
        self._metrics.close()
        records = read_metrics(self.dir)
        kept = [r for r in records if r["step"] <= step]
        with open(self.dir / "metrics.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        self._metrics = open(self.dir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        return len(records) - len(kept)

    def restore_previous_config(self) -> None:
        """Put back the config.yaml this directory held (a refused resume must not rewrite it)."""
        if self.enabled and self.previous_config_text is not None:
            (self.dir / "config.yaml").write_text(self.previous_config_text)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()
        self.trackers = []
        for handle in (self._metrics, self._log, self._lock):
            if handle is not None:
                handle.close()  # closing the lock file releases the lock
        self._metrics = self._log = self._lock = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def environment() -> dict[str, Any]:
    """The software and hardware a run ran on, and how it was started."""
    from importlib import metadata

    versions = {}
    for package in ("selftaught", "torch", "transformers", "trl", "peft", "vllm"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    torch = sys.modules.get("torch")  # only when already imported: never pay for the import here
    gpu = None
    if torch is not None and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "python": platform.python_version(),
        "versions": versions,
        "git_commit": _git_commit(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "gpu": gpu,
    }


def _append_environment(path: Path) -> None:
    starts = json.loads(path.read_text()) if path.is_file() else []
    path.write_text(json.dumps([*starts, environment()], indent=1))


def _git_commit() -> str | None:
    """The commit of the selftaught source tree when it is a git checkout (an editable install)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _lock_run_dir(run_dir: Path) -> TextIO:
    """An exclusive lock on `run_dir/.lock` for this process; a ValueError when another run holds it
    (two runs into one directory would interleave their metrics and checkpoints)."""
    handle = open(run_dir / ".lock", "a", encoding="utf-8")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ValueError(
            f"another run is writing to {run_dir}; wait for it to finish or choose another out_dir"
        ) from None
    return handle


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of a run's `metrics.jsonl`, in order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {run_dir} a selftaught run directory?")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _to_json_value(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible rather than dropping them
    return value
