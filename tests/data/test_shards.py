"""Sharded stages: resume computes only what is missing, and yields what an uninterrupted run yields."""

import json
import subprocess
import sys
import textwrap

import pytest

from selftaught.data.shards import compute_fingerprint, read_stage, run_stage, shard_path, stage_is_complete

INPUTS = list(range(23))
SHARD_SIZE = 5  # 5 shards, the last one holding 3 inputs


def square(chunk: list[int]) -> list[dict]:
    """Two records per input, so shard sizes differ from chunk sizes."""
    return [{"x": x, "y": value} for x in chunk for value in (x * x, -x)]


class CountingFn:
    """`square`, recording the first input of every chunk it is called on; raises on chunk `fail_at`."""

    def __init__(self, fail_at: int | None = None):
        self.fail_at = fail_at
        self.chunk_starts: list[int] = []

    def __call__(self, chunk: list[int]) -> list[dict]:
        if self.fail_at is not None and chunk[0] == self.fail_at * SHARD_SIZE:
            raise RuntimeError("worker crashed")
        self.chunk_starts.append(chunk[0])
        return square(chunk)


def uninterrupted(tmp_path) -> list[dict]:
    return run_stage(tmp_path / "reference", INPUTS, square, shard_size=SHARD_SIZE, fingerprint="f")


def test_fresh_run_writes_shards_then_manifest(tmp_path):
    out_dir = tmp_path / "stage"
    records = run_stage(out_dir, INPUTS, square, shard_size=SHARD_SIZE, fingerprint="f", meta={"seed": 3})
    assert records == square(INPUTS)
    names = sorted(p.name for p in out_dir.iterdir())
    parts = [f"part-{k:05d}.jsonl" for k in range(5)]
    assert names == sorted(["README.md", "manifest.json", "stage.json", *parts])
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert manifest["num_shards"] == 5
    assert manifest["num_records_per_shard"] == [10, 10, 10, 10, 6]
    assert manifest["num_records"] == 46
    assert (manifest["fingerprint"], manifest["meta"], manifest["num_inputs"]) == ("f", {"seed": 3}, 23)
    assert "created" in manifest
    assert read_stage(out_dir) == records


def test_complete_stage_is_skipped(tmp_path):
    expected = run_stage(tmp_path, INPUTS, square, shard_size=SHARD_SIZE, fingerprint="f")
    fn = CountingFn()
    assert run_stage(tmp_path, INPUTS, fn, shard_size=SHARD_SIZE, fingerprint="f") == expected
    assert fn.chunk_starts == []


def test_resume_after_exception_recomputes_only_later_chunks(tmp_path):
    out_dir = tmp_path / "stage"
    with pytest.raises(RuntimeError, match="worker crashed"):
        run_stage(out_dir, INPUTS, CountingFn(fail_at=3), shard_size=SHARD_SIZE, fingerprint="f")
    assert not stage_is_complete(out_dir)
    assert not (out_dir / "manifest.json").exists()
    assert [shard_path(out_dir, k).exists() for k in range(5)] == [True, True, True, False, False]
    fn = CountingFn()
    assert run_stage(out_dir, INPUTS, fn, shard_size=SHARD_SIZE, fingerprint="f") == uninterrupted(tmp_path)
    assert fn.chunk_starts == [15, 20]


def test_leftover_tmp_and_missing_shards_are_redone(tmp_path):
    out_dir = tmp_path / "stage"
    with pytest.raises(RuntimeError):
        run_stage(out_dir, INPUTS, CountingFn(fail_at=3), shard_size=SHARD_SIZE, fingerprint="f")
    shard_path(out_dir, 1).unlink()
    (out_dir / "part-00003.jsonl.tmp").write_text('{"x": 15, "y"')  # a write cut off by a kill
    fn = CountingFn()
    assert run_stage(out_dir, INPUTS, fn, shard_size=SHARD_SIZE, fingerprint="f") == uninterrupted(tmp_path)
    assert fn.chunk_starts == [5, 15, 20]
    assert not list(out_dir.glob("*.tmp"))


KILLED_RUN = """
import os, sys
from selftaught.data.shards import run_stage

def square_or_die(chunk):
    if chunk[0] == 2 * {shard_size}:
        os._exit(1)
    return [{{"x": x, "y": value}} for x in chunk for value in (x * x, -x)]

run_stage(sys.argv[1], list(range({num_inputs})), square_or_die, shard_size={shard_size}, fingerprint="f")
"""


def test_stage_killed_for_real_resumes(tmp_path):
    out_dir = tmp_path / "stage"
    script = tmp_path / "killed_run.py"
    script.write_text(textwrap.dedent(KILLED_RUN.format(shard_size=SHARD_SIZE, num_inputs=len(INPUTS))))
    result = subprocess.run(
        [sys.executable, str(script), str(out_dir)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    assert not stage_is_complete(out_dir)
    assert sorted(p.name for p in out_dir.glob("part-*")) == ["part-00000.jsonl", "part-00001.jsonl"]
    fn = CountingFn()
    assert run_stage(out_dir, INPUTS, fn, shard_size=SHARD_SIZE, fingerprint="f") == uninterrupted(tmp_path)
    assert fn.chunk_starts == [10, 15, 20]


@pytest.mark.parametrize("complete", [True, False])
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"fingerprint": "g"}, "fingerprint='f'"),
        ({"shard_size": 4}, "shard_size=5"),
        ({"inputs": INPUTS[:-1]}, "num_inputs=23"),
    ],
)
def test_a_different_configuration_is_refused(tmp_path, complete, change, expected):
    fn = CountingFn(fail_at=None if complete else 2)
    if complete:
        run_stage(tmp_path, INPUTS, fn, shard_size=SHARD_SIZE, fingerprint="f")
    else:
        with pytest.raises(RuntimeError):
            run_stage(tmp_path, INPUTS, fn, shard_size=SHARD_SIZE, fingerprint="f")
    kwargs = {"inputs": INPUTS, "shard_size": SHARD_SIZE, "fingerprint": "f", **change}
    with pytest.raises(ValueError, match=f"computed with {expected}.*use a new directory or delete"):
        run_stage(tmp_path, kwargs.pop("inputs"), square, **kwargs)


def test_part_files_of_unknown_origin_are_refused(tmp_path):
    shard_path(tmp_path, 0).write_text('{"x": 0}\n')
    with pytest.raises(ValueError, match="no stage.json"):
        run_stage(tmp_path, INPUTS, square, shard_size=SHARD_SIZE, fingerprint="f")


def test_read_stage_checks_completeness_and_counts(tmp_path):
    with pytest.raises(ValueError, match="not a completed stage"):
        read_stage(tmp_path)
    run_stage(tmp_path, INPUTS, square, shard_size=SHARD_SIZE, fingerprint="f")
    lines = shard_path(tmp_path, 2).read_text().splitlines()
    shard_path(tmp_path, 2).write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="part-00002.jsonl has 9 records but manifest.json says 10"):
        read_stage(tmp_path)


def test_empty_inputs_and_bad_arguments(tmp_path):
    assert run_stage(tmp_path / "empty", [], square, shard_size=SHARD_SIZE, fingerprint="f") == []
    assert stage_is_complete(tmp_path / "empty")
    with pytest.raises(ValueError, match="shard_size must be >= 1"):
        run_stage(tmp_path / "a", INPUTS, square, shard_size=0, fingerprint="f")
    with pytest.raises(TypeError, match="must return a list of dicts; for shard 0"):
        run_stage(tmp_path / "b", INPUTS, lambda chunk: chunk, shard_size=SHARD_SIZE, fingerprint="f")


def test_compute_fingerprint():
    assert compute_fingerprint({"a": 1, "b": [1, 2]}) == compute_fingerprint({"b": [1, 2], "a": 1})
    assert compute_fingerprint({"a": 1}) != compute_fingerprint({"a": 2})
    assert len(compute_fingerprint("x")) == 64


@pytest.mark.parametrize("how", ["data_files", "directory"])
def test_a_completed_stage_loads_with_hugging_face_datasets(tmp_path, monkeypatch, how):
    """The shard pattern, or the directory itself (its README.md card names the data files); the JSON
    manifest beside the shards is not read as data."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    out_dir = tmp_path / "stage"
    records = run_stage(out_dir, INPUTS, square, shard_size=SHARD_SIZE, fingerprint="f", meta={"seed": 3})
    if how == "data_files":
        loaded = datasets.load_dataset(
            "json", data_files=f"{out_dir}/part-*.jsonl", split="train", cache_dir=str(tmp_path / "cache")
        )
    else:
        loaded = datasets.load_dataset(str(out_dir), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.to_list() == records
