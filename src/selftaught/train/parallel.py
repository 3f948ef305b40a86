"""Data parallelism: wrap a model for DDP or FSDP2, and the token count that keeps steps exact.

A recipe's loop is the same in one process and under `torchrun`:

    init_distributed()
    model = wrap_model(model.to(device), cfg.parallel)
    optimizer = build_optimizer(model, cfg.optim)  # after wrapping: FSDP2 replaces the parameters
    ...
    local_tokens = sum(mb.num_tokens for mb in micro_batches)  # this rank's share of the global batch
    metrics = train_step(model, micro_batches, loss_fn, optimizer, scheduler, max_grad_norm=...,
                         num_tokens=global_num_tokens(local_tokens), no_sync=no_sync_context(model))

Each rank passes its own slice of the global batch; one update then equals one process stepping on
the whole global batch (tests/train/test_parallel.py checks it with gloo and two processes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from itertools import chain

import torch
import torch.distributed as torch_dist
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.nn.parallel import DistributedDataParallel

from selftaught import dist
from selftaught.configs.train import STRATEGIES as STRATEGIES
from selftaught.configs.train import ParallelConfig as ParallelConfig
from selftaught.configs.train import Strategy as Strategy


def wrap_model(model: torch.nn.Module, cfg: ParallelConfig) -> torch.nn.Module:
    """`model` wrapped for `cfg.strategy`; the model itself when `none` or in a single process.

    Move the model to its device first (`cuda:local_rank()` under nccl) and build the optimizer
    after wrapping. Rank 0's weights are broadcast to every rank in both strategies, so ranks
    need not initialise identically. FSDP2 shards the modules named in the model's
    `_no_split_modules` (the decoder layers of a transformers model), then the root.
    """
    if cfg.strategy == "none" or dist.world_size() == 1:
        return model
    if cfg.strategy == "ddp":
        on_gpu = next(model.parameters()).is_cuda
        return DistributedDataParallel(model, device_ids=[dist.local_rank()] if on_gpu else None)
    layers = decoder_layers(model)
    _broadcast_from_rank0(model)
    for layer in layers:
        fully_shard(layer)
    fully_shard(model)
    return model


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The submodules FSDP2 shards one by one: those whose class is in `model._no_split_modules`."""
    names = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(
            f"parallel.strategy='fsdp2' needs the decoder layers of {type(model).__name__}, found from "
            "its `_no_split_modules` (transformers models define it); use strategy='ddp' for this model"
        )
    return layers


def no_sync_context(model: torch.nn.Module) -> Callable[[], AbstractContextManager[object]] | None:
    """What `train_step(no_sync=...)` wants: a context that skips the gradient reduction.

    DDP: `model.no_sync`. FSDP2: turns `set_requires_gradient_sync` off inside the context, so
    micro-batches accumulate unsharded gradients locally (memory of one full gradient per layer)
    and the last one reduce-scatters the sum. None for an unwrapped model (nothing to skip).
    """
    if isinstance(model, DistributedDataParallel):
        return model.no_sync
    if isinstance(model, FSDPModule):
        return partial(_fsdp_no_sync, model)
    return None


@contextmanager
def _fsdp_no_sync(model: FSDPModule) -> Iterator[None]:
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (its parameter names lose the `module.` prefix); else `model`.

    FSDP2 wraps in place, so an FSDP2 model is returned as is and its parameters stay sharded
    DTensors: to save its weights, gather them with
    `selftaught.train.checkpoint.gather_model_state`.
    """
    return model.module if isinstance(model, DistributedDataParallel) else model


def global_num_tokens(local_num_tokens: float) -> float:
    """The `num_tokens` to pass to `train_step` so a data-parallel step equals one big-batch step.

    Rank r sums the token loss of its slice, `S_r`, and divides by the value D returned here. DDP
    and FSDP2 *average* gradients over the W ranks, so the applied gradient is
    `(1 / W) sum_r grad(S_r) / D`. One process on the whole batch applies `sum_r grad(S_r) / N`
    with `N = sum_r n_r` the global trained-token count. The two are equal for `D = N / W`, which is
    what this returns (`local_num_tokens` itself in a single process).

    The loss `train_step` reports is then rank r's `S_r / D`; its mean over ranks,
    `all_reduce_sum(loss) / W`, is the global batch's loss.
    """
    return dist.all_reduce_sum(float(local_num_tokens)) / dist.world_size()


def _broadcast_from_rank0(model: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (DDP does this itself on construction)."""
    with torch.no_grad():
        for tensor in chain(model.parameters(), model.buffers()):
            torch_dist.broadcast(tensor, src=0)
