"""The sft recipe: a complete run directory, accumulation = one batch, and exact resume after a
real process is killed (SIGKILL) mid-run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from selftaught.cli import main
from selftaught.data.order import batch_indices


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


def test_smoke_run_writes_a_loadable_model_and_learns(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["sft", "--preset", "tiny-smoke", f"out_dir={out}", f"model={tiny_model_dir}"]) == 0
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "log.txt",
        "checkpoints/step-0000004/model.safetensors",
        "model/model.safetensors",
        "model/tokenizer.json",
    ):
        assert (out / name).exists(), name
    before, after = _weights(Path(tiny_model_dir)), _weights(out / "model")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert [m["step"] for m in metrics if "val_accuracy" in m] == [0, 2, 4]
    log = (out / "log.txt").read_text()  # the header and one line per evaluation, as on the console
    assert "sft: " in log and "step 0: val_accuracy" in log and "step 2: val_accuracy" in log
    assert "step 4 (final): val_accuracy" in log
    AutoModelForCausalLM.from_pretrained(out / "model")  # plain transformers can load it


def test_gradient_accumulation_equals_one_big_batch(tiny_model_dir, tmp_path):
    common = [
        "sft",
        "--preset",
        "tiny-smoke",
        f"model={tiny_model_dir}",
        "eval.every=-1",
        "checkpoint_every=0",
        "num_steps=2",
        "batch_size=16",
    ]
    assert main([*common, f"out_dir={tmp_path / 'one'}", "micro_batch_tokens=0"]) == 0
    assert main([*common, f"out_dir={tmp_path / 'many'}", "micro_batch_tokens=60"]) == 0
    one, many = _weights(tmp_path / "one" / "model"), _weights(tmp_path / "many" / "model")
    for key in one:
        # AdamW divides by sqrt(v): float-summation noise (1e-7) can reach ~1e-6 in weights after 2 steps,
        # while a wrong normaliser reweights micro-batches and moves weights by ~lr = 1e-3
        torch.testing.assert_close(one[key], many[key], atol=1e-5, rtol=0)


def test_batch_order_is_a_pure_function_of_position():
    stream = batch_indices(0, 25, 10, seed=3)
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert batch_indices(7, 9, 10, seed=3) == stream[7:16]
    assert batch_indices(0, 10, 10, seed=4) != stream[:10]


def _sft_cmd(model_dir: str, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "selftaught.cli",
        "sft",
        "--preset",
        "tiny-smoke",
        f"model={model_dir}",
        f"out_dir={out}",
        "num_steps=12",
        "checkpoint_every=2",
        "keep_last=20",
        "eval.every=-1",
    ]


def test_killed_run_resumes_exactly(tiny_model_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same threads in every process: same float sums
    subprocess.run(_sft_cmd(tiny_model_dir, tmp_path / "straight"), env=env, check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _sft_cmd(tiny_model_dir, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step-0000004").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its 4th step checkpoint"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "model").exists(), "the run finished before it was killed"
    resumed_from = max(int(p.name.split("-")[1]) for p in (killed / "checkpoints").glob("step-*"))

    subprocess.run(_sft_cmd(tiny_model_dir, killed), env=env, check=True, capture_output=True)
    straight, resumed = _weights(tmp_path / "straight" / "model"), _weights(killed / "model")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    loss = {}
    for name in ("straight", "killed"):  # the last logged value of each step
        for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            if "loss" in record:
                loss[name, record["step"]] = record["loss"]
    assert loss["killed", resumed_from + 1] == loss["straight", resumed_from + 1]
    assert "resuming from step" in (killed / "log.txt").read_text()
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps)  # the steps redone after the checkpoint are not logged twice


@pytest.mark.slow
def test_gemma_lora_preset_runs_and_saves_a_merged_model(tmp_path):
    gsm8k = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k"
    out = tmp_path / "gemma"
    assert (
        main(
            [
                "sft",
                "--preset",
                "gemma3-270m",
                f"out_dir={out}",
                f"data.source={gsm8k / 'train.jsonl'}",
                "num_steps=2",
                "data.limit=16",
                "eval.every=-1",
            ]
        )
        == 0
    )
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(m["loss"])) for m in metrics if "loss" in m)
    weights = _weights(out / "model")
    assert not any("lora" in key for key in weights)  # adapters merged into plain weights


def test_a_resume_with_another_learning_rate_is_refused(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["sft", "--preset", "tiny-smoke", f"out_dir={out}", f"model={tiny_model_dir}", "eval.every=-1"]
    assert main(common) == 0
    shutil.rmtree(out / "model")
    assert main([*common, "optim.lr=0.5"]) == 2
    assert "optim.lr: 0.001 -> 0.5" in capsys.readouterr().err
    assert "lr: 0.001" in (out / "config.yaml").read_text()  # the run's own config is kept
    assert main([*common, "num_steps=6"]) == 0  # extending the run is a resume, not another config


def test_emphasis_reweights_tokens_and_weight_one_is_the_plain_run(tiny_model_dir, tmp_path):
    common = [
        "sft",
        "--preset",
        "tiny-smoke",
        f"model={tiny_model_dir}",
        "eval.every=-1",
        "checkpoint_every=0",
        "num_steps=2",
        "batch_size=16",
    ]
    assert main([*common, f"out_dir={tmp_path / 'plain'}"]) == 0
    assert main([*common, f"out_dir={tmp_path / 'one'}", 'data.emphasis={"Answer": 1.0}']) == 0
    assert main([*common, f"out_dir={tmp_path / 'five'}", 'data.emphasis={"Answer: [0-9]+": 5.0}']) == 0
    plain, one, five = (_weights(tmp_path / name / "model") for name in ("plain", "one", "five"))
    assert all(torch.equal(plain[key], one[key]) for key in plain)
    assert any(not torch.allclose(plain[key], five[key]) for key in plain)
    assert "  emphasis:" in (tmp_path / "five" / "config.yaml").read_text()
    assert "  emphasis:" not in (tmp_path / "plain" / "config.yaml").read_text()  # runs keep their keys
