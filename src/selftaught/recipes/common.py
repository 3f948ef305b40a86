"""Pieces every training recipe shares: loading the policy (optionally with LoRA), deterministic
batch order, periodic evaluation, resume, and writing the final model directory.

Small functions, no base class: each recipe's loop stays in its own file and reads top to bottom.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.distributed.fsdp import FSDPModule
from transformers import AutoModelForCausalLM

from selftaught import dist
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.evals.accuracy import EvalResult, evaluate_accuracy
from selftaught.evals.sets import load_eval_set
from selftaught.models.io import load_model, resolve_model_source, save_model
from selftaught.train.checkpoint import gather_model_state, latest_checkpoint, load_checkpoint
from selftaught.train.parallel import unwrap

TINY_WORLD = "tiny-world"
"""Model alias: the cached tiny-world student, trained on first use by the world-pretrain recipe."""


@dataclass
class LoraConfig:
    """Low-rank adapters (peft). `r = 0` trains every weight (full fine-tuning)."""

    r: int = 0
    """Adapter rank; 0 disables LoRA."""
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Linear layers that get adapters (names of the Llama/Gemma projections)."""


@dataclass
class EvalConfig:
    """Periodic validation: greedy (by default) accuracy on a named evaluation set."""

    data: str = "world:valid"
    """`world:<split>` or a GSM8K-format file."""
    every: int = 0
    """Evaluate every this many optimizer steps (0: only before training and at the end; -1: never)."""
    per_level: int = 100
    """World sets: problems per level."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    limit: int | None = None
    """File sets: only the first N problems."""
    num_shots: int = 8
    """File sets (GSM8K): few-shot exemplars in the prompt."""
    n: int = 1
    """Samples per problem."""
    temperature: float = 0.0
    batch_size: int = 256
    seed: int | None = None
    """Seed of the evaluated problem sample and of sampling (None: the run's seed). Fix it to compare
    runs with different seeds on the same problems."""


def policy_source(spec: str) -> str:
    """The directory or file a model spec loads from: `tiny-world` is the cached student (trained on
    first use), aliases and GGUF files resolve as `load_model` resolves them."""
    if spec == TINY_WORLD:
        from selftaught.recipes.world_pretrain import pretrained_student

        return str(pretrained_student())
    return str(resolve_model_source(spec))


def load_policy(spec: str, lora: LoraConfig, *, device: str = "cpu") -> tuple[Any, Any]:
    """Model and tokenizer to train (`tiny-world`, an alias, a directory, a GGUF file, a hub id)."""
    if spec == TINY_WORLD:
        spec = policy_source(spec)
    model, tokenizer = load_model(spec, device=device)
    if lora.r > 0:
        try:
            import peft
        except ImportError as err:
            raise ValueError("lora.r > 0 needs the `peft` package: pip install peft") from err
        config = peft.LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        )
        model = peft.get_peft_model(model, config)
    model.train()
    return model, tokenizer


def batch_indices(position: int, batch_size: int, num_examples: int, seed: int) -> list[int]:
    """Example indices `position .. position + batch_size` of an endless stream of shuffled epochs.

    A pure function of its arguments: resuming only needs `position`, no RNG state.
    """
    indices: list[int] = []
    while len(indices) < batch_size:
        epoch, offset = divmod(position + len(indices), num_examples)
        order = list(range(num_examples))
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
        indices.extend(order[offset : offset + batch_size - len(indices)])
    return indices


def evaluate_policy(model: Any, tokenizer: Any, cfg: EvalConfig, *, seed: int = 0) -> EvalResult:
    """Accuracy of the current policy on `cfg.data` (seeded by `cfg.seed`, else `seed`); restores train
    mode afterwards."""
    seed = seed if cfg.seed is None else cfg.seed
    eval_set = load_eval_set(
        cfg.data,
        per_level=cfg.per_level,
        levels=cfg.levels,
        limit=cfg.limit,
        num_shots=cfg.num_shots,
        seed=seed,
    )
    engine = HFEngine(unwrap(model), tokenizer, batch_size=cfg.batch_size)
    sampling = SamplingParams(
        temperature=cfg.temperature,
        n=cfg.n,
        max_new_tokens=eval_set.max_new_tokens,
        stop=eval_set.stop,
        seed=seed,
    )
    return evaluate_accuracy(engine, eval_set.prompts, eval_set.is_correct, sampling)


def eval_metrics(result: EvalResult, prefix: str = "val") -> dict[str, float]:
    """Flat metrics for `metrics.jsonl`: accuracy, stderr, and accuracy per group."""
    metrics = {
        f"{prefix}_accuracy": result.accuracy,
        f"{prefix}_stderr": result.stderr,
        f"{prefix}_mean_tokens": result.mean_completion_tokens,
    }
    metrics.update({f"{prefix}_{name.replace(' ', '')}": g.accuracy for name, g in result.groups.items()})
    return metrics


def resume(checkpoint_dir: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Load the latest checkpoint when there is one; the train state (`{"step": 0}` when fresh)."""
    latest = latest_checkpoint(checkpoint_dir)
    if latest is None:
        return {"step": 0}
    return load_checkpoint(latest, model, optimizer, scheduler)


def save_final_model(model: Any, tokenizer: Any, out_dir: Path) -> Path | None:
    """Write a plain `transformers` directory (LoRA merged, FSDP gathered) on rank 0.

    The result loads with `AutoModelForCausalLM.from_pretrained`, so it can be evaluated with
    lm-eval-harness or served with vLLM as is.
    """
    state = gather_model_state(model)  # collective under FSDP2: every rank calls it
    if not dist.is_main():
        return None
    inner = unwrap(model)
    if hasattr(inner, "merge_and_unload"):  # peft: fold the adapters into the weights
        inner = inner.merge_and_unload()
    elif isinstance(inner, FSDPModule):  # parameters are shards: save a plain copy of the full state
        plain = AutoModelForCausalLM.from_config(inner.config)
        plain.load_state_dict(state)
        inner = plain
    return save_model(inner, tokenizer, out_dir)
