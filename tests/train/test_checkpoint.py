import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from selftaught import dist
from selftaught.train.batching import Batch, collate
from selftaught.train.checkpoint import (
    checkpoint_dirs,
    gather_model_state,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.parallel import ParallelConfig, global_num_tokens, no_sync_context, unwrap, wrap_model
from selftaught.train.step import train_step
from tests.distributed_utils import run_distributed
from tests.train.test_parallel import PAD_ID, STRATEGIES, full, make_examples, nll_loss, tied_llama

OPTIM = OptimConfig(lr=1e-3, eps=1e-4, weight_decay=0.1, schedule="cosine", warmup_steps=2, max_grad_norm=1.0)
CHECKPOINT_FILES = {
    "model.safetensors",
    "optimizer.safetensors",
    "optimizer.json",
    "scheduler.json",
    "rng.safetensors",
    "rng.json",
    "train_state.json",
}
POOL = make_examples([3 + i % 7 for i in range(24)], seed=5)
"""The data set the resume test draws from."""


class Trainer:
    """A model with its optimizer and schedule, as a recipe's loop holds them."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.optimizer = build_optimizer(model, OPTIM)
        self.scheduler = build_scheduler(self.optimizer, OPTIM, total_steps=10)

    def step(self, micro_batches: list[Batch], **kwargs) -> dict[str, float]:
        return train_step(
            self.model,
            micro_batches,
            nll_loss,
            self.optimizer,
            self.scheduler,
            max_grad_norm=OPTIM.max_grad_norm,
            **kwargs,
        )

    def save(self, checkpoint_dir: Path, step: int, train_state: dict, **kwargs) -> Path:
        return save_checkpoint(
            checkpoint_dir, step, self.model, self.optimizer, self.scheduler, train_state, **kwargs
        )

    def load(self, path: Path, **kwargs) -> dict:
        return load_checkpoint(path, self.model, self.optimizer, self.scheduler, **kwargs)


def next_micro_batches(train_state: dict) -> list[Batch]:
    """Two examples in order from the data position, and one drawn with each of python `random`,
    numpy and torch: the batch depends on the position and on all three random states."""
    position = train_state["position"]
    picks = [position % len(POOL), (position + 1) % len(POOL)]
    picks += [
        random.randrange(len(POOL)),
        int(np.random.randint(len(POOL))),
        int(torch.randint(len(POOL), ())),
    ]
    train_state["position"] = position + 2
    return [collate([POOL[i] for i in picks[:3]], PAD_ID), collate([POOL[i] for i in picks[3:]], PAD_ID)]


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def trained(num_steps: int, train_state: dict) -> Trainer:
    seed_all(0)
    trainer = Trainer(tied_llama(seed=0))
    for _ in range(num_steps):
        trainer.step(next_micro_batches(train_state))
    return trainer


def test_round_trip_restores_everything_bitwise(tmp_path):
    trainer = trained(3, train_state := {"position": 0, "epoch": 1})
    step_dir = trainer.save(tmp_path, 3, train_state)
    assert step_dir == tmp_path / "step-0000003"
    assert {p.name for p in step_dir.iterdir()} == CHECKPOINT_FILES  # safetensors and JSON only
    model_state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    optimizer_state = trainer.optimizer.state_dict()
    scheduler_state, last_lr = trainer.scheduler.state_dict(), trainer.scheduler.get_last_lr()
    rng = random.getstate(), np.random.get_state(legacy=False), torch.get_rng_state()

    seed_all(1)
    fresh = Trainer(tied_llama(seed=1))
    assert fresh.load(step_dir) == {"step": 3, "position": 6, "epoch": 1}
    for name, tensor in fresh.model.state_dict().items():
        assert torch.equal(tensor, model_state[name]), name
    assert fresh.model.lm_head.weight is fresh.model.model.embed_tokens.weight  # still tied
    loaded = fresh.optimizer.state_dict()
    assert loaded["state"].keys() == optimizer_state["state"].keys()
    for index, param_state in optimizer_state["state"].items():
        assert param_state.keys() == {"step", "exp_avg", "exp_avg_sq"}
        for key, value in param_state.items():
            assert torch.equal(loaded["state"][index][key], value), (index, key)
    assert json.dumps(loaded["param_groups"]) == json.dumps(optimizer_state["param_groups"])
    assert fresh.scheduler.state_dict() == scheduler_state and fresh.scheduler.get_last_lr() == last_lr
    assert random.getstate() == rng[0]
    assert np.random.get_state(legacy=False)["state"]["key"].tolist() == rng[1]["state"]["key"].tolist()
    assert np.random.get_state(legacy=False)["state"]["pos"] == rng[1]["state"]["pos"]
    assert torch.equal(torch.get_rng_state(), rng[2])


def test_files_are_readable_without_selftaught(tmp_path):
    step_dir = trained(1, {"position": 0}).save(tmp_path, 1, {"position": 2})
    weights = load_file(step_dir / "model.safetensors")
    assert "lm_head.weight" not in weights and "model.embed_tokens.weight" in weights  # tied: stored once
    assert weights.keys() == gather_model_state(tied_llama()).keys() - {"lm_head.weight"}
    optimizer = json.loads((step_dir / "optimizer.json").read_text())
    assert optimizer["state"]["model.norm.weight"]["exp_avg"] == {
        "__tensor__": "state/model.norm.weight/exp_avg"
    }
    assert len(json.loads((step_dir / "rng.json").read_text())["ranks"]) == 1


def test_resume_continues_exactly(tmp_path):
    """Train 2 steps, save, take step 3; a fresh process state loaded from the save takes the same step 3."""
    trainer = trained(2, train_state := {"position": 0})
    trainer.save(tmp_path, 2, train_state)
    expected_loss = trainer.step(next_micro_batches(train_state))["loss"]

    def resumed_step(restore_rng: bool) -> tuple[float, Trainer]:
        seed_all(123)
        fresh = Trainer(tied_llama(seed=7))
        state = fresh.load(tmp_path, restore_rng=restore_rng)
        assert state == {"step": 2, "position": 4}
        return fresh.step(next_micro_batches(state))["loss"], fresh

    loss, resumed = resumed_step(restore_rng=True)
    assert loss == expected_loss
    for (name, expected), param in zip(
        trainer.model.named_parameters(), resumed.model.parameters(), strict=True
    ):
        assert torch.equal(param, expected), name
    # the random draws do matter: without the saved RNG the same position gives another batch
    assert resumed_step(restore_rng=False)[0] != expected_loss


def test_latest_keep_last_and_atomic_replace(tmp_path):
    trainer = trained(1, {"position": 0})
    assert latest_checkpoint(tmp_path / "missing") is None
    with pytest.raises(ValueError, match="neither a checkpoint step directory"):
        trainer.load(tmp_path)
    for step in range(1, 5):
        trainer.save(tmp_path, step, {"position": step}, keep_last=2)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-0000003", "step-0000004"]
    crashed = tmp_path / ".step-0000005.tmp"  # a save interrupted half-way
    crashed.mkdir()
    (crashed / "model.safetensors").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path) == tmp_path / "step-0000004"
    assert trainer.load(tmp_path) == {"step": 4, "position": 4}
    trainer.save(tmp_path, 4, {"position": 40})  # saving a step again replaces it
    trainer.save(tmp_path, 5, {"position": 5, "step": 5})
    assert not crashed.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000003", "step-0000004", "step-0000005"]
    assert trainer.load(tmp_path / "step-0000004")["position"] == 40
    assert latest_checkpoint(tmp_path) == tmp_path / "step-0000005"


def test_save_errors(tmp_path):
    trainer = trained(1, {"position": 0})
    with pytest.raises(ValueError, match="JSON values"):
        trainer.save(tmp_path, 1, {"position": torch.tensor(3)})
    with pytest.raises(ValueError, match=r"train_state\['step'\] is 2"):
        trainer.save(tmp_path, 1, {"step": 2})
    with pytest.raises(ValueError, match="keep_last"):
        trainer.save(tmp_path, 1, {}, keep_last=0)
    with pytest.raises(ValueError, match="has not taken a step"):
        Trainer(tied_llama()).save(tmp_path, 0, {})
    assert not any(tmp_path.iterdir())


GLOBAL_BATCHES = [make_examples([5, 11, 7, 3], seed=s) for s in (1, 2)]
"""Two steps of a global batch of 4; rank r of 2 trains sequences 2r and 2r + 1."""


def parallel_step(trainer: Trainer, examples: list) -> None:
    micro_batches = [collate([e], PAD_ID) for e in examples[2 * dist.rank() : 2 * dist.rank() + 2]]
    num_tokens = global_num_tokens(sum(mb.num_tokens for mb in micro_batches))
    trainer.step(micro_batches, num_units=num_tokens, no_sync=no_sync_context(trainer.model))


def full_params(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: full(p.detach()).clone() for name, p in unwrap(model).named_parameters()}


def save_and_resume(checkpoint_dir: str) -> None:
    """DDP, then FSDP2, on 2 ranks: step, save, step; a fresh wrapped model loaded from the save
    takes the same second step."""
    for strategy in STRATEGIES:
        trainer = Trainer(wrap_model(tied_llama(seed=0), ParallelConfig(strategy)))
        parallel_step(trainer, GLOBAL_BATCHES[0])
        trainer.save(Path(checkpoint_dir) / strategy, 1, {"position": 4})
        parallel_step(trainer, GLOBAL_BATCHES[1])
        resumed = Trainer(wrap_model(tied_llama(seed=3), ParallelConfig(strategy)))
        assert resumed.load(Path(checkpoint_dir) / strategy) == {"step": 1, "position": 4}
        parallel_step(resumed, GLOBAL_BATCHES[1])
        expected = full_params(trainer.model)
        for name, param in full_params(resumed.model).items():
            assert torch.equal(param, expected[name]), f"{strategy} {name}"


@pytest.fixture(scope="module")
def distributed_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoints of one 2-rank run of `save_and_resume`, shared by both strategies' tests."""
    out = tmp_path_factory.mktemp("distributed_checkpoints")
    run_distributed(save_and_resume, str(out), world_size=2)
    return out


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_parallel_checkpoint_holds_the_full_state(distributed_checkpoints, strategy):
    """The 2-rank run's checkpoint equals one process after the same step on the whole global batch."""
    ckpt_dir = distributed_checkpoints / strategy
    assert {p.name for p in ckpt_dir.iterdir()} == {"step-0000001"}  # rank 0 wrote, only the step dir
    assert {p.name for p in (ckpt_dir / "step-0000001").iterdir()} == CHECKPOINT_FILES
    reference = Trainer(tied_llama(seed=0))
    reference.step([collate(GLOBAL_BATCHES[0], PAD_ID)])
    loaded = Trainer(tied_llama(seed=3))
    with pytest.raises(ValueError, match="saved by 2 processes and is loaded by 1"):
        loaded.load(ckpt_dir)
    assert loaded.load(ckpt_dir, restore_rng=False)["position"] == 4
    for (name, expected), param in zip(
        reference.model.named_parameters(), loaded.model.parameters(), strict=True
    ):
        torch.testing.assert_close(param, expected, rtol=0, atol=1e-6, msg=name)
    for expected, got in zip(
        reference.optimizer.state.values(), loaded.optimizer.state.values(), strict=True
    ):
        assert got["step"] == expected["step"] == 1
        torch.testing.assert_close(got["exp_avg"], expected["exp_avg"], rtol=0, atol=1e-7)
        torch.testing.assert_close(got["exp_avg_sq"], expected["exp_avg_sq"], rtol=0, atol=1e-9)


def test_a_failed_save_publishes_nothing_and_leaves_no_temporary(tmp_path, monkeypatch):
    trainer = trained(1, {"position": 0})
    trainer.save(tmp_path, 1, {"position": 1})

    def disk_full(step_dir: Path) -> None:  # e.g. the reference weights of an online checkpoint
        (step_dir / "reference.safetensors").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        trainer.save(tmp_path, 2, {"position": 2}, extra=disk_full)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000001"]  # no step-2, no .tmp left
    written = []
    trainer.save(
        tmp_path, 2, {"position": 2}, extra=lambda d: written.append(sorted(p.name for p in d.iterdir()))
    )
    assert "train_state.json" not in written[0]  # extra files go in before the directory is complete


def test_pruning_never_leaves_a_half_deleted_checkpoint_that_looks_complete(tmp_path, monkeypatch):
    import shutil

    trainer = trained(1, {"position": 0})
    for step in (1, 2):
        trainer.save(tmp_path, step, {"position": step})
    real_rmtree = shutil.rmtree

    def interrupted(path, *args, **kwargs):  # killed half-way through deleting the old step
        (Path(path) / "model.safetensors").unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.save(tmp_path, 3, {"position": 3}, keep_last=1)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == ["step-0000002", "step-0000003"]
    assert trainer.load(tmp_path / "step-0000002")["position"] == 2  # what is listed is whole
