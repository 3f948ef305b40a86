"""The natural-reasoning flow survives SIGKILL anywhere: killed inside the annotation stage (between
shards), after the questions, inside the teacher responses, inside the distillation SFT, after the
self-training samples and inside an RFT run, then rerun, it ends with the same records (none lost,
none duplicated), models and summary as a run never interrupted. Runs the CLI command."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selftaught.data.shards import read_stage

STAGES = ("annotate/replies", "annotate/ratings", "backtranslate/replies", "backtranslate/parsed", "dedup",
          "decontam", "responses", "self-train/samples", "self-train/scores")  # fmt: skip
KILL_AFTER = (
    "annotate/replies/part-00002.jsonl",
    "backtranslate/parsed/manifest.json",
    "responses/part-00001.jsonl",
    "distill/checkpoints/step-0000004",
    "self-train/samples/manifest.json",
    "self-train/self-score-rft/checkpoints/step-0000004",
)
"""Each path, once it exists, kills the running flow (in this order, one process each)."""
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # same threads in every process: same float sums


def _cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "selftaught.cli", "natural-reasoning", "--preset", "tiny-smoke",
            f"out_dir={out}", "shard_size=16"]  # fmt: skip


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(f).items()}


@pytest.mark.slow  # eight processes, about 2 minutes on a quiet 2-core machine
def test_a_flow_killed_anywhere_ends_as_one_never_killed(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_cmd(straight), env=ENV, check=True, capture_output=True)
    for path in KILL_AFTER:
        proc = subprocess.Popen(_cmd(killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while not (killed / path).exists():
            assert proc.poll() is None and time.time() < deadline, f"the flow ended before {path} appeared"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (killed / "summary.json").exists(), f"the flow finished before it was killed at {path}"
    subprocess.run(_cmd(killed), env=ENV, check=True, capture_output=True)

    for stage in STAGES:
        one, other = read_stage(straight / stage), read_stage(killed / stage)
        assert one == other, stage
        ids = [r["id"] for r in other]
        assert len(ids) == len(set(ids)), f"{stage}: duplicated records"
    for name in ("distill.jsonl",):
        assert (killed / "data" / name).read_text() == (straight / "data" / name).read_text()
    for arm in ("distill", "self-train/self-score-rft", "self-train/self-score-dpo"):
        one, other = _weights(straight / arm / "model"), _weights(killed / arm / "model")
        assert one.keys() == other.keys() and all(torch.equal(one[k], other[k]) for k in one), arm
    assert json.loads((killed / "summary.json").read_text()) == json.loads(
        (straight / "summary.json").read_text()
    )
    assert "resuming from step" in (killed / "distill" / "log.txt").read_text()
