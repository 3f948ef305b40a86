"""torch.distributed helpers that are no-ops in a single process, so recipes call them unconditionally.

Launch with `torchrun --nproc_per_node N -m selftaught ...`: torchrun sets `RANK`, `LOCAL_RANK`,
`WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT`, and `init_distributed()` joins the process group from
them. Without torchrun (`WORLD_SIZE` unset) nothing is initialised: `rank()` is 0, `world_size()` 1,
`is_main()` True, `barrier()` returns at once and the collectives return their input.

Objects (not tensors) travel between processes pickled by torch.distributed, in memory only; nothing
here writes files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar, overload

import torch
import torch.distributed as dist

T = TypeVar("T")


def is_distributed() -> bool:
    """True once a process group is initialised (under torchrun, after `init_distributed`)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Global rank of this process; 0 in a single process."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes in the group; 1 in a single process."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """Rank of this process on its machine (torchrun's `LOCAL_RANK`): the index of its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on the process that writes files and logs (rank 0)."""
    return rank() == 0


def init_distributed(backend: str | None = None) -> None:
    """Join the process group described by torchrun's environment variables; no-op without them.

    `backend` defaults to `nccl` when CUDA is available (and selects GPU `local_rank()`), else `gloo`.
    Calling it again once initialised does nothing.
    """
    if is_distributed() or "WORLD_SIZE" not in os.environ:
        return
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
        dist.init_process_group(backend, device_id=device)
    else:
        dist.init_process_group(backend)


def shutdown() -> None:
    """Leave the process group (at the end of a run); no-op when none is initialised."""
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every process reaches this point; no-op in a single process."""
    if is_distributed():
        dist.barrier()


def main_first(fn: Callable[[], T]) -> T:
    """`fn()` on rank 0, then on the other ranks: rank 0 fills an on-disk cache the others read."""
    if is_main():
        result = fn()
    barrier()
    if not is_main():
        result = fn()
    return result


@overload
def all_reduce_sum(value: torch.Tensor) -> torch.Tensor: ...
@overload
def all_reduce_sum(value: float) -> float: ...
def all_reduce_sum(value: torch.Tensor | float) -> torch.Tensor | float:
    """The sum of `value` over all processes; `value` itself in a single process.

    A tensor comes back as a new tensor (the input is not modified); under nccl it must be on this
    process's GPU. A number is summed in float64, so token counts stay exact, and comes back as a float.
    """
    if not is_distributed():
        return value
    if isinstance(value, torch.Tensor):
        summed = value.detach().clone()
        dist.all_reduce(summed)
        return summed
    summed = torch.tensor(float(value), dtype=torch.float64, device=_comm_device())
    dist.all_reduce(summed)
    return summed.item()


def broadcast_object(obj: T, src: int = 0) -> T:
    """`obj` as process `src` holds it, on every process (e.g. a data order drawn on rank 0)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_comm_device())
    return box[0]


def all_gather_object(obj: T) -> list[T]:
    """`[obj of rank 0, obj of rank 1, ...]` on every process; `[obj]` in a single process."""
    if not is_distributed():
        return [obj]
    gathered: list[T | None] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered  # type: ignore[return-value]


def _comm_device() -> torch.device:
    """Where staging tensors for collectives live: this process's GPU under nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", local_rank())
    return torch.device("cpu")
