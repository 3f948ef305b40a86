"""adaptive-decoding presets: a temperature head over the tiny world's MATH + STORY base model
(TINYWORLD_JUDGES_LPO §3: 16 prompts x 8 samples, Adam lr 3e-3, beta 1, 300 steps), and a token-level
head over the variant with constrained stories; and a head over Gemma 3 270M on GSM8K + story prompts."""

from __future__ import annotations

from pathlib import Path

from selftaught.configs.adaptive import AdaptiveDecodingConfig, HeadConfig, HeadLevel, LPOLoss
from selftaught.configs.train import EvalConfig, RolloutConfig, TaskConfig
from selftaught.data.gsm8k import STOP as GSM8K_STOP


def tiny() -> AdaptiveDecodingConfig:
    """LPO (b) of a sequence-level head over `tiny-world-lpo`; validation every 100 steps."""
    return AdaptiveDecodingConfig()


def tiny_token() -> AdaptiveDecodingConfig:
    """A token-level head (a temperature per generated token) with the marginalised loss (c)."""
    return AdaptiveDecodingConfig(
        out_dir="runs/adaptive-decoding-token", head=HeadConfig(level=HeadLevel.TOKEN), loss=LPOLoss.MARGINAL
    )


def tiny_cstory() -> AdaptiveDecodingConfig:
    """A token-level head (loss (c)) over `tiny-world-lpo-cstory`: MATH, STORY and CSTORY prompts in
    turn, where the best decoder is greedy on each part's first token (a designated digit) and hot
    elsewhere; validation reports the mean argmax temperature at those tokens and elsewhere."""
    return AdaptiveDecodingConfig(
        out_dir="runs/adaptive-decoding-cstory",
        model="tiny-world-lpo-cstory",
        head=HeadConfig(level=HeadLevel.TOKEN),
        loss=LPOLoss.MARGINAL,
        rollouts=RolloutConfig(
            prompts="world:lpo-cstory-prompts",
            num_prompts=18,
            samples_per_prompt=8,
            max_new_tokens=48,
            task_from_records=True,
        ),
        tasks=[
            TaskConfig(name="math", reward="world_answer", pair_rule="best_vs_worst"),
            TaskConfig(name="story", reward="story_quality", pair_rule="best_vs_worst"),
            TaskConfig(name="cstory", reward="cstory_quality", pair_rule="best_vs_worst"),
        ],
        eval=EvalConfig(data="world:lpo-cstory", per_level=150, every=100),
    )


GSM8K_DIR = Path("../shared/data/gsm8k")
"""Where the GSM8K files are expected relative to the working directory (override `tasks[0].prompts`)."""


def gemma3_270m() -> AdaptiveDecodingConfig:
    """A sequence-level head (LPO (b)) over Gemma 3 270M base, frozen, on a math + stories mix with a
    source per task: 1-shot GSM8K train questions (the first 64; reward `math_answer`) and story-title
    prompts (`world:story-title-prompts`; reward `ngram_novelty`, distinct word 3-grams), 2 + 2
    prompts x 4 samples of at most 48 tokens a step; validation before and after on 8 held-out
    prompts per task (GSM8K test, test-split titles). Checks the real-model path on a CPU in minutes
    (scale `rollouts.*`, `num_steps` and `eval.per_level` up on a GPU)."""
    return AdaptiveDecodingConfig(
        out_dir="runs/adaptive-decoding-gemma3-270m",
        model="gemma-3-270m",
        num_steps=5,
        log_every=1,
        checkpoint_every=2,
        rollouts=RolloutConfig(
            num_prompts=4,
            samples_per_prompt=4,
            max_new_tokens=48,
            limit=64,
            num_shots=1,
            stop=list(GSM8K_STOP),
            generation_batch_size=16,
        ),
        tasks=[
            TaskConfig(
                name="gsm8k",
                reward="math_answer",
                pair_rule="best_vs_worst",
                prompts=str(GSM8K_DIR / "train.jsonl"),
                eval_prompts=str(GSM8K_DIR / "test.jsonl"),
            ),
            TaskConfig(
                name="story",
                reward="ngram_novelty",
                pair_rule="best_vs_worst",
                prompts="world:story-title-prompts",
                eval_prompts="world:story-title-prompts:test",
            ),
        ],
        eval=EvalConfig(every=0, per_level=8, batch_size=16),
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
