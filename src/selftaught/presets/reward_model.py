"""reward-model presets: a Bradley-Terry reward model from the tiny-world student."""

from __future__ import annotations

from selftaught.configs.recipes import RewardModelConfig, RewardModelDataConfig
from selftaught.configs.train import EvalConfig, OptimConfig


def tiny() -> RewardModelConfig:
    """A reward model from the student: correct vs buggy-carry chain solutions, 300 steps of 32 pairs."""
    return RewardModelConfig(out_dir="runs/reward-model-tiny", model="tiny-world", num_steps=300)


def tiny_smoke() -> RewardModelConfig:
    """A few reward-model steps on 64 pairs: checks the pipeline, not the effect."""
    return RewardModelConfig(
        out_dir="runs/reward-model-smoke",
        model="tiny-world",
        num_steps=4,
        batch_size=8,
        data=RewardModelDataConfig(num_pairs=64, num_valid_pairs=16),
        optim=OptimConfig(lr=1e-3, schedule="constant"),
        eval=EvalConfig(every=2, batch_size=128),
        checkpoint_every=2,
        log_every=1,
    )
