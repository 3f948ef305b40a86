"""online-rl presets: DPO and GRPO at every sync interval on the tiny world, and GRPO of Gemma 3
270M on GSM8K prompts with the math answer check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from selftaught.configs.recipes import OnlineRLConfig
from selftaught.configs.train import EvalConfig, LoraConfig, Objective, OptimConfig, RolloutConfig, TaskConfig
from selftaught.data.gsm8k import STOP as GSM8K_STOP

GSM8K_DIR = Path("../shared/data/gsm8k")
"""Where the GSM8K files are expected relative to the working directory (override `rollouts.prompts`)."""


def tiny() -> OnlineRLConfig:
    """Semi-online DPO (s = 10) of the student: 32 prompts x 8 samples per step, frozen reference
    (TINYWORLD §3a: between online and offline, saw-toothed)."""
    return OnlineRLConfig(
        out_dir="runs/online-rl-tiny",
        sync_every=10,
        num_steps=100,
        eval=EvalConfig(data="world:valid", every=25, per_level=100),
    )


def tiny_online_dpo() -> OnlineRLConfig:
    """Online DPO (s = 1) with the reference re-synced every step (papers_B §1.10, fix 1)."""
    return replace(tiny(), out_dir="runs/online-rl-online-dpo", sync_every=1, ref_sync_every=1)


def tiny_offline_dpo() -> OnlineRLConfig:
    """Offline DPO (s = 0): every step's rollouts sampled from the seed before training, one data stage."""
    return replace(tiny(), out_dir="runs/online-rl-offline-dpo", sync_every=0)


def tiny_grpo() -> OnlineRLConfig:
    """GRPO (s = 1, strictly on-policy): 8 prompts x 8 samples, 150 steps, lr 1e-4, KL 0.001 (TINYWORLD §3b)."""
    return replace(
        tiny(),
        out_dir="runs/online-rl-grpo",
        loss=Objective.GRPO,
        sync_every=1,
        num_steps=150,
        rollouts=RolloutConfig(num_prompts=8, samples_per_prompt=8),
        optim=OptimConfig(lr=1e-4, eps=1e-8, schedule="constant"),
    )


def tiny_mixed() -> OnlineRLConfig:
    """Online DPO on a task mix: arithmetic with the answer check (correct vs incorrect) and the same
    problems scored by a reward model (best vs worst). Set `tasks[1].reward_model` to a reward-model
    directory, e.g. the `reward-model` recipe's `runs/reward-model-tiny/model`."""
    tasks = [TaskConfig(), TaskConfig(name="arith_rm", reward="reward_model", pair_rule="best_vs_worst")]
    return replace(tiny_online_dpo(), out_dir="runs/online-rl-mixed", tasks=tasks)


def tiny_smoke() -> OnlineRLConfig:
    """A few semi-online DPO steps (s = 2) on 4 prompts x 4 samples: checks the pipeline, not the effect."""
    return OnlineRLConfig(
        out_dir="runs/online-rl-smoke",
        sync_every=2,
        num_steps=4,
        micro_batch_tokens=256,
        rollouts=RolloutConfig(num_prompts=4, samples_per_prompt=4, max_new_tokens=16, pool_size=64),
        optim=OptimConfig(lr=1e-4, schedule="constant"),
        eval=EvalConfig(data="world:valid", every=2, per_level=4),
        checkpoint_every=2,
    )


def gemma3_270m_grpo() -> OnlineRLConfig:
    """Two LoRA GRPO steps (s = 1) of Gemma 3 270M base on 1-shot GSM8K train prompts (the first 64),
    2 prompts x 4 samples of at most 48 tokens, rewarded by the math answer check: checks the
    real-model path on a CPU in minutes (scale `rollouts.*` and `num_steps` up on a GPU)."""
    return OnlineRLConfig(
        out_dir="runs/online-rl-gemma3-270m-grpo",
        model="gemma-3-270m",
        loss=Objective.GRPO,
        sync_every=1,
        num_steps=2,
        tasks=[TaskConfig(name="gsm8k", reward="math_answer")],
        rollouts=RolloutConfig(
            prompts=str(GSM8K_DIR / "train.jsonl"),
            limit=64,
            num_shots=1,
            stop=list(GSM8K_STOP),
            num_prompts=2,
            samples_per_prompt=4,
            max_new_tokens=48,
            generation_batch_size=8,
        ),
        micro_batch_tokens=1024,
        lora=LoraConfig(r=8, alpha=16),
        optim=OptimConfig(lr=1e-5, eps=1e-8, schedule="constant"),
        eval=EvalConfig(data=str(GSM8K_DIR / "test.jsonl"), every=-1, limit=10, num_shots=4, batch_size=10),
        checkpoint_every=0,
        log_every=1,
    )
