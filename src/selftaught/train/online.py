"""Machinery of online training loops: sampled rollouts, their buffer, and the reference copy.

Between two sync points the generator is frozen, so the rollouts of a whole window are sampled in
one burst (`sample_rollouts`) and wait in a buffer, keyed by the step that trains on them, until
their step comes (`selftaught.train.sync`). A checkpoint stores the pending part of the buffer as
JSON records and, when the reference is re-synced from the policy, the reference weights, so a
resume in the middle of a window continues exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from selftaught.data.chat import encode_prompt
from selftaught.engines.base import Engine, SamplingParams
from selftaught.rewards import Rubric
from selftaught.selection.rollouts import RolloutGroup
from selftaught.train.batching import Example
from selftaught.train.checkpoint import latest_checkpoint, save_checkpoint
from selftaught.types import Completion, Prompt

RolloutBuffer = dict[int, list[RolloutGroup]]
"""Rollout groups sampled ahead of the optimizer step (1-based) that trains on them."""
REFERENCE_FILE = "reference.safetensors"
"""In a checkpoint step directory: the reference weights (`save_online_checkpoint`)."""


def sample_rollouts(
    engine: Engine, rubric: Rubric, prompts: Sequence[tuple[int, Prompt]], sampling: SamplingParams
) -> list[RolloutGroup]:
    """Sample `sampling.n` completions of every `(step, prompt)` in one `generate` call and score
    them with `rubric`: one `RolloutGroup` per prompt, for its step (rewards None = not scored)."""
    samples = engine.generate([prompt for _, prompt in prompts], sampling)
    flat = [(prompt, c) for (_, prompt), cs in zip(prompts, samples, strict=True) for c in cs]
    rewards = rubric.score([p for p, _ in flat], [c for _, c in flat]).values
    n = sampling.n
    return [
        RolloutGroup(prompt, completions, rewards[i * n : (i + 1) * n], step)
        for i, ((step, prompt), completions) in enumerate(zip(prompts, samples, strict=True))
    ]


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
    keep_last: int,
) -> Path:
    """`save_checkpoint` whose train state also holds the rollouts of `buffer` (those sampled for
    later steps) and, when `reference` is given (it is re-synced during the run), whose step
    directory holds the reference weights: with the step, all a resume needs to continue exactly."""
    pending = [group.to_record() for s in sorted(buffer) for group in buffer[s]]
    train_state = {"step": step, "generator_version": generator_version, "rollout_buffer": pending}
    path = save_checkpoint(checkpoints, step, model, optimizer, scheduler, train_state, keep_last=keep_last)
    if reference is not None:
        tmp = path / f".{REFERENCE_FILE}.tmp"
        save_model(reference, str(tmp))
        tmp.rename(path / REFERENCE_FILE)
    return path


def restore_online_state(
    state: dict[str, Any], checkpoints: Path, buffer: RolloutBuffer, reference: torch.nn.Module | None
) -> None:
    """Refill `buffer` from the train state of the latest checkpoint (dropping the steps it already
    trained) and, when `reference` is given, load the reference weights saved with it."""
    add_rollouts(buffer, [RolloutGroup.from_record(record) for record in state["rollout_buffer"]])
    for done in [s for s in buffer if s <= state["step"]]:
        del buffer[done]
    if reference is not None:
        step_dir = latest_checkpoint(checkpoints)
        assert step_dir is not None, "restore_online_state runs after a checkpoint was resumed"
        path = step_dir / REFERENCE_FILE
        if not path.is_file():
            raise ValueError(f"{path} is missing (a save was interrupted); delete {path.parent} and resume")
        load_model(reference, str(path))
