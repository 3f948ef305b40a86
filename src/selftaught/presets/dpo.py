"""dpo presets: offline DPO of the tiny-world student on its own samples, and LoRA DPO of Gemma 3
270M on GSM8K pairs."""

from __future__ import annotations

from pathlib import Path

from selftaught.configs.recipes import DPOConfig, DPODataConfig
from selftaught.configs.train import EvalConfig, LoraConfig, OptimConfig

GSM8K_DIR = Path("../shared/data/gsm8k")
"""Where the GSM8K files are expected relative to the working directory (override `data.source`)."""


def tiny() -> DPOConfig:
    """Offline DPO of the student on its own pairs: a random correct vs a random incorrect sample of
    8 at temperature 1 (TINYWORLD §3b: offline DPO peaks early, then drifts; `nll_scale=1` anchors it)."""
    return DPOConfig(
        out_dir="runs/dpo-tiny",
        model="tiny-world",
        data=DPODataConfig(source="world:prompts", num_prompts=512, samples_per_prompt=8),
        num_steps=100,
        batch_size=32,
        beta=0.1,
        optim=OptimConfig(lr=1e-5, eps=1e-8, schedule="constant"),
        eval=EvalConfig(data="world:valid", every=25, per_level=100),
    )


def tiny_smoke() -> DPOConfig:
    """A few DPO steps on pairs from 16 prompts: checks the pipeline, not the effect."""
    return DPOConfig(
        out_dir="runs/dpo-smoke",
        model="tiny-world",
        data=DPODataConfig(source="world:prompts", num_prompts=16, samples_per_prompt=4, max_new_tokens=48),
        num_steps=4,
        batch_size=4,
        micro_batch_tokens=256,
        optim=OptimConfig(lr=1e-4, schedule="constant"),
        eval=EvalConfig(data="world:valid", every=2, per_level=4),
        checkpoint_every=2,
        log_every=1,
    )


def gemma3_270m() -> DPOConfig:
    """A few LoRA DPO steps on GSM8K train pairs: the reference solution (chosen) against the same
    solution with a wrong final number (rejected), built by `data.formats.gsm8k_preference_records`."""
    return DPOConfig(
        out_dir="runs/dpo-gemma3-270m",
        model="gemma-3-270m",
        data=DPODataConfig(source=str(GSM8K_DIR / "train.jsonl"), limit=32, max_length=384),
        num_steps=4,
        batch_size=8,
        micro_batch_tokens=4096,
        lora=LoraConfig(r=8, alpha=16),
        optim=OptimConfig(lr=5e-5, schedule="constant"),
        eval=EvalConfig(data=str(GSM8K_DIR / "test.jsonl"), every=-1, limit=20, num_shots=4, batch_size=20),
        checkpoint_every=0,
        log_every=1,
    )
