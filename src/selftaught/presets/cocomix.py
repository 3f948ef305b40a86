"""cocomix presets: the tiny latent-concept world of papers_B §5.10 (a 4-layer d = 128 teacher, a
TopK SAE C = 256, k = 8 on its layer-2 residuals, 4-layer students at context 128)."""

from __future__ import annotations

from dataclasses import replace

from selftaught.configs.cocomix import (
    CocomixConfig,
    CorpusConfig,
    SAEConfig,
    ShapeConfig,
    SteeringConfig,
    TeacherConfig,
)
from selftaught.configs.train import EvalConfig


def tiny() -> CocomixConfig:
    """CoCoMix (interleave after block 2, lambda 0.1, attribution labels) on the tiny concept world."""
    return CocomixConfig()


def tiny_smoke() -> CocomixConfig:
    """Seconds: a 2-layer teacher and student, short sequences, a few steps (CLI and resume tests)."""
    return CocomixConfig(
        out_dir="runs/cocomix-smoke",
        num_steps=4,
        log_every=1,
        checkpoint_every=2,
        corpus=CorpusConfig(seq_len=32, batch_size=4, val_sequences=8),
        teacher=TeacherConfig(
            shape=ShapeConfig(hidden_size=32, num_layers=2, ffn_size=64), num_steps=4, layer=1
        ),
        sae=SAEConfig(num_latents=64, k=4, num_steps=5, batch_size=64, num_sequences=8),
        student=ShapeConfig(hidden_size=32, num_layers=2, ffn_size=64),
        insert_layer=1,
        k_concept=4,
        steering=SteeringConfig(scales=[1.0, 5.0], num_prompts=4, prompt_len=8, new_tokens=4),
        eval=EvalConfig(every=2),
        optim=replace(CocomixConfig().optim, warmup_steps=1),
    )


GSM8K_TRAIN = "../shared/data/gsm8k/train.jsonl"
"""Real text for the Gemma preset, relative to the working directory (override `corpus.text_file`)."""


def gemma3_270m() -> CocomixConfig:
    """Gemma 3 270M base as the frozen teacher: a TopK SAE (C = 1024, k = 16) on its layer-9 residual
    stream (of 18) over 4,096 tokens of GSM8K train text, attribution labels on real text, and a tiny
    CoCoMix student (4 layers, d = 64, Gemma's vocabulary) trained 20 steps of 4 x 64 tokens."""
    return CocomixConfig(
        out_dir="runs/cocomix-gemma3-270m",
        num_steps=20,
        log_every=5,
        checkpoint_every=10,
        corpus=CorpusConfig(
            text_file=GSM8K_TRAIN, text_tokens=8192, seq_len=64, batch_size=4, val_sequences=8
        ),
        teacher=TeacherConfig(model="gemma-3-270m", layer=9),
        sae=SAEConfig(num_latents=1024, k=16, num_steps=300, batch_size=256, num_sequences=64),
        student=ShapeConfig(hidden_size=64, num_layers=4),
        insert_layer=2,
        k_concept=16,
        eval=EvalConfig(every=10),
        optim=replace(CocomixConfig().optim, warmup_steps=2),
    )
