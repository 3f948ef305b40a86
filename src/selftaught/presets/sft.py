"""sft presets: continued SFT of the tiny-world student, and LoRA SFT of Gemma 3 270M on GSM8K."""

from __future__ import annotations

from pathlib import Path

from selftaught.configs.recipes import SFTConfig, SFTDataConfig, judge_seed_config
from selftaught.configs.train import EvalConfig, LoraConfig, OptimConfig

GSM8K_DIR = Path("../shared/data/gsm8k")
"""Where the GSM8K files are expected relative to the working directory (override `data.source`)."""


def tiny() -> SFTConfig:
    """Continued SFT of the student on a *clean* teacher (TINYWORLD §3b's oracle: +18 points)."""
    return SFTConfig(
        out_dir="runs/sft-tiny",
        model="tiny-world",
        num_steps=450,
        eval=EvalConfig(data="world:valid", every=150, per_level=100),
    )


def tiny_judge() -> SFTConfig:
    """J1's tiny seed judge (the `tiny-world-judge` alias trains this config once and caches it): the
    student SFT-ed on a position-biased teacher's judgments of world judge pairs."""
    return judge_seed_config()


def tiny_smoke() -> SFTConfig:
    """A few SFT steps on a handful of examples: checks the pipeline, not the effect."""
    return SFTConfig(
        out_dir="runs/sft-smoke",
        model="tiny-world",
        num_steps=4,
        batch_size=8,
        micro_batch_tokens=128,
        data=SFTDataConfig(num_examples=64),
        optim=OptimConfig(lr=1e-3, schedule="constant"),
        eval=EvalConfig(data="world:valid", every=2, per_level=4),
        checkpoint_every=2,
        log_every=1,
    )


def gemma3_270m() -> SFTConfig:
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
