"""Exact checkpoint and resume: the next step after a resume is the step the run would have taken.

One directory per saved step, written by rank 0 only, with no pickle anywhere:

    <checkpoint_dir>/step-0000120/
      model.safetensors                     full (unsharded) weights; tied weights stored once
      optimizer.safetensors, optimizer.json optimizer tensors (exp_avg, exp_avg_sq, step, keyed by
                                            parameter name), and the rest (param_groups) as JSON
      scheduler.json                        the lr scheduler's state_dict
      rng.safetensors, rng.json             per rank: torch CPU (and CUDA) RNG states; python
                                            `random` and numpy global states
      train_state.json                      {"step": 120, **train_state}: data position, epoch, ...

The directory is written as `.step-0000120.tmp` and renamed when complete, so a crash never
leaves a step directory that `latest_checkpoint` would pick up half-written.

Model and optimizer states go through `torch.distributed.checkpoint.state_dict` with full state
dicts, so the same files come from and load into a plain model, DDP or FSDP2 (gathered to rank 0 on
save, resharded on load), and a checkpoint can resume on another number of processes (pass
`restore_rng=False`: per-rank RNG streams cannot carry over). Every rank must read the directory
(a shared or local file system). The limit of this format: rank 0's CPU memory holds the whole
model and optimizer state while saving (16 bytes per parameter for fp32 AdamW); sharded
checkpoints (`torch.distributed.checkpoint.save`) are not implemented.

The `train_state` dict is the recipe's: whatever, with the restored RNG, makes its data order
continue exactly (`{"position": 4096, "epoch": 1}`). It is rank 0's, so keep it the same on every
rank (a global position, sharded by rank when read). Resume from the latest step: after resuming
from an older one, the newer steps of the abandoned run stay in the directory and
`latest_checkpoint` would pick them.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from selftaught import dist
from selftaught.train.parallel import unwrap

STEP_DIR = re.compile(r"step-(\d{7,})")
"""Names of complete checkpoint directories; the step is zero-padded to 7 digits."""
TENSOR_REF = "__tensor__"
"""In optimizer.json and rng.json, `{"__tensor__": key}` stands for the tensor `key` of the
matching .safetensors file."""
GATHER_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
LOAD_FULL = StateDictOptions(full_state_dict=True)


def save_checkpoint(
    checkpoint_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    train_state: dict[str, Any],
    *,
    keep_last: int | None = None,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write `<checkpoint_dir>/step-{step:07d}/` (see the module doc) and return its path.

    `extra(tmp_dir)` writes more files into the step directory before it is published (e.g. a
    re-synced reference model): the step directory appears with everything or not at all, and a
    failed save (a full disk) leaves no temporary directory behind.

    Call on every rank: gathering the state is collective; rank 0 writes, and every rank returns
    once the directory is complete. `train_state` must be JSON (numbers, strings, lists, dicts); a
    `step` key in it must equal `step`. Save after the optimizer's first step, not before. Saving a
    step that exists replaces it. `keep_last=n` then deletes all step directories but this one and
    the newest n - 1 others (None keeps all).
    """
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None (keep all), got {keep_last}")
    if not optimizer.state:
        # get_optimizer_state_dict would fill the state with a zero-gradient step (AdamW step = 1),
        # so the first real update after a resume would use the wrong bias correction
        raise ValueError(
            "save_checkpoint: the optimizer has not taken a step yet; save after the first update "
            "(the weights before it are the model you started from)"
        )
    state = _train_state_json(step, train_state)
    model_state = gather_model_state(model)
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=GATHER_FULL)
    rng_states = dist.all_gather_object(_capture_rng())
    final = Path(checkpoint_dir) / f"step-{step:07d}"
    if dist.is_main():
        tmp = final.with_name(f".{final.name}.tmp")
        if tmp.exists():  # left by a save that crashed
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            aliases = _tied_aliases(model)
            save_file({k: v for k, v in model_state.items() if k not in aliases}, tmp / "model.safetensors")
            _save_tree(optimizer_state, tmp / "optimizer")
            _write_json(scheduler.state_dict(), tmp / "scheduler.json")
            _save_tree({"ranks": rng_states}, tmp / "rng")
            if extra is not None:
                extra(tmp)
            (tmp / "train_state.json").write_text(state)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _replace_dir(tmp, final)
        if keep_last is not None:
            others = [p for p in checkpoint_dirs(checkpoint_dir) if p != final]
            for old in others[: len(others) - (keep_last - 1)]:
                _delete_dir(old)
    dist.barrier()
    return final


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG from a step directory; return its train_state.

    `path` is a step directory or a checkpoint directory (its latest step is loaded). Call on every
    rank, with the model wrapped as it trains (after `wrap_model`). The returned dict is what
    `save_checkpoint` got, with `step` set. RNG states are per rank, so resuming on a different
    number of processes raises unless `restore_rng=False` (the run then continues, but with fresh
    random streams: not an exact resume).
    """
    step_dir = _resolve_step_dir(Path(path))
    rng_ranks = _load_tree(step_dir / "rng")["ranks"] if restore_rng else None
    if rng_ranks is not None and len(rng_ranks) != dist.world_size():
        raise ValueError(
            f"{step_dir} was saved by {len(rng_ranks)} processes and is loaded by {dist.world_size()}: "
            "per-rank RNG states cannot be restored; resume with the same number of processes, or pass "
            "restore_rng=False to continue with fresh random streams (not an exact resume)"
        )
    weights: dict[str, Any] = load_file(step_dir / "model.safetensors")
    weights.update({alias: weights[name] for alias, name in _tied_aliases(model).items()})
    set_model_state_dict(model, weights, options=LOAD_FULL)
    set_optimizer_state_dict(model, optimizer, _load_tree(step_dir / "optimizer"), options=LOAD_FULL)
    scheduler.load_state_dict(json.loads((step_dir / "scheduler.json").read_text()))
    if rng_ranks is not None:
        _restore_rng(rng_ranks[dist.rank()], step_dir)
    return json.loads((step_dir / "train_state.json").read_text())


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The step directory with the highest step in `checkpoint_dir`; None when there is none."""
    steps = checkpoint_dirs(checkpoint_dir)
    return steps[-1] if steps else None


def checkpoint_dirs(checkpoint_dir: str | Path) -> list[Path]:
    """The complete step directories in `checkpoint_dir`, oldest step first (temporaries excluded)."""
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return []
    found = [(int(m[1]), p) for p in root.iterdir() if p.is_dir() and (m := STEP_DIR.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def gather_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full, unsharded model state dict on CPU, keyed like the unwrapped model's `state_dict`.

    Collective under FSDP2 (call on every rank): rank 0 gets the state, other ranks `{}`. A plain
    or DDP model gives the state on every rank (CPU tensors may share memory with the parameters).
    """
    return cast(dict[str, torch.Tensor], get_model_state_dict(model, options=GATHER_FULL))


def _train_state_json(step: int, train_state: dict[str, Any]) -> str:
    if train_state.get("step", step) != step:
        raise ValueError(
            f"train_state['step'] is {train_state['step']} but the checkpoint is for step {step}; "
            "drop the 'step' key or keep it equal to the step saved"
        )
    try:
        return json.dumps({"step": step, **train_state}, indent=1)
    except TypeError as err:
        raise ValueError(
            f"train_state must hold only JSON values (numbers, strings, lists, dicts): {err}"
        ) from err


def _tied_aliases(model: torch.nn.Module) -> dict[str, str]:
    """`{alias: name}` for the second and later names of tied parameters (e.g. a tied
    `lm_head.weight` -> `model.embed_tokens.weight`). Saving drops the aliases, as `save_pretrained`
    does; loading puts them back, since DDP's state-dict loading requires every name."""
    first: dict[int, str] = {}
    aliases: dict[str, str] = {}
    for name, param in unwrap(model).named_parameters(remove_duplicate=False):
        if id(param) in first:
            aliases[name] = first[id(param)]
        first.setdefault(id(param), name)
    return aliases


def _capture_rng() -> dict[str, Any]:
    """This process's random states: python `random`, numpy's global, torch CPU and current CUDA."""
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    state = {
        "python": [version, list(internal), gauss_next],
        "numpy": numpy_state,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _restore_rng(state: dict[str, Any], step_dir: Path) -> None:
    if ("cuda" in state) != torch.cuda.is_available():
        saved, now = ("with", "without") if "cuda" in state else ("without", "with")
        raise ValueError(
            f"{step_dir} was saved {saved} CUDA and is loaded {now} it: its RNG state cannot be restored; "
            "pass restore_rng=False to continue with fresh random streams (not an exact resume)"
        )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy_state = state["numpy"]
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def _save_tree(tree: Any, stem: Path) -> None:
    """Write nested dicts/lists as `<stem>.safetensors` (the tensors) and `<stem>.json` (the rest)."""
    tensors: dict[str, torch.Tensor] = {}

    def split(node: Any, key: str) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[key] = node.detach().cpu().contiguous()
            return {TENSOR_REF: key}
        if isinstance(node, dict):
            assert all(isinstance(k, str) for k in node), f"non-string keys under {key!r}"
            return {k: split(v, f"{key}/{k}" if key else k) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [split(v, f"{key}/{i}") for i, v in enumerate(node)]
        return node

    skeleton = split(tree, "")
    save_file(tensors, stem.with_suffix(".safetensors"))
    _write_json(skeleton, stem.with_suffix(".json"))


def _load_tree(stem: Path) -> Any:
    """Inverse of `_save_tree` (tuples come back as lists)."""
    tensors = load_file(stem.with_suffix(".safetensors"))

    def join(node: Any) -> Any:
        if isinstance(node, dict):
            return (
                tensors[node[TENSOR_REF]]
                if set(node) == {TENSOR_REF}
                else {k: join(v) for k, v in node.items()}
            )
        if isinstance(node, list):
            return [join(v) for v in node]
        return node

    return join(json.loads(stem.with_suffix(".json").read_text()))


def _write_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=1))


def _replace_dir(tmp: Path, final: Path) -> None:
    """Rename `tmp` to `final` (atomic on POSIX); an existing `final` is moved aside, then deleted."""
    if not final.exists():
        tmp.rename(final)
        return
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old)


def _delete_dir(path: Path) -> None:
    """Delete a step directory so that an interruption never leaves a half-deleted one that looks
    complete: it is renamed out of the step-NNNNNNN namespace first, then removed."""
    doomed = path.with_name(f".{path.name}.deleting")
    path.rename(doomed)
    shutil.rmtree(doomed)


def _resolve_step_dir(path: Path) -> Path:
    if (path / "train_state.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise ValueError(
            f"{path} is neither a checkpoint step directory (step-NNNNNNN/ with train_state.json) nor a "
            "directory holding one; pass the checkpoint directory the run saved to"
        )
    return latest
