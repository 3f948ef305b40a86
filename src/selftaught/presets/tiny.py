"""Tiny-world presets: everything runs on two CPU cores in minutes."""

from __future__ import annotations

from dataclasses import replace

from selftaught.recipes.common import EvalConfig
from selftaught.recipes.sft import SFTConfig, SFTDataConfig
from selftaught.recipes.world_pretrain import WorldPretrainConfig
from selftaught.train.optim import OptimConfig


def world_pretrain() -> WorldPretrainConfig:
    """The default base student: xs Llama, buggy teacher (bug 0.6), stop at 60% valid accuracy."""
    return WorldPretrainConfig()


def world_pretrain_smoke() -> WorldPretrainConfig:
    """A few steps of the same pipeline, for tests and a quick look (accuracy stays near 0)."""
    return WorldPretrainConfig(
        out_dir="runs/world-pretrain-smoke",
        num_examples=512,
        max_steps=20,
        optim_steps=20,
        optim=replace(WorldPretrainConfig().optim, warmup_steps=5),
        eval_every=10,
        eval_per_level=10,
        test_per_level=10,
        log_every=5,
    )


def sft() -> SFTConfig:
    """Continued SFT of the student on a *clean* teacher (TINYWORLD §3b's oracle: +18 points)."""
    return SFTConfig(out_dir="runs/sft-tiny", model="tiny-world", num_steps=450,
                     eval=EvalConfig(data="world:valid", every=150, per_level=100))


def sft_smoke() -> SFTConfig:
    """A few SFT steps on a handful of examples: checks the pipeline, not the effect."""
    return SFTConfig(
        out_dir="runs/sft-smoke", model="tiny-world", num_steps=4, batch_size=8, micro_batch_tokens=128,
        data=SFTDataConfig(num_examples=64), optim=OptimConfig(lr=1e-3, schedule="constant"),
        eval=EvalConfig(data="world:valid", every=2, per_level=4), checkpoint_every=2, log_every=1,
    )
