"""The natural-reasoning flow's config (papers_A.md §1; knobs of §6.2), torch-free.

`selftaught.configs.recipes` re-exports `NaturalReasoningConfig` lazily (its module `__getattr__`),
since this module builds on its `SFTConfig` and `DPOConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from selftaught.config import check
from selftaught.configs.recipes import DPOConfig, SFTConfig
from selftaught.configs.train import EvalConfig, OptimConfig
from selftaught.world.reasoning_tasks import FAMILIES, TRAIN_FAMILIES

SCORERS = ("majority", "self-score", "self-score-filtered")
"""Self-training scorers by name; `reward:<spec>` names any reward of `rewards.registry` too."""
MODES = ("rft", "dpo")
GSM8K_TEST = "../shared/data/gsm8k/test.jsonl"
"""The GSM8K test file, relative to the working directory (the Gemma presets' convention)."""


@dataclass
class NaturalReasoningConfig:
    """Documents -> annotated -> backtranslated questions -> dedup -> decontamination -> teacher
    responses -> distillation SFT of a student, then (optionally) unsupervised self-training."""

    out_dir: str = "runs/natural-reasoning"
    seed: int = 0
    """Seed of the world documents, every sampling stage and the training runs."""
    documents: str = "world:reasoning-docs"
    """Any record source (`data.catalog`): the tiny world's documents, or a file (GSM8K train: set
    `document_format`)."""
    num_documents: int = 3000
    """World documents to generate (files: ignored; use `limit`)."""
    families: list[str] = field(default_factory=lambda: list(TRAIN_FAMILIES))
    """World: the task families of the documents (`["arith"]` is the one-family, OMI-style set)."""
    limit: int | None = None
    """Only the first N documents."""
    shard_size: int = 256
    """Records per shard of the generation stages (a resumed stage redoes at most one shard)."""
    executor: str = "local"
    """Where the generation and parse stages run: `local` (this process), or `ray` / `ray:<address>`
    (the same shard functions mapped over Ray Data, `selftaught.data.executors`; the stage directories are
    the same). On Ray the annotator and the teacher travel to the workers: `world` or
    `openai:<model>@<url>[,<url>...]` (a fleet of servers), not an in-process HF model."""
    document_format: str = "{document}"
    """How a record becomes the document text (`str.format` over its fields), e.g.
    `{question}\\n{answer}` for GSM8K's worked solutions."""
    annotator: str = "world"
    """The engine that annotates documents and writes questions: `world` (the tiny world's scripted
    model), a model path or alias (HF), `vllm:<model>` or `openai:<model>@<base url>[,<base url>...]`
    (several URLs: a fleet, requests spread by load, a failed server's work retried elsewhere)."""
    raw: bool = False
    """Prompt the annotator with raw text (base models such as Gemma 3 270M)."""
    question_template: str = "nr-question@1"
    """The backtranslation template (`nr-question@2`: a raw-text example that retells its document)."""
    annotate_max_new_tokens: int = 40
    question_max_new_tokens: int = 160
    annotate_temperature: float = 0.0
    reasoning_threshold: int = 3
    """Keep a document when its `Reasoning` rating is at least this (1-5)."""
    dedup_minhash: float | None = 0.8
    """MinHash LSH Jaccard threshold for surface duplicates (None: off)."""
    dedup_embedder: str | None = "minilm"
    """`minilm`, `hash` (character 3-grams) or None (no paraphrase pass)."""
    dedup_threshold: float = 0.55
    """Cosine similarity at or above which a question paraphrases an earlier one (the paper's 0.55)."""
    decontam_against: list[str] = field(
        default_factory=lambda: ["world:reasoning-questions:test", GSM8K_TEST]
    )
    """Evaluation sources whose items (`question`, else the user turn) the questions must not overlap."""
    decontam_ngram: int = 13
    decontam_embedder: str | None = None
    decontam_threshold: float | None = None
    """Cosine to the nearest evaluation item at or above which a question is removed (None: n-grams only)."""
    teacher: str = "world"
    """The engine that answers the questions (as `annotator`)."""
    response_max_new_tokens: int = 64
    num_examples: int | None = None
    """Distillation examples (the first N clean questions); None = all. An error when fewer exist."""
    student: str = "scratch:xs"
    """The student: `scratch:<size>` (a tiny Llama from random init with the world tokenizer) or a model."""
    verify_examples: int = 0
    """Verification conversations (`nr-verify@1` -> yes / no, half each) added to the distillation
    data, so the student can self-score (papers_A §1.6)."""
    sft: SFTConfig = field(default_factory=lambda: distill_sft())
    eval_families: list[str] = field(default_factory=lambda: list(FAMILIES))
    eval_per_family: int = 100
    """Test questions per family for the greedy evaluation (0: no evaluation)."""
    eval_max_new_tokens: int = 48
    self_train: bool = False
    """Self-train the distilled student (the weak policy) on unlabelled clean questions."""
    self_train_questions: int = 200
    samples_per_question: int = 8
    sample_temperature: float = 0.8
    scorers: list[str] = field(default_factory=lambda: list(SCORERS))
    modes: list[str] = field(default_factory=lambda: list(MODES))
    filter_threshold: float = 0.0
    """`self-score-filtered`: drop a question (RFT) or pair (DPO) whose best score is below this."""
    rft: SFTConfig = field(default_factory=lambda: rft_sft())
    dpo: DPOConfig = field(default_factory=lambda: self_train_dpo())

    def __post_init__(self) -> None:
        check(1 <= self.reasoning_threshold <= 5, "reasoning_threshold", "in 1..5", self.reasoning_threshold)
        unknown = sorted(set(self.families) - set(FAMILIES))
        check(not unknown, "families", f"families of {list(FAMILIES)}", self.families)
        check(0 < self.dedup_threshold <= 1, "dedup_threshold", "in (0, 1]", self.dedup_threshold)
        check(self.samples_per_question >= 2, "samples_per_question", ">= 2", self.samples_per_question)
        bad = [s for s in self.scorers if s not in SCORERS and not s.startswith("reward:")]
        check(not bad, "scorers", f"names of {list(SCORERS)} or reward:<spec>", self.scorers)
        check(set(self.modes) <= set(MODES), "modes", f"a subset of {list(MODES)}", self.modes)
        check(self.verify_examples >= 0, "verify_examples", ">= 0", self.verify_examples)
        check(
            self.executor == "local" or self.executor == "ray" or self.executor.startswith("ray:"),
            "executor",
            "local, ray or ray:<address>",
            self.executor,
        )


def distill_sft() -> SFTConfig:
    """Distillation SFT of a tiny student: batch 32, lr 1e-3 cosine (from the pretrained xs student;
    a from-scratch xs model trains at 3e-3, TINYWORLD.md §2)."""
    return SFTConfig(
        num_steps=300,
        batch_size=32,
        optim=OptimConfig(lr=1e-3, betas=(0.9, 0.98), schedule="cosine", warmup_steps=20, min_lr_ratio=0.1),
        eval=EvalConfig(every=-1),
        checkpoint_every=100,
        log_every=50,
    )


def rft_sft() -> SFTConfig:
    """RFT: SFT of the weak policy on its own best samples, 30 steps of 32 at lr 1e-4 (a few epochs
    of a few hundred examples; 60 steps at 3e-4 lost accuracy in every arm, docs/results.md)."""
    return SFTConfig(
        num_steps=30,
        batch_size=32,
        optim=OptimConfig(lr=1e-4, betas=(0.9, 0.98), schedule="constant", warmup_steps=0),
        eval=EvalConfig(every=-1),
        checkpoint_every=0,
        log_every=10,
    )


def self_train_dpo() -> DPOConfig:
    """DPO of the weak policy on best vs worst samples: beta 0.1, reference = the policy, 30 steps
    of 32 pairs at lr 3e-5 (at 3e-4 DPO collapsed the tiny policy to a few %, docs/results.md)."""
    return DPOConfig(
        num_steps=30,
        batch_size=32,
        beta=0.1,
        optim=OptimConfig(lr=3e-5, schedule="constant"),
        eval=EvalConfig(every=-1),
        checkpoint_every=0,
        log_every=10,
    )
