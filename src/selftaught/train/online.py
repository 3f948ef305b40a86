"""Machinery of online training loops: sampled rollouts, their buffer, the reference copy, and the
policy update.

Between two sync points the generator is frozen, so the rollouts of a whole window are sampled in
one burst (`sample_rollouts`) and wait in a buffer, keyed by the step that trains on them, until
their step comes (`selftaught.train.sync`). A checkpoint stores the pending part of the buffer as
JSON records and, when the reference is re-synced from the policy, the reference weights, so a
resume in the middle of a window continues exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from selftaught import dist
from selftaught.data.chat import encode_prompt
from selftaught.engines.base import Engine, SamplingParams
from selftaught.rewards import Rubric
from selftaught.selection.rollouts import RolloutGroup
from selftaught.train.batching import Example
from selftaught.train.checkpoint import latest_checkpoint, save_checkpoint
from selftaught.train.optim import OptimConfig
from selftaught.train.parallel import global_num_tokens, no_sync_context
from selftaught.train.precision import Precision
from selftaught.train.step import train_step
from selftaught.types import Completion, Prompt

GroupScorer = Callable[[list[RolloutGroup]], list[list[float | None]]]
"""`scorer(groups) -> rewards of each group`: sees every group of a burst at once (sibling groups
included, e.g. a pair judged in both orders), after the per-sample rubric."""
RolloutBuffer = dict[int, list[RolloutGroup]]
"""Rollout groups sampled ahead of the optimizer step (1-based) that trains on them."""
REFERENCE_FILE = "reference.safetensors"
"""In a checkpoint step directory: the reference weights (`save_online_checkpoint`)."""


def sample_rollouts(
    engine: Engine,
    rubric: Rubric,
    prompts: Sequence[tuple[int, Prompt]],
    sampling: SamplingParams,
    *,
    group_scorer: GroupScorer | None = None,
) -> list[RolloutGroup]:
    """Sample `sampling.n` completions of every `(step, prompt)` in one `generate` call and score
    them with `rubric`, then with `group_scorer` when given: one `RolloutGroup` per prompt, for its
    step (rewards None = not scored)."""
    samples = engine.generate([prompt for _, prompt in prompts], sampling)
    flat = [(prompt, c) for (_, prompt), cs in zip(prompts, samples, strict=True) for c in cs]
    rewards = rubric.score([p for p, _ in flat], [c for _, c in flat]).values
    n = sampling.n
    groups = [
        RolloutGroup(prompt, completions, rewards[i * n : (i + 1) * n], step)
        for i, ((step, prompt), completions) in enumerate(zip(prompts, samples, strict=True))
    ]
    if group_scorer is not None:
        rescored = group_scorer(groups)
        if len(rescored) != len(groups) or any(
            len(r) != len(g.rewards) for r, g in zip(rescored, groups, strict=False)
        ):
            raise ValueError("group_scorer must return one reward list per group, one reward per sample")
        for group, group_rewards in zip(groups, rescored, strict=True):
            group.rewards = list(group_rewards)
    return groups


def rollout_examples(tokenizer: Any, prompt: Prompt, completions: Sequence[Completion]) -> list[Example]:
    """Each completion as a training example: the prompt rendered once as the engines render it
    (`encode_prompt`) + the sampled token ids, which are trained."""
    prompt_ids = encode_prompt(tokenizer, prompt)
    mask = [False] * len(prompt_ids)
    return [(prompt_ids + c.token_ids, mask + [True] * c.num_tokens) for c in completions]


def add_rollouts(buffer: RolloutBuffer, groups: Sequence[RolloutGroup]) -> None:
    """Append each group to the buffer under its step."""
    for group in groups:
        buffer.setdefault(group.step, []).append(group)


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` in eval mode without gradients (a reference model)."""
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


def build_reference(policy: torch.nn.Module, *, resynced: bool) -> tuple[torch.nn.Module, bool]:
    """`(reference, adapters)`: the model an online run's KL term or DPO margin compares the policy
    with, and whether it is scored with its LoRA adapters on (`train.reference.reference_mode`).

    A LoRA policy whose reference is never re-synced is its own reference, scored with its adapters
    off: its frozen base, with no second copy of the weights (as TRL does with peft). Otherwise the
    reference is a `frozen_copy`, scored as it is (adapters on: a re-synced copy holds the policy's
    adapters of that step).
    """
    if hasattr(policy, "disable_adapter") and not resynced:
        return policy, False
    return frozen_copy(policy), True


def save_online_checkpoint(
    checkpoints: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    buffer: RolloutBuffer,
    reference: torch.nn.Module | None,
    generator_version: int,
    keep_last: int | None,
) -> Path:
    """`save_checkpoint` whose train state also holds the rollouts of `buffer` (those sampled for
    later steps) and, when `reference` is given (it is re-synced during the run), whose step
    directory holds the reference weights: with the step, all a resume needs to continue exactly."""
    pending = [group.to_record() for s in sorted(buffer) for group in buffer[s]]
    train_state = {
        "step": step,
        "generator_version": generator_version,
        "rollout_buffers": dist.all_gather_object(pending),  # each rank's own share, rank order
    }

    def save_reference(step_dir: Path) -> None:  # inside the step directory before it is published
        if reference is not None:
            save_model(reference, str(step_dir / REFERENCE_FILE))

    return save_checkpoint(
        checkpoints, step, model, optimizer, scheduler, train_state, keep_last=keep_last, extra=save_reference
    )


def restore_online_state(
    state: dict[str, Any], checkpoints: Path, buffer: RolloutBuffer, reference: torch.nn.Module | None
) -> None:
    """Refill `buffer` from the train state of the latest checkpoint (dropping the steps it already
    trained) and, when `reference` is given, load the reference weights saved with it."""
    buffers = state.get("rollout_buffers") or [state["rollout_buffer"]]  # the latter: before torchrun support
    if len(buffers) != dist.world_size():
        raise ValueError(
            f"the checkpoint holds the pending rollouts of {len(buffers)} process(es); resume it with "
            f"{len(buffers)} (got {dist.world_size()})"
        )
    add_rollouts(buffer, [RolloutGroup.from_record(record) for record in buffers[dist.rank()]])
    for done in [s for s in buffer if s <= state["step"]]:
        del buffer[done]
    if reference is not None:
        step_dir = latest_checkpoint(checkpoints)
        assert step_dir is not None, "restore_online_state runs after a checkpoint was resumed"
        path = step_dir / REFERENCE_FILE
        if not path.is_file():
            raise ValueError(f"{path} is missing (a save was interrupted); delete {path.parent} and resume")
        load_model(reference, str(path))


def update_policy(
    model: torch.nn.Module,
    micro_batches: list[Any],
    objective: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    optim: OptimConfig,
    precision: Precision = Precision.FP32,
) -> dict[str, float]:
    """One `train_step` on this rank's micro-batches with the loss denominator of `objective`
    summed over ranks, in `precision`, and its throughput in trained (completion) tokens per second.

    A step with no micro-batch on any rank makes no update (`updated` 0). Under torchrun a rank with
    none while others have some takes part with a zero loss, so the gradients still all-reduce.
    """
    local_units = objective.num_units(micro_batches) if micro_batches else 0.0
    num_units = global_num_tokens(local_units)
    if not num_units > 0:
        return {"updated": 0.0}
    loss_fn = objective.loss_fn
    if not micro_batches:
        micro_batches, loss_fn = [_ZeroBatch()], _zero_loss
    metrics = train_step(
        model,
        micro_batches,
        loss_fn,
        optimizer,
        scheduler,
        max_grad_norm=optim.max_grad_norm,
        num_units=num_units,
        no_sync=no_sync_context(model),
        precision=precision,
    )
    unit = type(micro_batches[0]).unit
    metrics.pop(f"{unit}_per_s")  # trained tokens per second below, whatever the loss counts
    num_tokens = sum(int(mb.sequences.loss_mask.sum()) for mb in micro_batches if hasattr(mb, "sequences"))
    metrics["train_tokens_per_s"] = num_tokens / metrics["seconds"]
    metrics["train_seconds"] = metrics.pop("seconds")
    metrics["updated"] = 1.0
    return metrics


class _ZeroBatch:
    """A stand-in micro-batch for a data-parallel rank with nothing to train this step."""

    unit = "tokens"
    num_units = 0


def _zero_loss(model: torch.nn.Module, batch: _ZeroBatch, num_units: float) -> tuple[torch.Tensor, dict]:
    """0 * (a one-token forward): every parameter gets a zero gradient, so DDP's all-reduce completes."""
    device = next(model.parameters()).device
    logits = model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=device)).logits
    return logits.sum() * 0.0, {}
