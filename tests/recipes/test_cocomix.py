"""The cocomix recipe on its tiny-smoke preset: a complete run directory from the CLI, every arm of
the reproduction runs, the teacher is trained once per config, and a killed run resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from selftaught.cli import main
from selftaught.config import apply_overrides
from selftaught.presets import RECIPES

RECIPE = RECIPES["cocomix"]


def smoke(out_dir, **changes):
    return replace(RECIPE.preset("tiny-smoke"), out_dir=str(out_dir), **changes)


def test_the_cli_runs_the_smoke_preset(tmp_path):
    out = tmp_path / "run"
    assert main(["cocomix", "--preset", "tiny-smoke", f"out_dir={out}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["val_ppl"] > 1
    assert {"val_concept_top1_acc", "compress_col_norm_mean", "steering", "teacher"} <= summary.keys()
    assert {"sae_nmse", "sae_dead_fraction", "sae_topic_mi_bits", "teacher_val_ppl"} <= summary[
        "teacher"
    ].keys()
    assert (out / "model" / "cocomix.json").is_file() and (out / "config.yaml").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if "concept_loss" in r]
    assert trained and all(torch.isfinite(torch.tensor(r["loss"])) for r in trained)
    assert "label_positive_share" in trained[0]


@pytest.mark.parametrize("arm", list(RECIPE.arms))
def test_every_reproduction_arm_runs(tmp_path, arm):
    cfg = apply_overrides(
        smoke(
            tmp_path / arm,
            num_steps=2,
            teacher=replace(smoke(tmp_path).teacher, dir=str(tmp_path / "teacher")),
        ),
        list(RECIPE.arms[arm]),
    )
    summary = RECIPE.run(cfg)
    assert summary["steps"] == 2 and summary["val_ppl"] > 1
    if arm in ("ntp", "kd"):  # width-matched to CoCoMix's active parameters
        cocomix = RECIPE.run(
            replace(
                cfg,
                out_dir=str(tmp_path / "ref"),
                mixer="interleave",
                concept_weight=0.1,
                kd_weight=0.0,
                match_active_params=False,
            )
        )
        assert abs(summary["active_params"] - cocomix["active_params"]) < 0.1 * cocomix["active_params"]
        assert summary["train_flops_per_token"] < cocomix["train_flops_per_token"]


def test_the_teacher_is_trained_once_per_config(tmp_path, monkeypatch):
    teacher = replace(smoke(tmp_path).teacher, dir=str(tmp_path / "teacher"))
    RECIPE.run(smoke(tmp_path / "a", num_steps=1, teacher=teacher))
    import selftaught.recipes.cocomix as recipe

    monkeypatch.setattr(recipe, "train_teacher", lambda *a: pytest.fail("the teacher was retrained"))
    RECIPE.run(smoke(tmp_path / "b", num_steps=1, seed=1, teacher=teacher))


def _cmd(out):
    return [sys.executable, "-m", "selftaught.cli", "cocomix", "--preset", "tiny-smoke", f"out_dir={out}",
            "num_steps=8", "checkpoint_every=2", "keep_last=10", "eval.every=-1"]  # fmt: skip


def test_a_killed_run_resumes_exactly(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_cmd(tmp_path / "straight"), env=env, check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step-0000004").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its 4th step checkpoint"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "model").exists(), "the run finished before it was killed"
    subprocess.run(_cmd(killed), env=env, check=True, capture_output=True)
    for name in ("model.safetensors", "concept_mixer.safetensors"):
        straight, resumed = (
            load_file(tmp_path / "straight" / "model" / name),
            load_file(killed / "model" / name),
        )
        assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    losses = {}
    for name in ("straight", "killed"):
        for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines():
            record = json.loads(line)
            if "loss" in record:
                losses[name, record["step"]] = record["loss"]
    assert all(losses["killed", s] == losses["straight", s] for s in range(1, 9))
    assert "resuming from step" in (killed / "log.txt").read_text()


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="concept_weight > 0 needs a concept head"):
        apply_overrides(RECIPE.preset("tiny-smoke"), ["mixer=none"])
    with pytest.raises(ValueError, match="match_active_params"):
        apply_overrides(RECIPE.preset("tiny-smoke"), ["match_active_params=true"])
    with pytest.raises(ValueError, match="insert_layer"):
        apply_overrides(RECIPE.preset("tiny-smoke"), ["insert_layer=2"])
    with pytest.raises(ValueError, match="corpus.text_file and teacher.model go together"):
        apply_overrides(RECIPE.preset("tiny-smoke"), ["teacher.model=gemma-3-270m"])


def test_the_students_weights_depend_on_the_seed_only():
    """A run that trained its teacher in-process and one that loaded it cached start alike."""
    from selftaught.recipes.cocomix import build_student

    cfg = RECIPE.preset("tiny-smoke")
    torch.manual_seed(1)
    first = build_student(cfg, 64).state_dict()
    torch.manual_seed(2)
    torch.randn(100)
    second = build_student(cfg, 64).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
