"""Tiny-world presets: everything runs on two CPU cores in minutes."""

from __future__ import annotations

from dataclasses import replace

from selftaught.recipes.common import EvalConfig
from selftaught.recipes.dpo import DPOConfig, DPODataConfig
from selftaught.recipes.online_rl import OnlineRLConfig, RolloutConfig, TaskConfig
from selftaught.recipes.reward_model import RewardModelConfig, RewardModelDataConfig
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
    return SFTConfig(
        out_dir="runs/sft-tiny",
        model="tiny-world",
        num_steps=450,
        eval=EvalConfig(data="world:valid", every=150, per_level=100),
    )


def sft_smoke() -> SFTConfig:
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


def dpo() -> DPOConfig:
    """Offline DPO of the student on its own pairs: a random correct vs a random incorrect sample of
    8 at temperature 1 (TINYWORLD §3b: offline DPO peaks early, then drifts; `nll_scale=1` anchors it)."""
    return DPOConfig(
        out_dir="runs/dpo-tiny",
        model="tiny-world",
        data=DPODataConfig(num_prompts=512, samples_per_prompt=8),
        num_steps=100,
        batch_size=32,
        beta=0.1,
        optim=OptimConfig(lr=1e-5, eps=1e-8, schedule="constant"),
        eval=EvalConfig(data="world:valid", every=25, per_level=100),
    )


def dpo_smoke() -> DPOConfig:
    """A few DPO steps on pairs from 16 prompts: checks the pipeline, not the effect."""
    return DPOConfig(
        out_dir="runs/dpo-smoke",
        model="tiny-world",
        data=DPODataConfig(num_prompts=16, samples_per_prompt=4, max_new_tokens=48),
        num_steps=4,
        batch_size=4,
        micro_batch_tokens=256,
        optim=OptimConfig(lr=1e-4, schedule="constant"),
        eval=EvalConfig(data="world:valid", every=2, per_level=4),
        checkpoint_every=2,
        log_every=1,
    )


def reward_model() -> RewardModelConfig:
    """A reward model from the student: correct vs buggy-carry chain solutions, 300 steps of 32 pairs."""
    return RewardModelConfig(out_dir="runs/reward-model-tiny", model="tiny-world", num_steps=300)


def reward_model_smoke() -> RewardModelConfig:
    """A few reward-model steps on 64 pairs: checks the pipeline, not the effect."""
    return RewardModelConfig(
        out_dir="runs/reward-model-smoke",
        model="tiny-world",
        num_steps=4,
        batch_size=8,
        data=RewardModelDataConfig(num_pairs=64, num_valid_pairs=16),
        optim=OptimConfig(lr=1e-3, schedule="constant"),
        eval_every=2,
        checkpoint_every=2,
        log_every=1,
    )


def online_rl() -> OnlineRLConfig:
    """Semi-online DPO (s = 10) of the student: 32 prompts x 8 samples per step, frozen reference
    (TINYWORLD §3a: between online and offline, saw-toothed)."""
    return OnlineRLConfig(
        out_dir="runs/online-rl-tiny",
        sync_every=10,
        num_steps=100,
        eval=EvalConfig(data="world:valid", every=25, per_level=100),
    )


def online_rl_online_dpo() -> OnlineRLConfig:
    """Online DPO (s = 1) with the reference re-synced every step (papers_B §1.10, fix 1)."""
    return replace(online_rl(), out_dir="runs/online-rl-online-dpo", sync_every=1, ref_sync_every=1)


def online_rl_offline_dpo() -> OnlineRLConfig:
    """Offline DPO (s = 0): every step's rollouts sampled from the seed before training, one data stage."""
    return replace(online_rl(), out_dir="runs/online-rl-offline-dpo", sync_every=0)


def online_rl_grpo() -> OnlineRLConfig:
    """GRPO (s = 1, strictly on-policy): 8 prompts x 8 samples, 150 steps, lr 1e-4, KL 0.001 (TINYWORLD §3b)."""
    return replace(
        online_rl(),
        out_dir="runs/online-rl-grpo",
        loss="grpo",
        sync_every=1,
        num_steps=150,
        rollouts=RolloutConfig(num_prompts=8, samples_per_prompt=8),
        optim=OptimConfig(lr=1e-4, eps=1e-8, schedule="constant"),
    )


def online_rl_mixed() -> OnlineRLConfig:
    """Online DPO on a task mix: arithmetic with the answer check (correct vs incorrect) and the same
    problems scored by a reward model (best vs worst). Set `tasks[1].reward_model` to a reward-model
    directory, e.g. the `reward-model` recipe's `runs/reward-model-tiny/model`."""
    tasks = [TaskConfig(), TaskConfig(name="arith_rm", reward="reward_model", pair_rule="best_vs_worst")]
    return replace(online_rl_online_dpo(), out_dir="runs/online-rl-mixed", tasks=tasks)


def online_rl_smoke() -> OnlineRLConfig:
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
