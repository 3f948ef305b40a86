"""The system2-distill flow survives SIGKILL at every kind of stage: killed after a System 2 shard, after
the curation, inside the distillation SFT and after an evaluation, rerun each time, it ends with the
same samples, data, model and table as a run never interrupted. System 1 / System 2 are the scripted
oracle (`system2_oracle.py`); the student is a real random-init model trained by the sft recipe."""

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

ORACLE = Path(__file__).with_name("system2_oracle.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
KILL_AFTER = (
    "system2/part-00001.jsonl",
    "data/done.json",
    "distilled/run/checkpoints/step-0000002",
    "eval/system1/done.json",
)
"""Each path, once it exists, kills the running flow (in this order, one process each)."""


def _cmd(model_dir: str, out: Path) -> list[str]:
    return [
        sys.executable,
        str(ORACLE),
        model_dir,
        "system2-distill",
        "--preset",
        "tiny-smoke",
        f"model={model_dir}",
        f"out_dir={out}",
        "sft_steps=6",
    ]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(f).items()}


@pytest.mark.slow  # six processes, about 30 s on a quiet 2-core machine
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
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (killed / "summary.json").exists(), f"the flow finished before it was killed at {path}"
    subprocess.run(_cmd(tiny_model_dir, killed), env=ENV, check=True, capture_output=True)

    for name in ("system2/part-00000.jsonl", "system2/part-00002.jsonl", "data/sft.jsonl", "table.md"):
        assert (killed / name).read_text() == (straight / name).read_text(), name
    one, other = _weights(straight / "distilled/run/model"), _weights(killed / "distilled/run/model")
    assert one.keys() == other.keys() and all(torch.equal(one[k], other[k]) for k in one)
    assert json.loads((killed / "summary.json").read_text()) == json.loads(
        (straight / "summary.json").read_text()
    )
    assert "resuming from step" in (killed / "distilled/run/log.txt").read_text()
