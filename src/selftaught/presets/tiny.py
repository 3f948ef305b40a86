"""Tiny-world presets: everything runs on two CPU cores in minutes."""

from __future__ import annotations

from dataclasses import replace

from selftaught.recipes.world_pretrain import WorldPretrainConfig


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
