"""Stages on a local Ray instance (2 CPUs): the same files as the local executor, and an interrupted
Ray run resumes from its complete shards (on Ray or locally)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from selftaught.data.executors import LocalExecutor, RayExecutor, get_executor
from selftaught.data.shards import MANIFEST_FILE, read_stage, run_stage, shard_path
from selftaught.data.templates import PromptTemplate
from selftaught.engines.base import SamplingParams
from selftaught.engines.scripted import ScriptedEngine
from selftaught.pipelines.stages import generate, parse

ray = pytest.importorskip("ray")

INPUTS = [{"id": f"d{i}", "text": f"document {i}", "n": i} for i in range(23)]
TEMPLATE = PromptTemplate("exec-test", 1, "Ask about: {text}", ("text",))


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    from ray import cloudpickle

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def double(chunk: list[dict]) -> list[dict]:
    """A shard function that returns a different number of records than it gets (odd n: two)."""
    return [{**r, "copy": k} for r in chunk for k in range(1 + r["n"] % 2)]


def recorded(calls: Path, fail_at: int | None = None):
    """`double`, leaving a file per call in `calls`; raises on the shard starting at input `fail_at`
    after a second, so the shards before and after it finish first."""

    def fn(chunk: list[dict]) -> list[dict]:
        (calls / f"{chunk[0]['n']}-{uuid.uuid4().hex}").touch()
        if chunk[0]["n"] == fail_at:
            time.sleep(1.0)
            raise RuntimeError("shard failed")
        return double(chunk)

    return fn


def stage_files(out_dir: Path) -> dict[str, bytes]:
    """The stage's files except the manifest's creation time (its fields are compared instead)."""
    files = {p.name: p.read_bytes() for p in sorted(out_dir.iterdir()) if p.name != MANIFEST_FILE}
    manifest = (out_dir / MANIFEST_FILE).read_text().splitlines()
    return files | {MANIFEST_FILE: "\n".join(line for line in manifest if '"created"' not in line).encode()}


def started_shards(calls: Path) -> list[int]:
    return sorted(int(p.name.split("-")[0]) // 4 for p in calls.iterdir())


def test_ray_writes_the_same_stage_as_the_local_executor(tmp_path):
    local = run_stage(tmp_path / "local" / "s", INPUTS, double, shard_size=4, fingerprint="f", meta={"m": 1})
    on_ray = run_stage(
        tmp_path / "ray" / "s", INPUTS, double, shard_size=4, fingerprint="f", meta={"m": 1}, executor="ray"
    )
    assert on_ray == local and len(local) == 23 + 11
    assert stage_files(tmp_path / "ray" / "s") == stage_files(tmp_path / "local" / "s")


def test_generate_and_parse_on_ray_equal_the_local_run(tmp_path):
    engine = ScriptedEngine(lambda prompt, j: f"Q{j}: {prompt.messages[-1]['content'].upper()}?")
    sampling = SamplingParams(n=2, temperature=1.0)
    runs = {}
    for name in ("local", "ray"):
        executor = None if name == "local" else RayExecutor()
        made = generate(
            tmp_path / name / "gen",
            INPUTS,
            engine,
            TEMPLATE,
            sampling,
            generator="s",
            seed=3,
            shard_size=5,
            executor=executor,
        )
        parsed, counts = parse(
            tmp_path / name / "parse",
            made,
            lambda t: t.split(": ", 1)[1] if "DOCUMENT 1" in t else None,
            parser_name="p@1",
            shard_size=7,
            executor=executor,
        )
        runs[name] = (parsed, counts)
        assert stage_files(tmp_path / name / "gen") == stage_files(tmp_path / "local" / "gen")
    assert runs["ray"] == runs["local"]
    parsed, counts = runs["ray"]
    assert parsed[1]["parsed"] == ["ASK ABOUT: DOCUMENT 1?"] * 2 and counts["num_records_unparsed"] == 12
    assert parsed[4]["provenance"]["completions"]["seed"] == 3 * 1_000_003 + 0  # shard seed travelled


def test_an_interrupted_ray_run_resumes_from_its_complete_shards(tmp_path):
    out, calls = tmp_path / "stage", tmp_path / "calls"
    calls.mkdir()
    with pytest.raises(Exception, match="shard failed"):
        run_stage(out, INPUTS, recorded(calls, fail_at=20), shard_size=4, fingerprint="f", executor="ray")
    done = sorted(int(p.name[5:10]) for p in out.glob("part-*.jsonl"))
    assert not (out / MANIFEST_FILE).exists() and 5 not in done and len(done) >= 1
    assert not list(out.glob("*.tmp"))
    for index in done:  # every shard written is complete
        assert len(read_stage_shard(shard_path(out, index))) == len(double(INPUTS[index * 4 : index * 4 + 4]))
    for p in calls.iterdir():
        p.unlink()
    resumed = run_stage(out, INPUTS, recorded(calls), shard_size=4, fingerprint="f", executor="ray")
    assert started_shards(calls) == sorted(set(range(6)) - set(done))  # only the missing ones, once each
    assert resumed == run_stage(tmp_path / "local", INPUTS, double, shard_size=4, fingerprint="f")


def test_a_local_run_resumes_and_reads_a_ray_stage(tmp_path):
    out, calls = tmp_path / "stage", tmp_path / "calls"
    calls.mkdir()
    with pytest.raises(Exception, match="shard failed"):
        run_stage(out, INPUTS, recorded(calls, fail_at=8), shard_size=4, fingerprint="f", executor="ray")
    done = {int(p.name[5:10]) for p in out.glob("part-*.jsonl")}
    finished = run_stage(out, INPUTS, double, shard_size=4, fingerprint="f")  # local resume
    assert len(done) >= 1 and finished == read_stage(out)

    def never(chunk):
        raise AssertionError("a complete stage is read back, not recomputed")

    assert run_stage(out, INPUTS, never, shard_size=4, fingerprint="f", executor="ray") == finished


def test_an_openai_engine_over_a_fleet_travels_to_the_ray_workers(tmp_path):
    from selftaught.engines.echo import ECHO_MODEL
    from selftaught.engines.openai import OpenAIConfig, OpenAIEngine
    from tests.engines.test_fleet_serve import serve

    with serve(ECHO_MODEL) as (url_a, _), serve(ECHO_MODEL) as (url_b, _):
        config = OpenAIConfig(
            model="tiny", base_url=[url_a, url_b], cache_path=str(tmp_path / "cache.sqlite")
        )
        runs = [
            generate(
                tmp_path / name / "gen",
                INPUTS,
                OpenAIEngine(config),
                TEMPLATE,
                SamplingParams(n=2),
                generator="echo",
                seed=0,
                shard_size=4,
                executor=executor,
            )
            for name, executor in (("ray", "ray"), ("local", None))
        ]
    assert runs[0] == runs[1] and runs[0][7]["completions"][1]["text"] == "Ask about: document 7"
    assert len(OpenAIEngine(config).cache) == 2 * len(INPUTS)  # written by the workers, read locally


KILLED_DRIVER = """
import sys, time
import ray
from selftaught.data.shards import run_stage

def slow_double(chunk):
    time.sleep(0.5)
    return [{**r, "copy": k} for r in chunk for k in range(1 + r["n"] % 2)]

ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
inputs = [{"id": f"d{i}", "text": f"document {i}", "n": i} for i in range(23)]
run_stage(sys.argv[1], inputs, slow_double, shard_size=2, fingerprint="f", executor="ray")
"""


@pytest.mark.slow
def test_a_ray_driver_killed_mid_stage_resumes_from_its_complete_shards(tmp_path):
    """kill -9 of the driver's whole process group (its own local Ray included), then a rerun."""
    out, calls = tmp_path / "stage", tmp_path / "calls"
    calls.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_DRIVER, str(out)], start_new_session=True, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("part-*.jsonl"))) < 3 and time.monotonic() < deadline:
            assert process.poll() is None, "the driver ended before it was killed"
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    done = {int(p.name[5:10]) for p in out.glob("part-*.jsonl")}
    assert len(done) >= 3 and len(done) < 12 and not (out / MANIFEST_FILE).exists()
    resumed = run_stage(out, INPUTS, recorded(calls), shard_size=2, fingerprint="f", executor="ray")
    assert sorted(int(p.name.split("-")[0]) // 2 for p in calls.iterdir()) == sorted(set(range(12)) - done)
    assert resumed == run_stage(tmp_path / "local", INPUTS, double, shard_size=2, fingerprint="f")


def read_stage_shard(path: Path) -> list[dict]:
    from selftaught.data.sources import read_jsonl

    return read_jsonl(path)


def test_executor_names():
    assert isinstance(get_executor(None), LocalExecutor) and isinstance(get_executor("local"), LocalExecutor)
    assert get_executor("ray:auto") == RayExecutor(address="auto")
    custom = RayExecutor(num_cpus=0.25)
    assert get_executor(custom) is custom
    with pytest.raises(ValueError, match="executor must be one of"):
        get_executor("dask")
    with pytest.raises(ValueError, match="num_cpus"):
        RayExecutor(num_cpus=0)
