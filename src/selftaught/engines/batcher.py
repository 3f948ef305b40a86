"""A dynamic batcher: one thread runs `engine.generate` for requests submitted from many threads.

The serving thread collects the requests that arrive within `max_wait_s` of the first and runs
each group with the same sampling settings as one `engine.generate` call, so concurrent clients
share decode steps (on CPU this multiplies the requests served per second; see `engines/server.py`).
Greedy requests are exact whatever they are batched with.

A request whose client is gone is `abandon`ed: if it has not started it is dropped from the queue,
and if it is running with a `CancellableEngine` its samples stop at the engine's next poll.

A request submitted with `on_token` is told of each of its tokens as they are generated, when the
engine can (`supports_streaming`, `HFEngine`); a failed call is then not retried for it (its
listener has seen tokens), it fails.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any

from selftaught.engines.base import CancellableEngine, Engine, SamplingParams
from selftaught.types import Completion, Prompt


class BatcherClosed(RuntimeError):
    """Submitted after `close()`: the server answers 503."""


class PendingCompletions(Future[list[Completion]]):
    """A submitted request's completions, which the submitter may `abandon`."""

    def __init__(self) -> None:
        super().__init__()
        self._abandoned = threading.Event()

    def abandon(self) -> None:
        """Nobody waits for the result any more: do not start it, and stop it if it runs."""
        self._abandoned.set()
        self.cancel()  # succeeds only while queued

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()


SampleTokenListener = Callable[[int, int, float, "list[list[Any]] | None"], None]
"""Told `(sample index, token id, logprob, top alternatives or None)` of a request's tokens."""


@dataclass
class _Job:
    prompt: Prompt
    sampling: SamplingParams
    seeded: bool
    future: PendingCompletions
    on_token: SampleTokenListener | None = None
    streamed: bool = False
    """`on_token` has been told of a token."""

    def group_key(self) -> tuple[Any, ...]:
        """Jobs with equal keys can share one `generate` call (greedy ones whatever their seed)."""
        s = self.sampling
        seed = s.seed if self.seeded and s.temperature > 0 else None
        return (s.temperature, s.top_p, s.max_new_tokens, tuple(s.stop), s.n, s.top_logprobs, seed)


class DynamicBatcher:
    """Runs `engine.generate` on one thread for requests submitted from many (see the module doc)."""

    def __init__(self, engine: Engine, max_wait_s: float = 0.005, max_batch_requests: int = 256) -> None:
        self.engine = engine
        self.max_wait_s = max_wait_s
        self.max_batch_requests = max_batch_requests
        self.num_batches = 0
        """`engine.generate` calls so far."""
        self.num_abandoned = 0
        """Requests abandoned before or while they ran (their clients hung up)."""
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="selftaught-batcher", daemon=True)
        self._thread.start()

    @property
    def supports_streaming(self) -> bool:
        """`submit`'s `on_token` is honoured (the engine reports tokens as it generates them)."""
        return bool(getattr(self.engine, "supports_streaming", False))

    def submit(
        self,
        prompt: Prompt,
        sampling: SamplingParams,
        seeded: bool,
        on_token: SampleTokenListener | None = None,
    ) -> PendingCompletions:
        """Queue one prompt; the future resolves to its `sampling.n` completions. `on_token` is told of
        each token as it is generated when `supports_streaming` (else never)."""
        job = _Job(prompt, sampling, seeded, PendingCompletions(), on_token)
        with self._lock:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            self._queue.put(job)
        return job.future

    @property
    def queue_length(self) -> int:
        """Requests submitted and not yet taken by the engine thread (approximate, as `Queue.qsize`)."""
        return self._queue.qsize()

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
                if job.future.abandoned or not job.future.set_running_or_notify_cancel():
                    self.num_abandoned += 1  # its client left while it was queued
                    continue
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
        prompts = [job.prompt for job in jobs]
        try:
            if isinstance(self.engine, CancellableEngine):
                streaming = self.supports_streaming and any(job.on_token for job in jobs)
                kwargs = {"on_token": _job_listener(jobs)} if streaming else {}
                results = self.engine.generate_cancellable(
                    prompts,
                    sampling,
                    lambda i: jobs[i].future.abandoned,
                    **kwargs,  # type: ignore[call-arg]
                )
            else:
                results = self.engine.generate(prompts, sampling)
        except Exception as err:
            if len(jobs) == 1:
                jobs[0].future.set_exception(err)
                return
            for job in jobs:
                if job.streamed:
                    job.future.set_exception(err)
                else:
                    self._generate([job], sampling)
            return
        for job, completions in zip(jobs, results, strict=True):
            self.num_abandoned += job.future.abandoned
            job.future.set_result(completions)


def _job_listener(jobs: list[_Job]) -> Callable[[int, int, int, float, list[list[Any]] | None], None]:
    """The engine's `on_token` for one call: prompt i's tokens go to `jobs[i].on_token`."""

    def on_token(i: int, j: int, token: int, logprob: float, alternatives: list[list[Any]] | None) -> None:
        job = jobs[i]
        if job.on_token is not None:
            job.streamed = True
            job.on_token(j, token, logprob, alternatives)

    return on_token
