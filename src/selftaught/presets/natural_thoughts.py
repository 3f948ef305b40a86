"""natural-thoughts presets: the tiny world (papers_A.md §2.6: oracle teacher and annotator, the
`tiny-world` arithmetic student as both the weak model and the student), Gemma 3 270M as the teacher
on GSM8K train questions (CPU, slow), and an R1-distilled teacher over vLLM (GPU)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from selftaught.configs.natural_thoughts import NaturalThoughtsConfig, Selection

TINY_CONTROLS: dict[str, Any] = {"no_think_instruction": " /nothink", "think_instruction": " /think"}
"""The tiny world's control tokens (§2.6: `<nothink>` / `<think>`-like markers appended to the question)."""


def tiny() -> NaturalThoughtsConfig:
    """2000 train questions of levels 1-4 (500 each); the oracle teacher (strategies grow with the
    level, geometric filler) and annotator; the `tiny-world` student (trained on levels 1-3 solutions,
    it fails level 4) answers each question as the weak model; 600 traces chosen at random, S2
    targets, 300 SFT steps of 32 from `tiny-world`; 100 test questions per level in the three modes.
    Checks the pipeline end to end; students taken straight from `tiny-world` through 120-200 steps
    of the `<think>` format stayed at 0-2.5% (docs/results.md); `selftaught repro natural-thoughts`
    first warms a student up on the format (`repro.natural_thoughts.warm_up`), then runs the arms."""
    return NaturalThoughtsConfig(budget=600, **TINY_CONTROLS)


def tiny_smoke() -> NaturalThoughtsConfig:
    """48 questions, 24 selected by disagreement, difficulty-mixed targets, 4 SFT steps, 6 test questions
    per level: checks the pipeline, not the effect."""
    return replace(
        tiny(),
        out_dir="runs/natural-thoughts-smoke",
        num_questions=48,
        budget=24,
        selection=Selection.DISAGREE,
        targets="difficulty_mix",
        sft_steps=4,
        sft_batch_size=8,
        eval_per_level=6,
        eval_max_new_tokens=96,
    )


GSM8K_TRAIN = Path("../shared/data/gsm8k") / "train.jsonl"
GSM8K_TEST = Path("../shared/data/gsm8k") / "test.jsonl"


def gemma3_270m() -> NaturalThoughtsConfig:
    """Gemma 3 270M (base, from PyPI) as the teacher on the first 32 GSM8K train questions, prompted
    with four GSM8K exemplars rewritten as `<think>reasoning</think>The answer is N.` and a frame that
    ends in `<think>` (`nt-teacher-fewshot@1`, T 0.6, 256 tokens, stop at the next question), annotated
    by itself (strict one-line replies: the unparsed ones are counted), the weak model is Gemma too,
    greedy (a real weak model would be smaller; on CPU there is only one), agreement by the exact
    number check; the 16 longest-strategy-window traces, S2 targets, 4 LoRA SFT steps, 12 test
    questions in the three modes (`number` answers). A base model of 270M parameters seldom closes
    `</think>`: the trace statuses in `summary.json` say how many traces survived. About 15 CPU-minutes."""
    return NaturalThoughtsConfig(
        out_dir="runs/natural-thoughts-gemma3-270m",
        model="gemma-3-270m",
        questions=str(GSM8K_TRAIN),
        num_questions=32,
        teacher="gemma-3-270m",
        teacher_template="nt-teacher-fewshot@1",
        teacher_stop=["\n\nQuestion:", "\nQuestion:"],
        teacher_temperature=0.6,
        teacher_max_new_tokens=256,
        annotator="gemma-3-270m",
        annotator_max_new_tokens=16,
        annotator_stop=["\n"],
        taxonomy=["arithmetic", "algebra", "geometry", "money", "time", "other"],
        weak_model="gemma-3-270m",
        weak_max_new_tokens=128,
        answer_format="number",
        selection=Selection.STRATEGY_WINDOW,
        r_min=0,
        r_max=8,
        budget=16,
        targets="s2",
        sft_steps=4,
        sft_batch_size=4,
        sft_lr=2e-4,
        sft_lora_r=8,
        eval_data=str(GSM8K_TEST),
        eval_per_level=12,
        levels=[1],
        hard_level=99,
        eval_max_new_tokens=256,
        think_instruction=" Think step by step, then give the answer.",
    )


def r1_distill_qwen_7b() -> NaturalThoughtsConfig:
    """The paper's setting scaled to one GPU: DeepSeek-R1-Distill-Qwen-7B (a hub id: downloaded only
    because this preset names it) writes one trace per question over vLLM (T 0.6, 16k tokens) on your
    NaturalReasoning questions (`questions=`), Llama-3.1-8B-Instruct annotates (13 domains) and is the
    weak model, agreement by an LLM judge; 1000 disagreement-selected traces, difficulty-mixed targets
    (K = the mean System-2 length), SFT of Llama-3.1-8B-Instruct at constant-like lr 2e-5 for about 10
    epochs. Checked only for config validity here (no GPU on the CI machine); annotation, the weak model
    and the evaluation run on the in-process HF engine, not vLLM."""
    return NaturalThoughtsConfig(
        out_dir="runs/natural-thoughts-r1-distill-qwen-7b",
        model="meta-llama/Llama-3.1-8B-Instruct",
        questions="data/natural_reasoning/questions.jsonl",
        num_questions=20_000,
        teacher="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
        teacher_engine="vllm",
        teacher_temperature=0.6,
        teacher_max_new_tokens=16_384,
        annotator="meta-llama/Llama-3.1-8B-Instruct",
        taxonomy=[
            "engineering",
            "philosophy",
            "medicine",
            "economics",
            "science",
            "law",
            "history",
            "education",
            "management",
            "literature and arts",
            "agronomy",
            "sociology",
            "military science",
        ],
        weak_model="meta-llama/Llama-3.1-8B-Instruct",
        weak_max_new_tokens=2048,
        agreement="meta-llama/Llama-3.1-8B-Instruct",
        answer_format="number",
        selection=Selection.DISAGREE,
        r_min=4,
        r_max=8,
        min_density=1.0,
        budget=1000,
        targets="difficulty_mix",
        sft_steps=320,
        sft_batch_size=32,
        sft_lr=2e-5,
        sft_max_length=16_384,
        eval_data="data/gpqa/diamond.jsonl",
        eval_per_level=198,
        levels=[1],
        hard_level=99,
        eval_max_new_tokens=16_384,
    )
