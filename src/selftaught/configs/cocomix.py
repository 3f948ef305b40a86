"""The cocomix recipe's config (`selftaught cocomix`; `src/selftaught/recipes/cocomix.py`, papers_B §5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from selftaught.config import check
from selftaught.configs.train import EvalConfig, OptimConfig, RunConfig
from selftaught.types import StrEnum


class MixerMode(StrEnum):
    NONE = "none"
    """A plain decoder: the NTP and KD baselines."""
    INTERLEAVE = "interleave"
    """CoCoMix: (h_t, c_t) slots for the upper layers, logits read from the concept slots."""
    ADD = "add"
    """The intervention ablation: h_t + c_t."""
    PAUSE = "pause"
    """The pause-token baseline: a learned vector interleaved instead of c_t."""


class LabelKind(StrEnum):
    ATTRIBUTION = "attribution"
    """Top-K_attr of (dL/dh @ W_dec) * activation (papers_B §5.3; `src/selftaught/models/concept_labels.py`)."""
    ACTIVATION = "activation"
    """The ablation: the K_attr most active SAE latents."""


class AttributionSign(StrEnum):
    PAPER = "paper"
    """Largest signed attributions (paper and code)."""
    ABS = "abs"
    NEG = "neg"


class ActivationSource(StrEnum):
    POST = "post"
    """Post-TopK SAE activations (the code)."""
    PRE = "pre"
    """Pre-activations (the paper's Eq. 1)."""


@dataclass
class ShapeConfig:
    """A Llama decoder's shape (tied embeddings, SwiGLU)."""

    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    ffn_size: int = 256

    def __post_init__(self) -> None:
        check(
            self.hidden_size % (2 * self.num_heads) == 0,
            "hidden_size",
            "a multiple of 2 * num_heads",
            self.hidden_size,
        )
        check(
            self.num_heads % self.num_kv_heads == 0, "num_heads", "a multiple of num_kv_heads", self.num_heads
        )
        check(self.num_layers >= 1, "num_layers", ">= 1", self.num_layers)


@dataclass
class CorpusConfig:
    """The latent-topic corpus (`src/selftaught/world/concepts.py`), generated on the fly, or real text."""

    SHOWN_WHEN_SET = ("text_file", "text_tokens")
    """Added after the tiny reproduction was cached: in config.yaml only when set."""

    vocab_size: int = 256
    num_topics: int = 32
    num_function: int = 32
    topic_vocab: int = 24
    successors: int = 4
    switch_prob: float = 0.05
    function_prob: float = 0.3
    world_seed: int = 0
    """Seed of the topic tables (the world); every arm and run seed shares it."""
    seq_len: int = 128
    batch_size: int = 16
    """Sequences per optimizer step (tokens per step = batch_size * seq_len)."""
    val_sequences: int = 64
    """Held-out sequences (the same for every run: drawn from the world seed, not the run's)."""
    text_file: str = ""
    """Real text instead of the concept world ("": the world): a JSONL (string fields joined, e.g.
    GSM8K's train file) or text file, tokenized with `teacher.model`'s tokenizer into blocks of
    `seq_len` (`src/selftaught/data/text_blocks.py`); the last `val_sequences` blocks are held out. Needs
    `teacher.model`."""
    text_tokens: int = 20_000
    """Tokens read from `text_file`."""


@dataclass
class TeacherConfig:
    """The concept-extraction model: a tiny Llama trained here by NTP, cached by its config, or a
    pretrained model (`model`)."""

    SHOWN_WHEN_SET = ("model",)

    model: str = ""
    """A pretrained teacher (`gemma-3-270m`, a directory, ...; frozen, never trained here) whose
    tokenizer the corpus and student use; "": train the tiny teacher below on the concept world."""
    dir: str = ""
    """Where the teacher and its SAE live ("": `<out_dir>/teacher`); a finished one with the same
    config is reused (`data.shards.run_once`), so arms of a reproduction share one teacher."""
    shape: ShapeConfig = field(default_factory=lambda: ShapeConfig(hidden_size=128, ffn_size=512))
    num_steps: int = 600
    lr: float = 3e-3
    layer: int = 2
    """The SAE reads the residual stream after this many teacher blocks."""
    seed: int = 0


@dataclass
class SAEConfig:
    """The TopK SAE on the teacher's residual stream (`src/selftaught/models/sae.py`)."""

    num_latents: int = 256
    k: int = 8
    normalize: bool = True
    num_steps: int = 1500
    lr: float = 1e-3
    batch_size: int = 1024
    num_sequences: int = 256
    """Corpus sequences whose activations train it (x seq_len tokens)."""


@dataclass
class SteeringConfig:
    """Steering a topic-aligned concept (z[idx] *= alpha before TopK) at the end of a concept run."""

    scales: list[float] = field(default_factory=lambda: [1.0, 3.0, 10.0])
    """Alphas to measure (1 = unsteered)."""
    num_prompts: int = 64
    prompt_len: int = 16
    new_tokens: int = 24
    temperature: float = 1.0


@dataclass
class CocomixConfig(RunConfig):
    out_dir: str = "runs/cocomix"
    model: str = "scratch"
    """The student starts from random weights of `student` (the tiny world has no pretrained student)."""
    num_steps: int = 300
    log_every: int = 25
    checkpoint_every: int = 100
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    sae: SAEConfig = field(default_factory=SAEConfig)
    student: ShapeConfig = field(default_factory=ShapeConfig)
    match_active_params: bool = False
    """mixer=none: widen the student (hidden and ffn, keeping ffn = 4 d) to the active parameters
    CoCoMix adds (predictor d*C + k compressor columns): the paper's width-matched NTP baseline."""
    mixer: MixerMode = MixerMode.INTERLEAVE
    insert_layer: int = 2
    """Blocks below the concept mixer (papers_B §5.10: after layer 1 or 2 of 4)."""
    k_concept: int = 8
    """TopK of the concept logits before compression."""
    concept_weight: float = 0.1
    """lambda of L_NTP + lambda * L_concept (0: no concept loss)."""
    labels: LabelKind = LabelKind.ATTRIBUTION
    k_attr: int = 4
    attribution_sign: AttributionSign = AttributionSign.PAPER
    activation_source: ActivationSource = ActivationSource.POST
    kd_weight: float = 0.0
    """lambda_KD of + lambda_KD * KL(p_teacher || p_student) (the KD baseline: 0.1)."""
    steering: SteeringConfig = field(default_factory=SteeringConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=3e-3,
            betas=(0.9, 0.95),
            weight_decay=0.1,
            schedule="cosine",
            warmup_steps=10,
            min_lr_ratio=0.1,
        )
    )
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(every=100))
    """`every`: validation perplexity on the held-out corpus sequences (other fields unused)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.activation_checkpointing == 0,
            "activation_checkpointing",
            "0 (cocomix trains its own concept model; the option is for transformers LMs trained by sft, dpo and online-rl)",
            self.activation_checkpointing,
        )
        check(self.model == "scratch", "model", "'scratch' (students are built from `student`)", self.model)
        check(
            0 <= self.insert_layer < self.student.num_layers,
            "insert_layer",
            f"in [0, {self.student.num_layers - 1}]",
            self.insert_layer,
        )
        check(
            1 <= self.k_concept <= self.sae.num_latents,
            "k_concept",
            f"in [1, sae.num_latents={self.sae.num_latents}]",
            self.k_concept,
        )
        check(
            1 <= self.k_attr <= self.sae.num_latents,
            "k_attr",
            f"in [1, sae.num_latents={self.sae.num_latents}]",
            self.k_attr,
        )
        check(self.concept_weight >= 0, "concept_weight", ">= 0", self.concept_weight)
        check(self.kd_weight >= 0, "kd_weight", ">= 0", self.kd_weight)
        if not self.teacher.model:
            check(
                1 <= self.teacher.layer <= self.teacher.shape.num_layers,
                "teacher.layer",
                f"in [1, {self.teacher.shape.num_layers}]",
                self.teacher.layer,
            )
        if self.mixer == MixerMode.NONE and self.concept_weight:
            raise ValueError(
                "concept_weight > 0 needs a concept head: set mixer=interleave|add|pause or concept_weight=0"
            )
        if bool(self.corpus.text_file) != bool(self.teacher.model):
            raise ValueError(
                "corpus.text_file and teacher.model go together: real text needs a pretrained teacher's "
                "tokenizer, and a pretrained teacher needs real text (set both, or neither for the concept world)"
            )
        if self.match_active_params and self.mixer != MixerMode.NONE:
            raise ValueError("match_active_params widens the NTP baseline: it needs mixer=none")

    @property
    def needs_teacher(self) -> bool:
        return self.concept_weight > 0 or self.kd_weight > 0
