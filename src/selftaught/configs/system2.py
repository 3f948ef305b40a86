"""The config of the system2-distill flow (papers_A §3; `selftaught system2-distill`), torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from selftaught.config import check
from selftaught.configs.train import LoraConfig, RunConfig

SYSTEM2_TASKS = ("world-letters", "world-swaps", "world-judge", "gsm8k")
"""What the flow distils (`pipelines.system2_tasks`): the System 2 world's three tasks, or GSM8K."""
CURATIONS = ("majority", "usc", "swap", "none")
"""`majority` vote with `min_share`; `usc` (the model names the most consistent response); `swap`
(both orders of a pairwise input agree; judge tasks); `none` (the first sample: the ablation)."""


@dataclass
class System2DistillConfig(RunConfig):
    """System 2 distillation: run a System 2 method on unlabelled inputs, keep self-consistent final
    answers, SFT the same model on (input -> final answer), compare accuracy and tokens."""

    out_dir: str = "runs/system2-distill"
    model: str = "tiny-world-system2"
    """The starting model: System 1, the System 2 executor and the student (the paper's setup)."""
    task: str = "world-letters"
    """One of `SYSTEM2_TASKS`."""
    train_data: str | None = None
    """gsm8k: the unlabelled training questions (a GSM8K-format JSONL; its answers are never read)."""
    test_data: str | None = None
    """gsm8k: the evaluation questions with their answers."""
    num_inputs: int = 1000
    """Unlabelled training inputs (the first of the file, or world train questions drawn with `seed`)."""
    method: str = "cot"
    """The System 2 method (`pipelines.system2.METHODS`); `direct` distils System 1 itself (the
    "Distill System 1" ablation)."""
    templates: dict[str, str] = field(default_factory=dict)
    """Template overrides by role (`cot-zero-shot: world-s2@1`); the task's defaults fill the rest."""
    samples: int = 8
    """System 2 runs per input (the paper: 8 for RaR, 10 for CoT)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 96
    """Per call of the System 2 method."""
    s1_max_new_tokens: int = 16
    """System 1 answers (base and distilled)."""
    curation: str = "majority"
    """One of `CURATIONS`."""
    min_share: float = 0.625
    """`majority` (and each side of `swap`): the majority's share of all samples (5/8)."""
    sft_steps: int = 200
    sft_batch_size: int = 64
    sft_lr: float = 1e-3
    sft_max_length: int = 256
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA for the distillation SFT (Gemma); off by default (full fine-tuning of the tiny model)."""
    eval_num: int = 300
    """Held-out questions (world test split, or the first of `test_data`)."""
    eval_s2: bool = True
    """Also evaluate System 2 itself (greedy): its accuracy and tokens, the bar to reach."""
    engine: Literal["hf", "vllm"] = "hf"
    """Generation: the in-process `HFEngine` or vLLM (GPU; the trained model is reloaded by path)."""
    batch_size: int = 256
    """HFEngine generation batch."""
    samples_dir: str | None = None
    """Where the System 2 samples stage lives (None: `<out_dir>/system2`; the swapped inputs' in
    `<samples_dir>-swapped`): runs that differ only in curation can share one (the repro's arms do);
    the stage's fingerprint makes a mismatch an error, never a silent reuse."""
    shard_size: int = 250
    """Inputs per System 2 shard (the unit a killed run redoes)."""
    num_steps: int = 1
    """Unused (the SFT's length is `sft_steps`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.task in SYSTEM2_TASKS, "task", f"one of {SYSTEM2_TASKS}", self.task)
        check(self.curation in CURATIONS, "curation", f"one of {CURATIONS}", self.curation)
        if self.curation == "swap":
            check(
                self.task == "world-judge",
                "curation",
                "swap only for a pairwise task (world-judge)",
                self.curation,
            )
        for key in (
            "num_inputs",
            "samples",
            "max_new_tokens",
            "s1_max_new_tokens",
            "sft_steps",
            "sft_batch_size",
            "eval_num",
            "batch_size",
            "shard_size",
        ):
            check(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        check(self.temperature >= 0, "temperature", ">= 0", self.temperature)
        check(0 < self.top_p <= 1, "top_p", "in (0, 1]", self.top_p)
        check(0 <= self.min_share <= 1, "min_share", "in [0, 1]", self.min_share)
        check(self.engine in ("hf", "vllm"), "engine", "hf or vllm", self.engine)
        if self.task == "gsm8k":
            for key in ("train_data", "test_data"):
                check(getattr(self, key) is not None, key, "a GSM8K-format JSONL for task=gsm8k", None)
