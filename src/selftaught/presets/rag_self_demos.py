"""rag-self-demos presets: the tiny world's knowledge base (papers_A.md §4.6)."""

from __future__ import annotations

from dataclasses import replace

from selftaught.configs.recipes import RagSelfDemosConfig


def tiny() -> RagSelfDemosConfig:
    """The knowledge base's 755 training questions, 9 candidates each, the programmatic gold-aware
    judge; RA-IT, self-demo SFT and DPO from `tiny-world-facts` (150 steps of 32); evaluation on the
    245 test questions with and without passages."""
    return RagSelfDemosConfig()


def tiny_smoke() -> RagSelfDemosConfig:
    """24 questions, 2 candidates per strategy, 4 training steps per arm, 12 evaluation questions:
    checks the pipeline, not the effect."""
    cfg = RagSelfDemosConfig(
        out_dir="runs/rag-self-demos-smoke", limit=24, eval_limit=12, samples_per_strategy=2
    )
    return replace(
        cfg,
        sft=replace(
            cfg.sft,
            num_steps=4,
            batch_size=8,
            log_every=1,
            checkpoint_every=2,
            optim=replace(cfg.sft.optim, warmup_steps=1),
        ),
        dpo=replace(cfg.dpo, num_steps=4, batch_size=8, log_every=1, checkpoint_every=2),
    )
