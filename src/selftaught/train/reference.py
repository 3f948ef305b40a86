"""Reference log-probabilities for DPO: computed once with the frozen initial policy, cached on disk.

Offline DPO compares the policy with its starting point, the reference. Instead of holding a second
model in memory while training, `load_or_compute_ref_logps` scores every training sequence once,
before the first step, and stores the scores in a safetensors file whose metadata holds a content
hash of the reference weights and of the sequences' token ids and loss masks. A rerun (or a resume)
with the same model and data reads the file back; anything else recomputes and replaces it.

With LoRA the reference is the base model: the adapters are disabled while scoring (peft
`disable_adapter()`), and adapter weights are left out of the fingerprint, so a run whose adapters
start from another random init still reuses the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from selftaught.losses.logps import token_logps
from selftaught.train.batching import Example, collate, token_budget_batches
from selftaught.train.precision import Precision, forward_context

CACHE_VERSION = "ref-logps@1"
"""Part of every cache key: bump it when what a cached value means changes."""
ADAPTER_MARKER = ".lora_"
"""peft names adapter weights `...q_proj.lora_A.default.weight`; they are not the reference's."""


def load_or_compute_ref_logps(
    path: str | os.PathLike[str],
    model: torch.nn.Module,
    examples: Sequence[Example],
    *,
    pad_id: int,
    micro_batch_tokens: int,
    precision: Precision = Precision.FP32,
) -> tuple[torch.Tensor, bool]:
    """`(ref_logps, reused)`: the cached scores of `examples` when `path` holds them for this model,
    these sequences and this precision, else freshly computed (`compute_sequence_logps`) and written
    to `path`.

    `ref_logps` is [N] fp32 on the CPU; `reused` says whether the file was read. Call it with the
    model as it starts training (before any update): its weights *are* the reference.
    """
    key = reference_key(model, examples, precision)
    cached = _read_cache(Path(path), key, len(examples))
    if cached is not None:
        return cached, True
    ref_logps = compute_sequence_logps(
        model, examples, pad_id=pad_id, micro_batch_tokens=micro_batch_tokens, precision=precision
    )
    _write_cache(Path(path), key, ref_logps)
    return ref_logps, False


def compute_sequence_logps(
    model: torch.nn.Module,
    examples: Sequence[Example],
    *,
    pad_id: int,
    micro_batch_tokens: int,
    precision: Precision = Precision.FP32,
    adapters: bool = False,
) -> torch.Tensor:
    """`sum_t loss_mask[t] * log p(x_t | x_<t)` for every example, [N] fp32 on the CPU, no gradient.

    The model is scored in `reference_mode` (eval, its LoRA adapters disabled unless `adapters`: a
    re-synced copy of a LoRA policy is scored with them), in micro-batches of at
    most `micro_batch_tokens` padded tokens (0: all at once), in `precision`'s `forward_context`
    (as the policy's loss is: at step 0 both give the same numbers); its train mode is restored
    afterwards.
    """
    if not examples:
        raise ValueError("compute_sequence_logps: got no examples; pass at least one (input_ids, loss_mask)")
    lengths = [len(ids) for ids, _ in examples]
    groups = token_budget_batches(lengths, micro_batch_tokens or max(lengths) * len(lengths))
    device = next(model.parameters()).device
    seq_logps = torch.zeros(len(examples))  # [N]
    with reference_mode(model, adapters=adapters), torch.inference_mode(), forward_context(precision, device):
        for group in groups:
            batch = collate([examples[i] for i in group], pad_id).to(device)
            logps = token_logps(
                model,
                batch.input_ids,
                batch.attention_mask,
                position_ids=batch.position_ids,
                loss_mask=batch.loss_mask,
            )  # [b, T], 0 outside the loss mask
            seq_logps[group] = (logps * batch.loss_mask).sum(-1).float().cpu()  # [b]
    return seq_logps


def reference_key(
    model: torch.nn.Module, examples: Sequence[Example], precision: Precision = Precision.FP32
) -> str:
    """SHA-256 hex digest of the cache version, the reference weights, every example and, unless it
    is fp32 (the key before there was a choice), the precision's autocast."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    if precision.autocast:  # bf16 weights are in the weights' fingerprint already
        digest.update(f"autocast:{precision}".encode())
    digest.update(weights_fingerprint(model).encode())
    for ids, loss_mask in examples:
        digest.update(len(ids).to_bytes(8, "little"))
        digest.update(np.asarray(ids, dtype=np.int64).tobytes())
        digest.update(np.asarray(loss_mask, dtype=np.bool_).tobytes())
    return digest.hexdigest()


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 hex digest of the model's state (names, dtypes, shapes, bytes), adapters excluded."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if ADAPTER_MARKER in name:
            continue
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@contextlib.contextmanager
def reference_mode(model: torch.nn.Module, *, adapters: bool = False) -> Iterator[None]:
    """Eval mode and, for a peft model unless `adapters`, its adapters disabled; the previous state
    is restored on exit. A LoRA policy scored this way is its own frozen base: the reference of
    offline DPO and of an online run that never re-syncs it, with no copy of the weights."""
    was_training = model.training
    model.eval()
    disable_adapter = None if adapters else getattr(model, "disable_adapter", None)
    try:
        with disable_adapter() if disable_adapter is not None else contextlib.nullcontext():
            yield
    finally:
        model.train(was_training)


def _read_cache(path: Path, key: str, num_examples: int) -> torch.Tensor | None:
    """The cached scores when `path` exists with this key and size; None otherwise."""
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        if (f.metadata() or {}).get("key") != key:
            return None
        ref_logps = f.get_tensor("ref_logps")
    return ref_logps if ref_logps.shape == (num_examples,) else None


def _write_cache(path: Path, key: str, ref_logps: torch.Tensor) -> None:
    """Write through `<path>.tmp` and rename, so a crash never leaves a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(
        {"ref_logps": ref_logps.contiguous()}, str(tmp), metadata={"key": key, "version": CACHE_VERSION}
    )
    os.replace(tmp, path)
