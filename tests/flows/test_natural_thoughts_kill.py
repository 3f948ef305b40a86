"""The natural-thoughts flow survives SIGKILL at every kind of stage: killed after the teacher's
traces, inside the annotation, after the weak model's answers and inside the SFT run, rerun each
time, it ends with the same pool, data, model and summary as a run never interrupted."""

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
        "natural-thoughts",
        "--preset",
        "tiny-smoke",
        f"model={model_dir}",
        f"weak_model={model_dir}",
        f"out_dir={out}",
        "num_questions=24",
        "budget=12",
        "sft_steps=6",
        "eval_per_level=2",
        "eval_max_new_tokens=16",
    ]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
KILL_AFTER = (
    "pool/traces/traces/manifest.json",
    "pool/annotate/strategies/parsed/manifest.json",
    "pool/difficulty/weak/manifest.json",
    "sft/run/checkpoints/step-0000003",
)
"""Each path, once it exists, kills the running flow (in this order, one process each)."""


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(f).items()}


@pytest.mark.slow  # six processes, about 40 s on a quiet 2-core machine
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

    assert (killed / "data" / "sft.jsonl").read_text() == (straight / "data" / "sft.jsonl").read_text()
    one, other = _weights(straight / "sft" / "run" / "model"), _weights(killed / "sft" / "run" / "model")
    assert one.keys() == other.keys() and all(torch.equal(one[k], other[k]) for k in one)
    assert json.loads((killed / "summary.json").read_text()) == json.loads(
        (straight / "summary.json").read_text()
    )
    assert "resuming from step" in (killed / "sft" / "run" / "log.txt").read_text()
