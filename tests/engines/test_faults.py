"""Fault tests on loopback: OpenAIEngine against `selftaught serve` that returns 429s and 500s, stalls,
and is restarted mid-run. Nothing may be lost or duplicated, results must equal a fault-free run
(greedy, so deterministic), and a rerun with the server down must come entirely from the cache."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.openai import OpenAIConfig, OpenAIEngine
from selftaught.engines.server import EngineServer
from selftaught.models.io import load_model
from selftaught.types import Completion, Prompt
from tests.engines.faults import Fault, FaultInjector

MODEL = "tiny"
SAMPLING = SamplingParams(temperature=0, max_new_tokens=8, n=2)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: str) -> HFEngine:
    return HFEngine(*load_model(tiny_model_dir))


def make_prompts(num_prompts: int) -> list[Prompt]:
    """Distinct arithmetic prompts, alternately raw text (/completions) and chat (/chat/completions)."""
    rng = random.Random(0)
    prompts = []
    for i in range(num_prompts):
        question = f"{rng.randrange(1000)} + {rng.randrange(1000)} ="
        if i % 2:
            prompts.append(Prompt(id=f"p{i}", messages=[{"role": "user", "content": question}]))
        else:
            prompts.append(Prompt(id=f"p{i}", messages=[], text=question))
    return prompts


def remote_config(server: EngineServer, cache_path: str, **overrides: Any) -> OpenAIConfig:
    settings = dict(
        model=MODEL,
        base_url=server.url,
        logprobs=True,
        token_ids=True,
        max_concurrency=16,
        timeout_s=1.0,
        max_retries=30,
        backoff_s=0.02,
        max_backoff_s=0.4,
        cache_path=cache_path,
    )
    return OpenAIConfig(**(settings | overrides))


def assert_same_completions(got: list[list[Completion]], expected: list[list[Completion]]) -> None:
    """Slot by slot: prompt id, sample index, text, token ids, finish reason, logprobs (float tolerance)."""
    assert [len(row) for row in got] == [len(row) for row in expected]
    for got_row, expected_row in zip(got, expected, strict=True):
        for j, (a, b) in enumerate(zip(got_row, expected_row, strict=True)):
            assert (a.prompt_id, a.meta["sample_index"]) == (b.prompt_id, j)
            assert (a.text, a.token_ids, a.finish_reason) == (b.text, b.token_ids, b.finish_reason)
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def fault_plan(num: int, seed: int = 0) -> dict[int, Fault]:
    """About 12% 429s, 8% 500s and 3% stalls over the first `num` arrivals."""
    rng = random.Random(seed)
    plan = {}
    for number in range(num):
        draw = rng.random()
        if draw < 0.12:
            plan[number] = Fault.RATE_LIMIT
        elif draw < 0.20:
            plan[number] = Fault.SERVER_ERROR
        elif draw < 0.23:
            plan[number] = Fault.STALL
    return plan


def restart_when(
    condition: Callable[[], bool], server: EngineServer, make: Callable[[int], EngineServer]
) -> dict:
    """In a thread: once `condition()` holds, close `server` (dropping its connections), stay down a
    moment, and start `make(port)` on the same port. The returned dict receives the new server."""
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    state: dict[str, Any] = {}

    def run() -> None:
        while not condition():
            time.sleep(0.005)
        state["open_at_stop"] = server.num_open_connections
        server.close()
        time.sleep(0.5)
        state["server"] = make(port).start()

    state["thread"] = threading.Thread(target=run, daemon=True)
    state["thread"].start()
    return state


def test_batch_survives_faults_stalls_and_a_restart_then_reruns_from_cache(engine, tmp_path):
    prompts = make_prompts(120)  # x 2 samples = 240 requests
    expected = engine.generate(prompts, SAMPLING)  # fault-free, in-process
    faults = FaultInjector(fault_plan(2000), stall_s=3.0)

    def make(port: int) -> EngineServer:
        return EngineServer(engine, engine.tokenizer, MODEL, port=port, request_hook=faults)

    first_server = make(0).start()
    restart = restart_when(lambda: faults.num_requests >= 120, first_server, make)
    cache_path = str(tmp_path / "cache.sqlite")
    remote = OpenAIEngine(remote_config(first_server, cache_path))
    start = time.perf_counter()
    try:
        results = remote.generate(prompts, SAMPLING)
    finally:
        restart["thread"].join(timeout=10)
        restart["server"].close()
    seconds = time.perf_counter() - start

    assert_same_completions(results, expected)
    assert len(remote.cache) == 240  # one entry per request: nothing lost, nothing twice
    reasons = remote.stats.retry_reasons
    assert reasons["HTTP 429"] > 0 and reasons["HTTP 500"] > 0 and reasons["TimeoutError"] > 0
    assert reasons["ConnectError"] > 0, "some requests hit the server while it was down"
    assert all(faults.injected[fault] > 0 for fault in Fault)
    assert restart["open_at_stop"] > 0, "the restart dropped open connections"

    rerun = OpenAIEngine(remote_config(first_server, cache_path))  # both servers are closed now
    start_rerun = time.perf_counter()
    assert_same_completions(rerun.generate(prompts, SAMPLING), expected)
    assert (rerun.stats.num_cache_hits, rerun.stats.num_http_requests) == (240, 0)
    # Shown with `pytest -s`: what the run went through.
    print(
        f"\n[faults] 240 requests, {remote.stats.num_http_requests} HTTP attempts, retries {dict(reasons)}, "
        f"injected {dict(faults.injected)}, {restart['open_at_stop']} connections dropped at the restart; "
        f"{seconds:.1f}s; rerun from cache {time.perf_counter() - start_rerun:.2f}s"
    )


def test_an_interrupted_job_resumes_without_repeating_requests(engine, tmp_path):
    prompts = make_prompts(40)  # 80 requests
    cache_path = str(tmp_path / "cache.sqlite")
    # The server fails every request from the 30th on, so the job gives up part way.
    failing = FaultInjector({number: Fault.SERVER_ERROR for number in range(30, 10_000)})
    with EngineServer(engine, engine.tokenizer, MODEL, port=0, request_hook=failing).start() as server:
        interrupted = OpenAIEngine(remote_config(server, cache_path, max_retries=1, max_concurrency=4))
        with pytest.raises(RuntimeError, match="last with HTTP 500"):
            interrupted.generate(prompts, SAMPLING)
    num_done = len(interrupted.cache)
    assert 0 < num_done < 80
    with EngineServer(engine, engine.tokenizer, MODEL, port=0).start() as server:
        resumed = OpenAIEngine(remote_config(server, cache_path, timeout_s=30.0))
        results = resumed.generate(prompts, SAMPLING)
    assert (resumed.stats.num_cache_hits, resumed.stats.num_http_requests) == (num_done, 80 - num_done)
    assert_same_completions(results, engine.generate(prompts, SAMPLING))
