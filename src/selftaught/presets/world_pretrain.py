"""world-pretrain presets: the tiny-world base student, DivPO's persona and keywords seed models, and
adaptive decoding's MATH + STORY base model and its variant with constrained stories."""

from __future__ import annotations

from dataclasses import replace

from selftaught.configs.recipes import (
    WorldPretrainConfig,
    facts_student_config,
    keywords_student_config,
    lpo_cstory_student_config,
    lpo_student_config,
    persona_student_config,
    system2_student_config,
)
from selftaught.configs.train import EvalConfig


def tiny() -> WorldPretrainConfig:
    """The default base student: xs Llama, buggy teacher (bug 0.6), stop at 60% valid accuracy."""
    return WorldPretrainConfig()


def tiny_persona() -> WorldPretrainConfig:
    """DivPO's persona seed model (the `tiny-world-persona` alias): xs Llama, 600 steps of SFT on
    Zipf-skewed personas with 10% malformed; reports validity and slot diversity at T=1."""
    return persona_student_config()


def tiny_keywords() -> WorldPretrainConfig:
    """DivPO's graded keywords seed model (the `tiny-world-keywords` alias): xs Llama, 600 steps of SFT
    on Zipf-skewed five-word keywords for four topics, 10% malformed; reports validity, quality and
    word diversity at T=1."""
    return keywords_student_config()


def tiny_lpo() -> WorldPretrainConfig:
    """Adaptive decoding's frozen base model (the `tiny-world-lpo` alias): xs Llama, SFT on a 50/50 mix
    of clean chain-of-thought arithmetic and six-word stories, 2500 steps of a 3000-step cosine at lr
    3e-3; reports MATH accuracy and STORY quality at fixed temperatures 0, .2, ..., 1."""
    return lpo_student_config()


def tiny_lpo_cstory() -> WorldPretrainConfig:
    """The token-level head's frozen base model (the `tiny-world-lpo-cstory` alias): the same on a third
    each of MATH, STORY and CSTORY (a designated digit opens each of three parts, 70% of the time in
    the data), 3000 steps of a 3600-step cosine; reports the fixed-temperature sweep with CSTORY."""
    return lpo_cstory_student_config()


def tiny_smoke() -> WorldPretrainConfig:
    """A few steps of the same pipeline, for tests and a quick look (accuracy stays near 0)."""
    return WorldPretrainConfig(
        out_dir="runs/world-pretrain-smoke",
        num_examples=512,
        num_steps=20,
        optim_steps=20,
        optim=replace(WorldPretrainConfig().optim, warmup_steps=5),
        eval=EvalConfig(every=10, per_level=10, batch_size=512),
        test_per_level=10,
        log_every=5,
    )


def tiny_facts() -> WorldPretrainConfig:
    """The RAG self-demos' base model (the `tiny-world-facts` alias): xs Llama, 4000 steps of SFT on
    closed-book, passage and refuse-rule QA over the knowledge base (answers are statements, fresh
    values for unknown facts shown with passages); reports correct / incorrect / refuse by cell on
    the test questions in each prompt mode."""
    return facts_student_config()


def tiny_system2() -> WorldPretrainConfig:
    """System 2 distillation's base model (the `tiny-world-system2` alias): xs Llama, 3000 steps of SFT
    on the letters / swaps / judge questions, each as `<s1>` (heuristic direct answers) and `<s2>`
    (a scratchpad slipping on 8% of its steps); reports greedy accuracy and tokens per task and mode."""
    return system2_student_config()
