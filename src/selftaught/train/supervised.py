"""The supervised loop: SFT, pretraining from scratch (SFT with a stop rule), and any recipe that
trains a next-token loss on fixed data with a loss of its own (CoCoMix's concept loss).

    step_batches(step) -> micro-batches      a pure function of the step (resume needs nothing else)
    loss_fn(model, batch, num_units)         `train_step`'s loss; `sft_loss_fn` by default
    stop(val_metrics) -> bool                checked after each evaluation; True ends the run early

Under torchrun each rank builds its own micro-batches (`rank_indices`), and the loss is divided by
the units (tokens) of the whole global batch, so accumulation and data parallelism equal one big
batch (`selftaught.train.step`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

from selftaught import dist
from selftaught.data.order import batch_indices
from selftaught.losses.logps import token_logps
from selftaught.losses.sft import sft_loss
from selftaught.runlog import RunLog
from selftaught.train import loop
from selftaught.train.batching import Batch, Example, WeightedExample, collate, token_budget_batches
from selftaught.train.parallel import global_num_tokens, no_sync_context
from selftaught.train.step import train_step

StopRule = Callable[[dict[str, float]], bool]


def sft_loss_fn(model: Any, batch: Batch, num_tokens: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """NLL of the trained tokens of `batch`, summed and divided by the step's `num_tokens`."""
    logps = token_logps(
        model,
        batch.input_ids,
        batch.attention_mask,
        position_ids=batch.position_ids,
        loss_mask=batch.loss_mask,
    )  # [B, T], 0 outside the loss mask
    return sft_loss(logps, batch.loss_mask, num_tokens, batch.loss_weights)


def rank_indices(step: int, batch_size: int, num_examples: int, seed: int) -> list[int]:
    """This rank's share of the global batch of step `step` (1-based) of a shuffled-epoch stream."""
    indices = batch_indices((step - 1) * batch_size, batch_size, num_examples, seed)
    return indices[dist.rank() :: dist.world_size()]


def micro_batches(
    examples: Sequence[Example | WeightedExample], indices: Sequence[int], pad_id: int, max_tokens: int
) -> list[Batch]:
    """`examples[indices]` in micro-batches of at most `max_tokens` padded tokens (0: one micro-batch)."""
    lengths = [len(examples[i][0]) for i in indices]
    groups = token_budget_batches(lengths, max_tokens or max(lengths) * len(lengths))
    return [collate([examples[indices[j]] for j in group], pad_id) for group in groups]


def train_supervised(
    cfg: loop.RunConfig,
    run_log: RunLog,
    model: Any,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    step_batches: Callable[[int], list[Batch]],
    *,
    max_grad_norm: float | None,
    loss_fn: Callable[..., Any] = sft_loss_fn,
    validate: loop.Validate | None = None,
    stop: StopRule | None = None,
    desc: str = "sft",
) -> dict[str, float]:
    """Resume, train `cfg.num_steps` steps (or until `stop`), evaluate, save `<out_dir>/model`; the
    final validation metrics plus `steps` (the last step trained)."""
    state = loop.start(cfg, run_log, model, optimizer, scheduler, validate)
    save = partial(loop.checkpoint, cfg, model, optimizer, scheduler)
    step, stopped_at = state["step"], None
    for step in run_log.progress(loop.remaining_steps(cfg, state), total=cfg.num_steps, desc=desc):
        batches = step_batches(step)
        metrics = train_step(
            model,
            batches,
            loss_fn,
            optimizer,
            scheduler,
            max_grad_norm=max_grad_norm,
            num_tokens=global_num_tokens(sum(b.num_units for b in batches)),
            no_sync=no_sync_context(model),
            precision=cfg.precision,
        )
        val = loop.end_of_step(cfg, run_log, step, metrics, validate, save)
        if stop is not None and val and stop(val):
            run_log.info(f"stop rule met at step {step}")
            stopped_at = val
            break
    final = loop.finish(cfg, run_log, model, tokenizer, validate, step=step, final=stopped_at)
    return {**final, "steps": step}
