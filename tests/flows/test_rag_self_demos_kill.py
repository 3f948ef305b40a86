"""The rag-self-demos flow survives SIGKILL at every kind of stage: a process killed after the
candidates, after the tournament, inside the self-demo SFT run and inside the DPO run, rerun each
time, ends with the same data, models and table as a run never interrupted."""

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


def _cmd(model_dir: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "selftaught.cli",
        "rag-self-demos",
        "--preset",
        "tiny-smoke",
        f"model={model_dir}",
        f"out_dir={out}",
        "limit=6",
        "eval_limit=4",
        "sft.num_steps=6",
        "sft.checkpoint_every=1",
        "dpo.num_steps=6",
        "dpo.checkpoint_every=1",
    ]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # same threads in every process: same float sums
KILL_AFTER = (
    "candidates/Rag/manifest.json",
    "tournament/manifest.json",
    "sd-sft/checkpoints/step-0000002",
    "sd-dpo/checkpoints/step-0000003",
)
"""Each path, once it exists, kills the running flow (in this order, one process each)."""


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(f).items()}


@pytest.mark.slow  # seven processes, about 40 s on a quiet 2-core machine
def test_a_flow_killed_at_every_stage_ends_as_one_never_killed(tiny_model_dir, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_cmd(tiny_model_dir, straight), env=ENV, check=True, capture_output=True)

    for path in KILL_AFTER:
        proc = subprocess.Popen(
            _cmd(tiny_model_dir, killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 300
        while not (killed / path).exists():
            assert proc.poll() is None and time.time() < deadline, f"the flow ended before {path} appeared"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (killed / "summary.json").exists(), f"the flow finished before it was killed at {path}"
    subprocess.run(_cmd(tiny_model_dir, killed), env=ENV, check=True, capture_output=True)

    for name in ("sd-sft.jsonl", "sd-dpo.jsonl", "ra-it.jsonl"):
        assert (killed / "data" / name).read_text() == (straight / "data" / name).read_text()
    for arm in ("ra-it", "sd-sft", "sd-dpo"):
        one, other = _weights(straight / arm / "model"), _weights(killed / arm / "model")
        assert one.keys() == other.keys() and all(torch.equal(one[k], other[k]) for k in one), arm
    assert (killed / "table.md").read_text() == (straight / "table.md").read_text()
    summary = json.loads((killed / "summary.json").read_text())
    assert summary == json.loads((straight / "summary.json").read_text())
    assert "resuming from step" in (killed / "sd-sft" / "log.txt").read_text()
    assert "resuming from step" in (killed / "sd-dpo" / "log.txt").read_text()
