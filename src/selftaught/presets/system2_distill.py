"""system2-distill presets: the System 2 world (last letters, swaps, the toy judge), Gemma 3 270M on
GSM8K, and a GPU setting."""

from __future__ import annotations

from selftaught.configs.system2 import System2DistillConfig
from selftaught.configs.train import LoraConfig
from selftaught.presets.sft import GSM8K_DIR


def tiny() -> System2DistillConfig:
    """Last letters (the distillable task) from `tiny-world-system2`: 1000 unlabelled train questions,
    System 2 = the `<s2>` scratchpad, 8 samples each at T 1, majority vote kept at >= 5/8, 200 SFT
    steps of 64 at lr 1e-3 from the same model; greedy System 1, System 2 and distilled System 1 on
    300 test questions. `task=world-swaps` is the non-distillable task; `task=world-judge
    curation=swap` the swap-consistency judge (papers_A §3.5)."""
    return System2DistillConfig()


def tiny_smoke() -> System2DistillConfig:
    """24 inputs, 4 samples, 4 SFT steps, 16 test questions: checks the pipeline, not the effect."""
    return System2DistillConfig(
        out_dir="runs/system2-distill-smoke",
        num_inputs=24,
        samples=4,
        min_share=0.5,
        sft_steps=4,
        sft_batch_size=8,
        eval_num=16,
        shard_size=8,
    )


def gemma3_270m() -> System2DistillConfig:
    """Gemma 3 270M (base) as System 1, System 2 and student on GSM8K: 24 train questions (answers
    unread), 4-shot CoT (`gsm8k-cot-4shot@1`: half the 8-shot prompt, for the CPU) sampled 8 times at
    T 0.7 (up to 128 tokens a call, stopped at the next `Question:`), majority vote kept at >= 3/8 (a
    270M model rarely agrees more), LoRA SFT (r 8) of `Question: q\\nAnswer:` -> ` The answer is N.` for
    16 steps of 8 at lr 2e-4; greedy System 1 (zero-shot), System 2 (4-shot CoT) and distilled System 1
    on the first 20 test questions. CPU: about 20-30 minutes on two shared cores (the CoT samples
    dominate)."""
    return System2DistillConfig(
        out_dir="runs/system2-distill-gemma3-270m",
        model="gemma-3-270m",
        task="gsm8k",
        train_data=str(GSM8K_DIR / "train.jsonl"),
        test_data=str(GSM8K_DIR / "test.jsonl"),
        templates={"cot-zero-shot": "gsm8k-cot-4shot@1"},
        num_inputs=24,
        samples=8,
        temperature=0.7,
        max_new_tokens=128,
        s1_max_new_tokens=24,
        min_share=0.375,
        sft_steps=16,
        sft_batch_size=8,
        sft_lr=2e-4,
        sft_max_length=384,
        lora=LoraConfig(r=8, alpha=16),
        eval_num=20,
        batch_size=32,
        shard_size=8,
    )


def qwen7b_vllm() -> System2DistillConfig:
    """One GPU: Qwen2.5-7B-Instruct (a hub id: downloaded only because this preset names it) over vLLM as
    System 1, System 2 and student on GSM8K: 2000 train questions, zero-shot CoT x 10 at T 0.7
    (papers_A §3.2 (iv)), majority >= 6/10, LoRA SFT (r 16) of the final answer, 300 steps of 32 at lr
    1e-4; greedy evaluation on 500 test questions. The distilled model is reloaded by path in vLLM.
    Checked for config validity only (tests/flows/test_system2_distill.py); not run here (no GPU)."""
    return System2DistillConfig(
        out_dir="runs/system2-distill-qwen2.5-7b",
        model="Qwen/Qwen2.5-7B-Instruct",
        task="gsm8k",
        train_data=str(GSM8K_DIR / "train.jsonl"),
        test_data=str(GSM8K_DIR / "test.jsonl"),
        engine="vllm",
        num_inputs=2000,
        samples=10,
        temperature=0.7,
        max_new_tokens=512,
        s1_max_new_tokens=32,
        min_share=0.6,
        sft_steps=300,
        sft_batch_size=32,
        sft_lr=1e-4,
        sft_max_length=1024,
        lora=LoraConfig(r=16, alpha=32),
        eval_num=500,
        shard_size=500,
    )
