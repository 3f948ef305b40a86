"""One optimizer step over several micro-batches (gradient accumulation), equal to one big batch.

The loss of every micro-batch is divided by the token count of the *whole step*, which
`train_step` computes before the first forward. Summing the micro-batch gradients then gives exactly
the gradient of the big batch's loss, however the examples are split (tests/train/test_step.py:
batch 4 x accumulation 1 == batch 1 x accumulation 4). Under data parallelism the caller passes the
global count (see `train_step`) and `no_sync`, and nothing else changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, TypeVar

import torch


class MicroBatch(Protocol):
    """What `train_step` needs from a micro-batch (`selftaught.train.batching.Batch` is one)."""

    loss_mask: torch.Tensor
    """[B, T] bool; True on the tokens the loss is summed over."""


MB = TypeVar("MB", bound=MicroBatch)

LossFn = Callable[[torch.nn.Module, MB, float], tuple[torch.Tensor, dict[str, float]]]
"""`loss_fn(model, micro_batch, num_tokens) -> (loss, metrics)`: the micro-batch's summed token loss
divided by `num_tokens`, the trained-token count of the whole step. Metrics are means over the
micro-batch (as the losses in `selftaught.losses` return them); `train_step` reports their
token-weighted mean over the micro-batches."""


def train_step(
    model: torch.nn.Module,
    micro_batches: Sequence[MB],
    loss_fn: LossFn[MB],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    max_grad_norm: float | None,
    num_tokens: float | None = None,
    no_sync: Callable[[], AbstractContextManager[object]] | None = None,
) -> dict[str, float]:
    """Zero grads, forward and backward each micro-batch, clip, step the optimizer and the schedule.

    `num_tokens` is the loss denominator of the step; by default the trained tokens of all
    `micro_batches` (`loss_mask` summed). Under DDP, which averages gradients over ranks, pass the
    count summed over ranks divided by the world size, and `no_sync=model.no_sync` so gradients are
    all-reduced once, after the last micro-batch. `max_grad_norm` 0 or None skips clipping; the norm
    before clipping is reported either way.

    Returns `loss` (summed over micro-batches: the step's loss), the `loss_fn` metrics averaged over
    micro-batches weighted by trained tokens, plus `grad_norm`, `lr` (the
    rate this update used), `num_tokens`, `seconds` and `tokens_per_s` (trained tokens of this process).
    """
    if not micro_batches:
        raise ValueError("train_step: got no micro-batches; pass at least one")
    local_tokens = sum(int(mb.loss_mask.sum()) for mb in micro_batches)
    num_tokens = local_tokens if num_tokens is None else num_tokens
    if not num_tokens > 0:
        raise ValueError("train_step: no trained tokens in the step (every loss_mask is False)")
    start = time.perf_counter()
    lr = float(scheduler.get_last_lr()[0])
    optimizer.zero_grad(set_to_none=True)
    losses: list[torch.Tensor] = []
    metrics: dict[str, float] = {}
    last = len(micro_batches) - 1
    for i, mb in enumerate(micro_batches):
        # DDP: accumulate locally, all-reduce once with the last micro-batch's backward
        with nullcontext() if no_sync is None or i == last else no_sync():
            loss, mb_metrics = loss_fn(model, mb, num_tokens)
            loss.backward()
        losses.append(loss.detach())
        weight = int(mb.loss_mask.sum()) / max(local_tokens, 1)  # metrics are per-call means
        for key, value in mb_metrics.items():
            metrics[key] = metrics.get(key, 0.0) + weight * float(value)
    grad_norm = clip_grad_norm(model, max_grad_norm)
    optimizer.step()
    scheduler.step()
    seconds = time.perf_counter() - start
    return {
        **metrics,
        "loss": torch.stack(losses).sum().item(),
        "grad_norm": grad_norm,
        "lr": lr,
        "num_tokens": float(num_tokens),
        "seconds": seconds,
        "tokens_per_s": local_tokens / seconds,
    }


def clip_grad_norm(model: torch.nn.Module, max_grad_norm: float | None) -> float:
    """Global L2 norm of the gradients before clipping; scales them to `max_grad_norm` when larger.

    0 or None only measures the norm. The norm is returned even when it is not finite, so the caller
    sees a diverged step instead of a silently skipped clip.
    """
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        raise ValueError("train_step: no parameter received a gradient; does the loss depend on the model?")
    # max_norm=inf only measures: the clip coefficient clamps to exactly 1
    return float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm or math.inf))
