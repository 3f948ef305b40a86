"""Run a test function in N processes joined by a gloo process group, the way torchrun would.

    def check_sum(out_dir: str) -> None:  # module level, so each process can import it
        assert dist.all_reduce_sum(1.0) == dist.world_size()

    def test_sum(tmp_path):
        run_distributed(check_sum, str(tmp_path), world_size=2)

Each rank is a fresh `python -m tests.distributed_utils <module> <function> <args>` started from the
repository root with torchrun's environment (`RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR`,
`MASTER_PORT`); it joins the group with `selftaught.dist.init_distributed("gloo")`, runs the function
on one CPU thread, and leaves the group. A rank that raises fails the test with its output; the
other ranks are then stopped instead of waiting in a collective until the timeout.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_distributed(fn: Callable[..., None], *args: str, world_size: int = 2, timeout_s: float = 120) -> None:
    """Run `fn(*args)` on `world_size` gloo ranks; fail the calling test if any rank fails."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    env.update(WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "tests.distributed_utils", fn.__module__, fn.__qualname__, *args]
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(world_size)]
    procs = [
        subprocess.Popen(
            command, cwd=ROOT, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=log, stderr=log
        )
        for r, log in enumerate(logs)
    ]
    _wait_or_stop(procs, timeout_s)
    failures = []
    for r, (proc, log) in enumerate(zip(procs, logs, strict=True)):
        log.seek(0)
        output = log.read()
        log.close()
        if proc.returncode == -signal.SIGKILL:
            failures.append(f"rank {r} was stopped (another rank failed, or {timeout_s} s passed)")
        elif proc.returncode != 0:
            failures.append(f"rank {r} exited with {proc.returncode}:\n{output[-4000:]}")
    if failures:
        pytest.fail(f"{fn.__qualname__} on {world_size} ranks:\n" + "\n\n".join(failures))


def _wait_or_stop(procs: list[subprocess.Popen], timeout_s: float) -> None:
    """Wait for every rank; on a failure or the timeout, kill the ranks still running."""
    deadline = time.monotonic() + timeout_s
    while None in (codes := [p.poll() for p in procs]):
        if any(code not in (None, 0) for code in codes) or time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            return
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _main(module: str, qualname: str, *args: str) -> None:
    import torch

    from selftaught import dist

    torch.set_num_threads(1)
    fn = getattr(importlib.import_module(module), qualname)
    dist.init_distributed("gloo")
    try:
        fn(*args)
    finally:
        dist.shutdown()


if __name__ == "__main__":
    _main(*sys.argv[1:])
