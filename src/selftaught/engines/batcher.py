"""A dynamic batcher: one thread runs `engine.generate` for requests submitted from many threads.

The serving thread collects the requests that arrive within `max_wait_s` of the first and runs
each group with the same sampling settings as one `engine.generate` call, so concurrent clients
share decode steps (on CPU this multiplies the requests served per second; see `engines/server.py`).
Greedy requests are exact whatever they are batched with.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from selftaught.engines.base import Engine, SamplingParams
from selftaught.types import Completion, Prompt


class BatcherClosed(RuntimeError):
    """Submitted after `close()`: the server answers 503."""


@dataclass
class _Job:
    prompt: Prompt
    sampling: SamplingParams
    seeded: bool
    future: Future[list[Completion]]

    def group_key(self) -> tuple[Any, ...]:
        """Jobs with equal keys can share one `generate` call (greedy ones whatever their seed)."""
        s = self.sampling
        seed = s.seed if self.seeded and s.temperature > 0 else None
        return (s.temperature, s.top_p, s.max_new_tokens, tuple(s.stop), s.n, seed)


class DynamicBatcher:
    """Runs `engine.generate` on one thread for requests submitted from many (see the module doc)."""

    def __init__(self, engine: Engine, max_wait_s: float = 0.005, max_batch_requests: int = 256) -> None:
        self.engine = engine
        self.max_wait_s = max_wait_s
        self.max_batch_requests = max_batch_requests
        self.num_batches = 0
        """`engine.generate` calls so far."""
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="selftaught-batcher", daemon=True)
        self._thread.start()

    def submit(self, prompt: Prompt, sampling: SamplingParams, seeded: bool) -> Future[list[Completion]]:
        """Queue one prompt; the future resolves to its `sampling.n` completions."""
        job = _Job(prompt, sampling, seeded, Future())
        with self._lock:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            self._queue.put(job)
        return job.future

    def close(self) -> None:
        """Finish the requests already queued, then stop the engine thread (waits for it)."""
        with self._lock:
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        running = True
        while running:
            jobs, running = self._collect()
            groups: dict[tuple[Any, ...], list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.group_key(), []).append(job)
            for group in groups.values():
                seed = group[0].sampling.seed if group[0].seeded else random.randrange(2**31)
                self._generate(group, replace(group[0].sampling, seed=seed))

    def _collect(self) -> tuple[list[_Job], bool]:
        """Jobs that arrive within `max_wait_s` of the first, and False once `close` was seen."""
        first = self._queue.get()
        if first is None:
            return [], False
        jobs = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(jobs) < self.max_batch_requests:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return jobs, False
            jobs.append(job)
        return jobs, True

    def _generate(self, jobs: list[_Job], sampling: SamplingParams) -> None:
        """One `generate` call; when it fails, each job runs alone so only the bad ones fail."""
        self.num_batches += 1
        try:
            results = self.engine.generate([job.prompt for job in jobs], sampling)
        except Exception as err:
            if len(jobs) == 1:
                jobs[0].future.set_exception(err)
                return
            for job in jobs:
                self._generate([job], sampling)
            return
        for job, completions in zip(jobs, results, strict=True):
            job.future.set_result(completions)


# --- the OpenAI API ------------------------------------------------------------------------------
