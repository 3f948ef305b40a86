import torch

from selftaught import dist
from tests.distributed_utils import run_distributed


def test_single_process_is_identity(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dist.init_distributed()
    assert not dist.is_distributed()
    assert (dist.rank(), dist.world_size(), dist.local_rank(), dist.is_main()) == (0, 1, 0, True)
    dist.barrier()
    tensor = torch.tensor([1.0, 2.0])
    assert dist.all_reduce_sum(tensor) is tensor
    assert dist.all_reduce_sum(3.5) == 3.5
    state = {"order": [3, 1, 2]}
    assert dist.broadcast_object(state) is state
    assert dist.all_gather_object(state) == [state]
    dist.shutdown()


def check_collectives() -> None:
    """On each of 2 ranks: the group came from the environment, and every collective agrees."""
    assert dist.is_distributed() and dist.world_size() == 2
    rank = dist.rank()
    assert dist.local_rank() == rank and dist.is_main() == (rank == 0)
    dist.init_distributed()  # a second call is a no-op
    assert dist.all_reduce_sum(rank + 1.5) == 1.5 + 2.5
    tensor = torch.full((3,), float(rank + 1))
    summed = dist.all_reduce_sum(tensor)
    assert summed.tolist() == [3.0, 3.0, 3.0] and tensor.tolist() == [rank + 1.0] * 3  # input untouched
    assert dist.broadcast_object({"seed": 100 + rank}) == {"seed": 100}
    assert dist.all_gather_object(f"rank{rank}") == ["rank0", "rank1"]
    dist.barrier()


def test_two_gloo_processes():
    run_distributed(check_collectives, world_size=2)
