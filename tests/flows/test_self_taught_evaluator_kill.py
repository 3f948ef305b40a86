"""The Self-Taught Evaluator loop survives SIGKILL: killed after an iteration's annotation and inside
its SFT run (iterations 1 and 2), rerun each time, it ends with the same kept judgments, judge
weights, table and summary as a loop never interrupted."""

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

from selftaught.cli import main

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
KILL_AFTER = (
    "iter-1/data/done.json",
    "iter-1/sft/run/checkpoints/step-0000003",
    "iter-2/data/done.json",
    "iter-2/sft/run/checkpoints/step-0000003",
)
"""Each path, once it exists, kills the running loop (in this order, one process each)."""


@pytest.fixture(scope="module")
def list_judge(tmp_path_factory) -> str:
    """A small judge that writes the list world's check traces (not a good one: a format to sample;
    200 steps of 32 from scratch, about a minute on a quiet core)."""
    out = tmp_path_factory.mktemp("judge")
    argv = ["sft", "model=scratch:xs", "data.source=world:list-judge-sft", "data.num_examples=4000"]
    argv += ["data.max_length=128", "num_steps=200", "batch_size=32", "micro_batch_tokens=0"]
    argv += ["optim.lr=3e-3", "eval.every=-1", "checkpoint_every=0", f"out_dir={out}"]
    assert main(argv) == 0
    return str(out / "model")


def _cmd(model_dir: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "selftaught.cli",
        "self-taught-evaluator",
        "--preset",
        "tiny-smoke",
        f"model={model_dir}",
        f"out_dir={out}",
        "pairs=world-lists:train",
        "eval_pairs=world-lists:valid",
        "num_pairs=32",
        "samples_per_pair=4",
        "balance_labels=false",  # a weak judge's correct verdicts may all be one letter
        "sft_steps=6",
        "max_new_tokens=48",  # a list check trace runs to about 40 tokens
    ]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(f).items()}


def _summary(out: Path) -> list[dict]:
    text = (out / "summary.json").read_text().replace(str(out), "<out>")
    return json.loads(text)["iterations"]


@pytest.mark.slow  # a 200-step judge and six loop processes, a few minutes on 2 busy cores
@pytest.mark.timeout(1800)
def test_a_loop_killed_in_every_iteration_ends_as_one_never_killed(list_judge, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_cmd(list_judge, straight), env=ENV, check=True, capture_output=True)

    for path in KILL_AFTER:
        proc = subprocess.Popen(
            _cmd(list_judge, killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.time() + 600
            while not (killed / path).exists():
                assert proc.poll() is None and time.time() < deadline, (
                    f"the loop ended before {path} appeared"
                )
                time.sleep(0.005)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert not (killed / "summary.json").exists(), f"the loop finished before it was killed at {path}"
    subprocess.run(_cmd(list_judge, killed), env=ENV, check=True, capture_output=True)

    for i in (1, 2):
        data = Path("iter-" + str(i)) / "data" / "sft.jsonl"
        assert (killed / data).read_text() == (straight / data).read_text()
    final = Path("iter-2") / "sft" / "run" / "model"
    one, other = _weights(straight / final), _weights(killed / final)
    assert one.keys() == other.keys() and all(torch.equal(one[k], other[k]) for k in one)
    assert _summary(killed) == _summary(straight)
    assert (killed / "table.md").read_text() == (straight / "table.md").read_text()
    assert "resuming from step" in (killed / "iter-2" / "sft" / "run" / "log.txt").read_text()
