"""The adaptive-decoding recipe's config (`selftaught adaptive-decoding`; `recipes/adaptive_decoding.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from selftaught.config import check
from selftaught.configs.train import (
    EvalConfig,
    GeneratorConfig,
    OptimConfig,
    RolloutConfig,
    RunConfig,
    TaskConfig,
    check_task_prompts,
)
from selftaught.types import StrEnum


class LPOLoss(StrEnum):
    TOKENS_ONLY = "tokens_only"
    """(b) `-log sigma(beta (log P(tau^c) - log P(tau^r)))`; with a frozen model (a) is the same."""
    MARGINAL = "marginal"
    """(c) the temperature marginalised out per token, against the initial head."""
    NLL = "nll"
    """The baseline: `-log P(tau^c)`, the chosen response's latents only."""


class HeadLevel(StrEnum):
    SEQUENCE = "sequence"
    TOKEN = "token"


@dataclass
class HeadConfig:
    temperatures: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    """The temperature grid (0 = greedy), distinct and increasing."""
    level: HeadLevel = HeadLevel.SEQUENCE
    """One temperature per response (from the last prompt token) or one per generated token."""
    depth: int = 2
    """Linear layers of the MLP (GELU between them); the last one starts at zero (a uniform head)."""
    width: int = 0
    """Hidden width (0: the model's hidden size)."""

    def __post_init__(self) -> None:
        check(self.depth >= 1, "head.depth", ">= 1", self.depth)
        check(self.width >= 0, "head.width", ">= 0 (0: the model's hidden size)", self.width)
        grid = self.temperatures
        ok = bool(grid) and all(t >= 0 for t in grid) and list(grid) == sorted(set(grid))
        check(ok, "head.temperatures", "distinct, increasing values >= 0", grid)


@dataclass
class AdaptiveDecodingConfig(RunConfig):
    out_dir: str = "runs/adaptive-decoding"
    model: str = "tiny-world-lpo"
    """The frozen base model (never trained; the head is saved next to it in `<out_dir>/head`)."""
    num_steps: int = 300
    log_every: int = 10
    checkpoint_every: int = 100
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: LPOLoss = LPOLoss.TOKENS_ONLY
    beta: float = 1.0
    rollouts: RolloutConfig = field(
        default_factory=lambda: RolloutConfig(
            prompts="world:lpo-prompts",
            num_prompts=16,
            samples_per_prompt=8,
            max_new_tokens=48,
            task_from_records=True,
        )
    )
    """Prompts and samples per step (the head samples each sample's temperature; `temperature` is unused)."""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    """Where the rollouts are sampled. `hf` (default): `HFEngine` with the head inside (either level).
    `vllm` (an in-process vLLM on `model`) or `remote` (an OpenAI-compatible server already serving
    `model`, e.g. `selftaught serve --model <dir>`): sequence-level heads only, the head over that
    engine (`engines.adaptive.HeadTemperatureEngine`: one HF prefill per step reads the prompts'
    hidden states). The model is frozen, so nothing is ever synced; validation stays on HF."""
    tasks: list[TaskConfig] = field(
        default_factory=lambda: [
            TaskConfig(name="math", reward="world_answer", pair_rule="best_vs_worst"),
            TaskConfig(name="story", reward="story_quality", pair_rule="best_vs_worst"),
        ]
    )
    """Rewards by prompt task; pairs: the best against the worst sample (prompts whose samples tie give none)."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-3, schedule="constant"))
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(data="world:lpo", per_level=200, every=100))
    """Validation with the head's argmax temperature: mean reward per task, E[tau] and the argmax histogram."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.activation_checkpointing == 0,
            "activation_checkpointing",
            "0 (adaptive-decoding trains a head over a frozen model; the option is for transformers LMs trained by sft, dpo and online-rl)",
            self.activation_checkpointing,
        )
        check(self.beta > 0, "beta", "> 0", self.beta)
        samples = self.rollouts.samples_per_prompt
        check(samples >= 2, "rollouts.samples_per_prompt", ">= 2 (pairs need two samples)", samples)
        if self.loss == LPOLoss.MARGINAL and self.head.level != HeadLevel.TOKEN:
            raise ValueError(
                "loss=marginal needs head.level=token (it marginalises the temperature per token)"
            )
        if self.generator.kind != "hf" and self.head.level != HeadLevel.SEQUENCE:
            raise ValueError(
                f"generator.kind={self.generator.kind} needs head.level=sequence: a token-level head picks "
                "a temperature from every step's hidden state, which only HFEngine exposes (vLLM's logits "
                "processors see token ids and logits only); use generator.kind=hf"
            )
        if not self.tasks:
            raise ValueError(
                "tasks must name at least one task, e.g. tasks=[{name: math, reward: world_answer}]"
            )
        check_task_prompts(self.tasks, self.rollouts)
