"""A generate stage over two real `selftaught serve` processes, one killed (kill -9) mid-stage: the
stage completes with the records of a run against one server, nothing lost or duplicated."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selftaught.data.shards import read_stage
from selftaught.data.templates import PromptTemplate
from selftaught.engines.base import SamplingParams
from selftaught.engines.openai import OpenAIConfig, OpenAIEngine
from selftaught.pipelines.stages import generate

MODEL = "tiny"
TEMPLATE = PromptTemplate("fleet-test", 1, "Tell me about {topic}.", ("topic",))
RECORDS = [{"id": f"r{i}", "topic": f"the number {i * 7 % 23} and {i}"} for i in range(64)]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=8)


@contextmanager
def serve(model_dir: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """`selftaught serve` on a free loopback port: its URL and process (killed on exit)."""
    command = [sys.executable, "-m", "selftaught.cli", "serve", "--model", model_dir, "--port", "0"]
    command += ["--served-model-name", MODEL, "--max-wait-ms", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/v1)", line)
        assert match, f"no URL in {line!r} (exit code {process.poll()})"
        yield match.group(1), process
    finally:
        process.kill()
        process.wait(timeout=10)


def engine_for(urls: str | list[str], **overrides) -> OpenAIEngine:
    settings = dict(model=MODEL, base_url=urls, max_concurrency=4, logprobs=True, token_ids=True)
    return OpenAIEngine(OpenAIConfig(**(settings | overrides)))


def run_stage_in_thread(out_dir: Path, engine: OpenAIEngine, outcome: dict) -> threading.Thread:
    def work() -> None:
        try:
            outcome["records"] = generate(
                out_dir, RECORDS, engine, TEMPLATE, GREEDY, generator=MODEL, seed=0, shard_size=8
            )
        except BaseException as err:  # reported by the test, not lost in the thread
            outcome["error"] = err

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_a_stage_over_two_servers_survives_one_killed_mid_stage(tiny_model_dir, tmp_path):
    with serve(tiny_model_dir) as (url_a, _), serve(tiny_model_dir) as (url_b, process_b):
        reference = generate(
            tmp_path / "one",
            RECORDS,
            engine_for(url_a),
            TEMPLATE,
            GREEDY,
            generator=MODEL,
            seed=0,
            shard_size=8,
        )
        cache = tmp_path / "cache.sqlite"
        engine = engine_for([url_a, url_b], cache_path=str(cache), server_down_s=30.0)
        outcome: dict = {}
        thread = run_stage_in_thread(tmp_path / "fleet", engine, outcome)
        deadline = time.monotonic() + 120
        while (
            engine.stats.requests_by_server[url_b] < 8 and thread.is_alive() and time.monotonic() < deadline
        ):
            time.sleep(0.002)
        os.kill(process_b.pid, signal.SIGKILL)
        answered_before_kill = sum(engine.stats.requests_by_server.values())
        thread.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    assert answered_before_kill < len(RECORDS), "the kill came after the stage: nothing was tested"
    stats = engine.stats
    assert stats.requests_by_server[url_b] >= 8 and stats.failures_by_server[url_b] >= 1
    assert stats.requests_by_server[url_a] + stats.requests_by_server[url_b] == len(RECORDS)
    # Equal to the one-server run: same completions, token ids included; every record once, in order.
    assert outcome["records"] == reference == read_stage(tmp_path / "fleet")
    assert [r["id"] for r in outcome["records"]] == [r["id"] for r in RECORDS]
    assert all(len(r["completions"]) == 1 and r["completions"][0]["num_tokens"] > 0 for r in reference)
    assert len(engine.cache) == len(RECORDS)  # one response per request, whichever server gave it
