"""One optimizer step over several micro-batches (gradient accumulation), equal to one big batch.

The loss of every micro-batch is divided by the unit count of the *whole step* (trained tokens for
SFT, pairs for DPO: each micro-batch says what it counts, `MicroBatch`), which `train_step` computes
before the first forward. Summing the micro-batch gradients then gives exactly the gradient of the
big batch's loss, however the examples are split (tests/train/test_step.py: batch 4 x accumulation 1
== batch 1 x accumulation 4). Under data parallelism the caller passes the global count (see
`train_step`) and `no_sync`, and nothing else changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import ClassVar, Protocol, TypeVar

import torch

from selftaught.train.precision import Precision, check_weights, forward_context, model_device


class MicroBatch(Protocol):
    """What `train_step` needs from a micro-batch: how many loss units it holds, and what they are
    (`selftaught.train.batching.Batch`: trained tokens; `train.preference.PairBatch`: pairs)."""

    unit: ClassVar[str]
    """What the loss is summed over, plural ("tokens", "pairs"): `train_step` reports `num_<unit>`
    and `<unit>_per_s`."""

    @property
    def num_units(self) -> int:
        """The units of this micro-batch that its loss is summed over."""
        ...


MB = TypeVar("MB", bound=MicroBatch)

LossFn = Callable[[torch.nn.Module, MB, float], tuple[torch.Tensor, dict[str, float]]]
"""`loss_fn(model, micro_batch, num_units) -> (loss, metrics)`: the micro-batch's loss summed over its
units divided by `num_units`, the unit count of the whole step. Metrics are means over the
micro-batch (as the losses in `selftaught.losses` return them); `train_step` reports their
unit-weighted mean over the micro-batches."""


def train_step(
    model: torch.nn.Module,
    micro_batches: Sequence[MB],
    loss_fn: LossFn[MB],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    max_grad_norm: float | None,
    num_units: float | None = None,
    num_tokens: float | None = None,
    no_sync: Callable[[], AbstractContextManager[object]] | None = None,
    precision: Precision = Precision.FP32,
) -> dict[str, float]:
    """Zero grads, forward and backward each micro-batch, clip, step the optimizer and the schedule.

    `num_units` is the loss denominator of the step; by default the units of all `micro_batches`
    (their `num_units` summed). Under DDP, which averages gradients over ranks, pass the count summed
    over ranks divided by the world size (`train.parallel.global_num_tokens`), and
    `no_sync=model.no_sync` so gradients are all-reduced once, after the last micro-batch. A loss
    normalised by something other than the micro-batches' unit passes its own count (GRPO by
    sequences: the sequences of the step). `num_tokens` is the old name of `num_units`, kept for
    callers until they drop it. `max_grad_norm` 0 or None skips clipping; the norm before clipping is
    reported either way. `precision`: `loss_fn` runs in its `forward_context` (bf16 autocast for
    `bf16-autocast`), the backward outside it (`selftaught.train.precision`).

    Returns `loss` (summed over micro-batches: the step's loss), the `loss_fn` metrics averaged over
    micro-batches weighted by their units, plus `grad_norm`, `lr` (the rate this update used),
    `seconds`, and `num_<unit>` and `<unit>_per_s`: the units this process trained, and per second
    (`num_tokens` and `tokens_per_s` for token micro-batches, `num_pairs` and `pairs_per_s` for pairs).
    """
    unit = _unit_of(micro_batches)
    local_units = sum(mb.num_units for mb in micro_batches)
    denominator = _denominator(num_units, num_tokens, local_units, unit)
    start = time.perf_counter()
    lr = float(scheduler.get_last_lr()[0])
    optimizer.zero_grad(set_to_none=True)
    losses: list[torch.Tensor] = []
    metrics: dict[str, float] = {}
    last = len(micro_batches) - 1
    check_weights(model, precision)
    device = model_device(model)
    for i, mb in enumerate(micro_batches):
        # DDP: accumulate locally, all-reduce once with the last micro-batch's backward
        with nullcontext() if no_sync is None or i == last else no_sync():
            with forward_context(precision, device):
                loss, mb_metrics = loss_fn(model, mb, denominator)
            loss.backward()
        losses.append(loss.detach())
        weight = mb.num_units / max(local_units, 1)  # metrics are per-call means
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
        f"num_{unit}": float(local_units),
        "seconds": seconds,
        f"{unit}_per_s": local_units / seconds,
    }


def _unit_of(micro_batches: Sequence[MicroBatch]) -> str:
    """The one unit all `micro_batches` count (their metrics and counts are summed together)."""
    if not micro_batches:
        raise ValueError("train_step: got no micro-batches; pass at least one")
    units = {type(mb).unit for mb in micro_batches}
    if len(units) > 1:
        raise ValueError(f"train_step: micro-batches count different units {sorted(units)}; pass one kind")
    return units.pop()


def _denominator(num_units: float | None, num_tokens: float | None, local_units: int, unit: str) -> float:
    """The step's loss denominator: the caller's count (`num_units`, or its old name `num_tokens`), else
    the micro-batches' own; positive."""
    if num_units is not None and num_tokens is not None:
        raise ValueError("train_step: pass num_units only (num_tokens is its old name), not both")
    given = num_units if num_units is not None else num_tokens
    denominator = local_units if given is None else given
    if not denominator > 0:
        raise ValueError(f"train_step: no trained {unit} in the step (every micro-batch has num_units 0)")
    return denominator


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
