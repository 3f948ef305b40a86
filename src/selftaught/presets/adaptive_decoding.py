"""adaptive-decoding presets: a temperature head over the tiny world's MATH + STORY base model
(TINYWORLD_JUDGES_LPO §3: 16 prompts x 8 samples, Adam lr 3e-3, beta 1, 300 steps)."""

from __future__ import annotations

from selftaught.configs.adaptive import AdaptiveDecodingConfig, HeadConfig, HeadLevel, LPOLoss
from selftaught.configs.train import EvalConfig, RolloutConfig


def tiny() -> AdaptiveDecodingConfig:
    """LPO (b) of a sequence-level head over `tiny-world-lpo`; validation every 100 steps."""
    return AdaptiveDecodingConfig()


def tiny_token() -> AdaptiveDecodingConfig:
    """A token-level head (a temperature per generated token) with the marginalised loss (c)."""
    return AdaptiveDecodingConfig(
        out_dir="runs/adaptive-decoding-token", head=HeadConfig(level=HeadLevel.TOKEN), loss=LPOLoss.MARGINAL
    )


def tiny_smoke() -> AdaptiveDecodingConfig:
    """Four steps on 4 prompts x 4 samples: checks the pipeline, not the effect."""
    return AdaptiveDecodingConfig(
        out_dir="runs/adaptive-decoding-smoke",
        num_steps=4,
        log_every=1,
        checkpoint_every=2,
        rollouts=RolloutConfig(
            prompts="world:lpo-prompts",
            num_prompts=4,
            samples_per_prompt=4,
            max_new_tokens=24,
            task_from_records=True,
        ),
        eval=EvalConfig(data="world:lpo", per_level=8, every=2),
    )
