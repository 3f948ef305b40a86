"""The natural-thoughts flow's config (papers_A.md §2; `selftaught natural-thoughts`), torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field

from selftaught.config import check, check_levels
from selftaught.configs.train import RunConfig
from selftaught.types import StrEnum

WORLD = "world"
"""`teacher` / `annotator` value: the tiny world's oracle (`world.traces`)."""


class Selection(StrEnum):
    """Which traces to distil at the budget (`selection.traces`)."""

    RANDOM = "random"
    TOPIC = "topic"
    CLUSTER = "cluster"
    STRATEGY_WINDOW = "strategy_window"
    LENGTH = "length"
    VERBOSITY_LOW = "verbosity_low"
    VERBOSITY_MED = "verbosity_med"
    VERBOSITY_HIGH = "verbosity_high"
    AGREE = "agree"
    DISAGREE = "disagree"
    NEAREST = "nearest"


@dataclass
class NaturalThoughtsConfig(RunConfig):
    """Teacher traces -> annotation -> difficulty proxy -> selection -> S1/S2 targets -> SFT -> evaluation
    in three inference modes."""

    out_dir: str = "runs/natural-thoughts"
    model: str = "tiny-world"
    """The student (SFT starts from it); its tokenizer counts the trace tokens."""
    questions: str = "world:thought-questions"
    """Question records (`id`, `question`, `answer` when known): a world source, a file, `hf:`."""
    num_questions: int = 2000
    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    """World questions: difficulty levels of the pool (and of the evaluation)."""
    pool_dir: str | None = None
    """Where the traces, annotations and difficulty labels live (None: `<out_dir>/pool`); runs that share
    the teacher, annotator, weak model and seed can share it (each stage checks its fingerprint)."""
    teacher: str = WORLD
    """`world` (the oracle teacher) or a model spec (HF engine; `teacher_engine=vllm` for vLLM)."""
    teacher_engine: str = "hf"
    teacher_template: str = "nt-teacher@1"
    """`nt-teacher@1` (chat, the model opens `<think>`); for base models, raw text ending in `<think>`
    (the parser's `prefilled`): `nt-teacher-prefilled@1` (an instruction) or `nt-teacher-fewshot@1`
    (four GSM8K exemplars in `<think>` form)."""
    teacher_stop: list[str] = field(default_factory=list)
    """Stop strings of the teacher (a few-shot frame: the next `Question:`)."""
    teacher_temperature: float = 0.6
    teacher_max_new_tokens: int = 1024
    annotator: str = WORLD
    """`world` (the oracle annotator) or a model spec (the paper: Llama-3.1-70B-Instruct)."""
    annotator_max_new_tokens: int = 32
    annotator_stop: list[str] = field(default_factory=list)
    """Stop strings of the annotator (a base model: a newline, so the reply is its first line)."""
    taxonomy: list[str] = field(default_factory=lambda: ["addition", "subtraction", "mixed"])
    """Domain taxonomy (the paper: 13 top-level domains)."""
    weak_model: str = "tiny-world"
    """The weaker model whose answer is the difficulty proxy (the paper: Llama-3.3-70B, no long CoT)."""
    weak_max_new_tokens: int = 64
    agreement: str = "exact"
    """`exact` (compare the final answers) or a judge model spec (`nt-agree@1`)."""
    answer_format: str = "world"
    """How final answers are read: `world` (`Answer: N`) or `number` (GSM8K style)."""
    selection: Selection = Selection.RANDOM
    budget: int = 1000
    r_min: int = 1
    r_max: int = 3
    density_filter: bool = True
    min_density: float = 0.5
    """Strategy window (the paper: r_min 4, r_max 8, min_density 1 over natural-language strategies)."""
    length_c: float = 5000.0
    length_tau: float = 2.5
    cluster_min_size: int = 10
    seed_questions: list[str] = field(default_factory=list)
    """Seed set of `selection=nearest` (LIMO / s1K questions)."""
    targets: str = "s2"
    """`s2`, `s1`, `random_mix`, `difficulty_mix` (`pipelines.thought_targets.TargetMode`)."""
    mix_p: float = 0.5
    no_think_instruction: str = " Answer directly, without thinking."
    think_instruction: str = " Think carefully, in about {k} words, then answer."
    adaptive_instruction: str | None = None
    sft_steps: int = 300
    sft_batch_size: int = 32
    sft_lr: float = 1e-3
    sft_max_length: int = 512
    sft_lora_r: int = 0
    eval_data: str = "world:thought-questions:test"
    eval_per_level: int = 100
    """World evaluation: test questions per level (files: the first `eval_per_level` records)."""
    eval_levels: list[int] | None = None
    """World evaluation levels (None: `levels`)."""
    hard_level: int = 4
    """Levels >= this count as hard held-out items (`hard` in the summary)."""
    eval_modes: list[str] = field(default_factory=lambda: ["no_think", "think", "adaptive"])
    eval_max_new_tokens: int = 320
    num_steps: int = 1
    """Unused (the SFT's length is `sft_steps`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("num_questions", "sft_steps", "sft_batch_size", "eval_per_level", "eval_max_new_tokens"):
            check(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        check(self.budget >= 0, "budget", ">= 0", self.budget)
        check_levels(self.levels, "levels")
        check(0 <= self.mix_p <= 1, "mix_p", "in [0, 1]", self.mix_p)
        targets = ("s2", "s1", "random_mix", "difficulty_mix")
        check(self.targets in targets, "targets", f"one of {', '.join(targets)}", self.targets)
        modes = ("no_think", "think", "adaptive")
        check(
            all(m in modes for m in self.eval_modes),
            "eval_modes",
            f"among {', '.join(modes)}",
            self.eval_modes,
        )
        check(
            self.answer_format in ("world", "number"), "answer_format", "world or number", self.answer_format
        )
        check(self.teacher_engine in ("hf", "vllm"), "teacher_engine", "hf or vllm", self.teacher_engine)
        check(0 <= self.r_min < self.r_max, "r_min, r_max", "0 <= r_min < r_max", (self.r_min, self.r_max))
        check(
            self.length_c > 0 and self.length_tau >= 0,
            "length_c, length_tau",
            "C > 0, tau >= 0",
            (self.length_c, self.length_tau),
        )
        check(self.cluster_min_size >= 2, "cluster_min_size", ">= 2", self.cluster_min_size)
        check(
            self.selection != Selection.NEAREST or bool(self.seed_questions),
            "seed_questions",
            "a non-empty list of questions when selection=nearest",
            self.seed_questions,
        )
