"""Gemma 3 270M presets: the real small model from PyPI, on a laptop CPU (slow but real)."""

from __future__ import annotations

from pathlib import Path

from selftaught.recipes.common import EvalConfig, LoraConfig
from selftaught.recipes.dpo import DPOConfig, DPODataConfig
from selftaught.recipes.sft import SFTConfig, SFTDataConfig
from selftaught.train.optim import OptimConfig

GSM8K_DIR = Path("../shared/data/gsm8k")
"""Where the GSM8K files are expected relative to the working directory (override `data.source`)."""


def sft() -> SFTConfig:
    """A few LoRA steps on GSM8K train (question -> worked answer ending 'The answer is N.')."""
    return SFTConfig(
        out_dir="runs/sft-gemma3-270m",
        model="gemma-3-270m",
        data=SFTDataConfig(source=str(GSM8K_DIR / "train.jsonl"), limit=256, max_length=384),
        num_steps=8,
        batch_size=8,
        micro_batch_tokens=2048,
        lora=LoraConfig(r=8, alpha=16),
        optim=OptimConfig(lr=2e-4, schedule="constant"),
        eval=EvalConfig(data=str(GSM8K_DIR / "test.jsonl"), every=-1, limit=20, num_shots=4, batch_size=20),
        checkpoint_every=0,
        log_every=1,
    )


def dpo() -> DPOConfig:
    """A few LoRA DPO steps on GSM8K train pairs: the reference solution (chosen) against the same
    solution with a wrong final number (rejected), built by `recipes.dpo.gsm8k_preference_records`."""
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
