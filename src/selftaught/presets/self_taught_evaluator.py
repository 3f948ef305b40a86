"""self-taught-evaluator presets: the judge-improvement loop on the tiny world's answer-mismatch pairs."""

from __future__ import annotations

from selftaught.configs.judge import SelfTaughtEvaluatorConfig
from selftaught.configs.train import LoraConfig, Precision
from selftaught.presets.dpo import GSM8K_DIR


def tiny() -> SelfTaughtEvaluatorConfig:
    """Three iterations from the tiny seed judge (`tiny-world-judge`): 1024 pairs in one random order,
    8 judgments each at T 0.7 / top-p 0.9, one correct judgment kept per pair, A/B balanced, 300 SFT
    steps of 64 from the seed at lr 1e-3; greedy both-order metrics on 200 valid pairs."""
    return SelfTaughtEvaluatorConfig(iterations=3)


def tiny_smoke() -> SelfTaughtEvaluatorConfig:
    """Two iterations on 16 pairs, 4 judgments each at T 1, 4 SFT steps, 8 evaluation pairs: checks the
    pipeline, not the effect."""
    return SelfTaughtEvaluatorConfig(
        out_dir="runs/self-taught-evaluator-smoke",
        model="tiny-world",
        num_pairs=16,
        iterations=2,
        samples_per_pair=4,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=40,
        sft_steps=4,
        sft_batch_size=8,
        eval_num_pairs=8,
    )


def tiny_lists() -> SelfTaughtEvaluatorConfig:
    """The paper's method in the list world (papers_A §5.6): from the list-task seed judge
    (`tiny-world-list-judge`, which saw random-corruption pairs only), 512 modified-instruction pairs
    (the right output against a near-miss instruction's), 8 judgments each at T 0.7 / top-p 0.9, one
    correct judgment kept per pair, A/B balanced, 200 SFT steps of 64 from the seed at lr 1e-3, three
    iterations; greedy both-order metrics on 200 near-miss test pairs, 200 random-corruption test
    pairs and 200 pairs of held-out families, and majority@5 on the near-miss ones."""
    return SelfTaughtEvaluatorConfig(
        out_dir="runs/self-taught-evaluator-lists",
        model="tiny-world-list-judge",
        pairs="world-lists:train",
        num_pairs=512,
        iterations=3,
        max_new_tokens=112,
        sft_steps=200,
        eval_pairs="world-lists:test",
        eval_extra=["world-lists:test:random_corruption", "world-lists:heldout"],
        eval_majority_k=5,
    )


def gemma3_270m() -> SelfTaughtEvaluatorConfig:
    """One short iteration with Gemma 3 270M base as a few-shot judge of world pairs in words
    (`world-pairwise-fewshot@1`, raw text, one verdict after `Correct:`, a newline stops it): 8 train
    pairs x 4 judgments at T 0.7 / top-p 0.9, the correct ones kept (A/B balanced), 3 LoRA SFT
    steps of the seed on them; greedy both-order metrics on 6 valid pairs before and after. Checks
    the real-model path on a CPU. GSM8K answer-mismatch pairs: `pairs=<gsm8k train.jsonl>
    eval_pairs=<gsm8k test.jsonl> template=gsm8k-pairwise-fewshot@1`. On a GPU scale `num_pairs`,
    `samples_per_pair` (the paper: 15), `iterations` (5) and `eval_num_pairs` up; a chat judge such
    as Llama-3.1-8B-Instruct: `model=<dir> template=ste-pairwise@1 prompt_style=chat
    max_new_tokens=1024 stop=[] lora.r=0`."""
    return SelfTaughtEvaluatorConfig(
        out_dir="runs/self-taught-evaluator-gemma3-270m",
        model="gemma-3-270m",
        pairs="world:train",
        num_pairs=8,
        template="world-pairwise-fewshot@1",
        prompt_style="text",
        iterations=1,
        samples_per_pair=4,
        max_new_tokens=6,
        stop=["\n"],
        sft_steps=3,
        sft_batch_size=4,
        sft_lr=1e-4,
        lora=LoraConfig(r=8, alpha=16),
        eval_pairs="world:valid",
        eval_num_pairs=6,
    )


def llama3_8b_vllm() -> SelfTaughtEvaluatorConfig:
    """The paper's loop on one GPU at 8B scale (papers_A §5.1; the paper: Llama-3-70B-Instruct):
    Llama-3.1-8B-Instruct (a hub id, downloaded only because this preset names it) judges GSM8K
    answer-mismatch pairs (the paper's math mode) with the MT-Bench-style template
    (`ste-pairwise@1`, chat), 15 judgments per pair at T 0.7 / top-p 0.9 through vLLM, one correct
    judgment kept per pair, A/B balanced; LoRA SFT of the seed in bf16 each of 5 iterations;
    greedy both-order metrics on 500 GSM8K test pairs. Checked for config validity only
    (tests/flows/test_self_taught_evaluator.py); not run here (no GPU)."""
    return SelfTaughtEvaluatorConfig(
        out_dir="runs/self-taught-evaluator-llama3-8b",
        model="meta-llama/Llama-3.1-8B-Instruct",
        pairs=str(GSM8K_DIR / "train.jsonl"),
        num_pairs=2048,
        template="ste-pairwise@1",
        prompt_style="chat",
        engine="vllm",
        iterations=5,
        samples_per_pair=15,
        max_new_tokens=1024,
        sft_steps=500,
        sft_batch_size=16,
        sft_lr=1e-4,
        max_length=2048,
        lora=LoraConfig(r=16, alpha=32),
        precision=Precision.BF16,
        eval_pairs=str(GSM8K_DIR / "test.jsonl"),
        eval_num_pairs=500,
    )
