"""natural-reasoning presets: the tiny world's reasoning families (papers_A.md §1.6), Gemma 3 270M on
GSM8K worked solutions (CPU), and Llama-3.1-8B-Instruct through vLLM (one GPU)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from selftaught.configs.natural_reasoning import GSM8K_TEST, NaturalReasoningConfig
from selftaught.configs.train import Precision


def tiny() -> NaturalReasoningConfig:
    """3000 documents of the six training families (half worked, 10% of worked answers wrong), the
    scripted annotator / writer / oracle teacher, MinHash + character-3-gram cosine dedup (MiniLM at
    0.55 calls any two questions of one tiny family paraphrases: `33-25-7` vs `41+2-9` scores 0.62),
    13-gram decontamination against the world's test questions; 1200 distillation examples for the
    `tiny-world` student (an xs Llama pretrained on arithmetic chains only: the pretrained base of
    the paper's students), 300 steps of 32 at lr 1e-3; evaluation on 100 test questions per family.
    `student=scratch:xs` starts from random weights instead (papers_A §1.6 trains from scratch; an xs
    model learns little of seven families in a few hundred CPU steps)."""
    return NaturalReasoningConfig(
        dedup_embedder="hash",
        dedup_threshold=0.97,
        decontam_against=["world:reasoning-questions:test"],
        num_examples=1200,
        student="tiny-world",
    )


def tiny_self_train() -> NaturalReasoningConfig:
    """The self-training study, on 6000 documents: a weak student (the `tiny-world` student on 600 diverse examples +
    1500 yes/no verification conversations, 600 steps), then 8 samples at T 0.8 per question on 256
    unlabelled questions, majority vote / self-score / self-score filtered at r >= 0, RFT (30 steps
    at lr 1e-4) and DPO (30 steps at lr 3e-5) from the weak student."""
    cfg = tiny()
    return replace(cfg, out_dir="runs/natural-reasoning-self-train", num_documents=6000, num_examples=600, verify_examples=1500,
                   self_train=True, self_train_questions=256, sft=replace(cfg.sft, num_steps=600))  # fmt: skip


def tiny_smoke() -> NaturalReasoningConfig:
    """Every stage on 160 documents, a random-init xs student, 8 training steps per model, 10 test
    questions per family."""
    cfg = replace(
        tiny(),
        out_dir="runs/natural-reasoning-smoke",
        student="scratch:xs",  # no pretrained student to build first
        num_documents=160,
        num_examples=30,
        verify_examples=10,
        eval_per_family=10,
        self_train=True,
        self_train_questions=12,
        samples_per_question=4,
    )
    small: dict[str, Any] = {"num_steps": 8, "batch_size": 8, "log_every": 4, "checkpoint_every": 4}
    return replace(
        cfg,
        sft=replace(cfg.sft, **small, optim=replace(cfg.sft.optim, warmup_steps=2)),
        rft=replace(cfg.rft, **small),
        dpo=replace(cfg.dpo, **small),
    )


GSM8K_TRAIN = "../shared/data/gsm8k/train.jsonl"


def gemma3_270m() -> NaturalReasoningConfig:
    """Gemma 3 270M (base, from PyPI, raw-text prompts) annotates the worked solutions of the first
    36 GSM8K train problems and backtranslates a question from each kept one (threshold 3,
    `nr-question@2`), MiniLM dedup at 0.55, 13-gram + MiniLM (0.9) decontamination against GSM8K
    test (about 12 minutes on 2 CPU cores; docs/results.md has the parse counts: it mostly copies).
    After the data steps Gemma itself answers as the teacher and 2 LoRA SFT steps on its answers
    check the path; the tiny world's evaluation does not apply (`eval_per_family=0`). The slow test
    (tests/flows/test_natural_reasoning_gemma.py) runs the data steps only; the teacher and SFT
    steps of this preset have not been run."""
    cfg = NaturalReasoningConfig(
        out_dir="runs/natural-reasoning-gemma3-270m",
        documents=GSM8K_TRAIN,
        limit=36,
        document_format="{question}\n{answer}",
        annotator="gemma-3-270m",
        teacher="gemma-3-270m",
        raw=True,
        question_template="nr-question@2",
        annotate_max_new_tokens=40,
        question_max_new_tokens=96,
        response_max_new_tokens=96,
        decontam_against=[GSM8K_TEST],
        decontam_embedder="minilm",
        decontam_threshold=0.9,
        student="gemma-3-270m",
        eval_per_family=0,
    )
    return replace(
        cfg,
        sft=replace(
            cfg.sft, num_steps=2, batch_size=2, checkpoint_every=0, lora=replace(cfg.sft.lora, r=8, alpha=16)
        ),
    )


def llama3_8b_vllm() -> NaturalReasoningConfig:
    """The paper's pipeline on one GPU: Llama-3.1-8B-Instruct (a hub id, downloaded only because this
    preset names it) annotates, backtranslates and answers through vLLM (chat prompts, greedy, 4096
    response tokens); MiniLM dedup at 0.55; 13-gram + MiniLM (0.9) decontamination against GSM8K
    test; distillation SFT of Llama-3.1-8B (base) on the responses, 3 epochs at lr 2e-5 in bf16.

    Documents: a JSONL file of `{id, document}` records (`documents=`), e.g. FineMath or DCLM text;
    the file name below is a placeholder. The tiny world's evaluation does not apply
    (`eval_per_family=0`): evaluate the student with `selftaught eval`. Checked for config validity
    only (tests/flows/test_natural_reasoning.py); not run here (no GPU)."""
    cfg = NaturalReasoningConfig(
        out_dir="runs/natural-reasoning-llama3-8b",
        documents="data/documents.jsonl",
        annotator="vllm:meta-llama/Llama-3.1-8B-Instruct",
        teacher="vllm:meta-llama/Llama-3.1-8B-Instruct",
        annotate_max_new_tokens=128,
        question_max_new_tokens=1024,
        response_max_new_tokens=4096,
        decontam_against=[GSM8K_TEST],
        decontam_embedder="minilm",
        decontam_threshold=0.9,
        student="meta-llama/Llama-3.1-8B",
        eval_per_family=0,
    )
    return replace(
        cfg,
        sft=replace(
            cfg.sft,
            num_steps=3000,
            batch_size=64,
            micro_batch_tokens=16384,
            data=replace(cfg.sft.data, max_length=4096),
            optim=replace(
                cfg.sft.optim,
                lr=2e-5,
                schedule="constant",
                warmup_steps=0,
                betas=(0.9, 0.95),
                weight_decay=0.1,
            ),
            precision=Precision.BF16,
            checkpoint_every=500,
        ),
    )
