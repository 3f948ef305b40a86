"""Each contender in its own process, so that each peak RSS is its own.

The parent re-runs the benchmark's own command line with `--child NAME --child-out FILE`; the child
runs that one contender (`child`), measures its memory, and pickles the result to FILE, which the
parent reads back (`in_child`). Two figures of memory, both of the child alone:

* `peak_rss`: the whole process's peak (`getrusage` max RSS): loading, training, saving.
* `train_peak_rss`: the peak while training, sampled every 5 ms (`PeakRSS`) from the first
  `StepClock.start()` (the clock of every benchmark starts once, when the training loop starts) to
  the end of the run.
"""

from __future__ import annotations

import argparse
import pickle
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from timing import StepClock, timed_calls


class PeakRSS:
    """Samples this process's RSS every `interval` seconds in a thread while active; `.peak` in bytes
    (`reset()` starts the peak afresh from the current RSS)."""

    def __init__(self, interval: float = 0.005):
        self.interval, self.peak = interval, 0
        self._process, self._stop = psutil.Process(), threading.Event()

    def reset(self) -> None:
        self.peak = self._process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def add_child_options(parser: argparse.ArgumentParser) -> None:
    """The hidden options by which the parent starts one contender in a child."""
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)


def in_child(name: str) -> Any:
    """Run contender `name` of this command line in a child process; its result (with `peak_rss` and
    `train_peak_rss` set). The child's stdout passes through; an error in it raises here."""
    with tempfile.TemporaryDirectory(prefix="bench-child-") as tmp:
        out = Path(tmp) / "result.pkl"
        command = [sys.executable, sys.argv[0], *sys.argv[1:], "--child", name, "--child-out", str(out)]
        subprocess.run(command, check=True)
        with out.open("rb") as file:
            return pickle.load(file)


def child(runner: Callable[[], Any], out: str) -> None:
    """Run one contender (`runner()`, a result with `peak_rss` and `train_peak_rss` fields) and
    pickle its result to `out`."""
    with PeakRSS() as rss, timed_calls(StepClock, "start", lambda *_: rss.reset()):
        result = runner()
    result.peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    result.train_peak_rss = rss.peak
    with open(out, "wb") as file:
        pickle.dump(result, file)
