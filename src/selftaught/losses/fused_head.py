"""Next-token log-probabilities straight from the final hidden states: the fused log-prob head.

A causal LM's head is `logits = softcap(scale * (hidden @ W^T + b))`, [B, T, V]. For a large
vocabulary (Gemma 3: V = 262,144) those logits, their fp32 copy and their gradient are the largest
tensors of a training step. `head_logps` never builds them: it computes one tile of logits at a
time (a block of rows against a slice of the vocabulary, `tile_shape`), keeps only each row's
log-normaliser and target logit, and in the backward pass recomputes each tile's logits and softmax
to produce the gradients of the hidden states and of `W` (and `b`), so the extra memory is a few
tile-sized buffers whatever the batch and sequence length. Only the rows the caller asks for are
projected: prompt positions of a completion loss are never touched.

Cost: the backward pass recomputes the logits, so a tile costs four vocabulary-sized matmuls where
the plain path's row costs three (two and two with a frozen head: see `_FusedHeadLogps`); skipping
the prompt rows pays for it once they are more than a quarter of the rows.

`fused_lm_head(model)` finds the body and head of a `transformers` causal LM whose forward it
knows (`FUSED_MODEL_TYPES`); anything else (a DDP or FSDP2 wrapper, a LoRA adapter on the head, a
hooked head, an unknown architecture) returns None, and `token_logps` takes the plain path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.distributed.fsdp import FSDPModule

FUSED_CHUNK_ELEMENTS = 1 << 23
"""Logit entries per tile by default (`tile_shape`): each fp32 work buffer is 32 MiB (e.g. 1024 rows
x 8,192 entries of Gemma 3's 262,144-token vocabulary). Against 2^25 (128 MiB buffers), a Gemma 3
270M LoRA step (8 x 236 tokens, bf16, activation checkpointing, 1 thread) peaked 0.30 GiB lower
above its loaded RSS (1.17 against 1.47 GiB) at the same CPU time (17.9 against 19.8 s, one run
each); with full fine-tuning the peak was the same (1.49 GiB), 21.2 against 23.1 s."""
MIN_VOCAB_CHUNK = 8192
"""Narrowest default vocabulary slice; many rows are split into row blocks rather than go below it."""


@dataclass(frozen=True)
class LMHead:
    """The parts of a causal LM: `logits = softcap(scale * (body(...).last_hidden_state @ weight.T + bias))`,
    where `softcap(x) = cap * tanh(x / cap)` when `softcap` is set."""

    body: torch.nn.Module
    """The decoder without its head (`model.model`): called like the LM, returns `.last_hidden_state`."""
    weight: torch.Tensor
    """[V, H] output embedding (the input embedding itself when tied)."""
    bias: torch.Tensor | None
    """[V] or None."""
    scale: float = 1.0
    softcap: float | None = None


def _plain(model: Any) -> tuple[float, float | None]:
    return 1.0, None


def _final_softcap(model: Any) -> tuple[float, float | None]:
    """Gemma 2 / 3: `cap * tanh(logits / cap)` with `cap = config.final_logit_softcapping` (None: off)."""
    cap = model.config.final_logit_softcapping
    return 1.0, None if cap is None else float(cap)


def _granite(model: Any) -> tuple[float, float | None]:
    """Granite divides the logits by `config.logits_scaling`."""
    return 1.0 / float(model.config.logits_scaling), None


def _cohere(model: Any) -> tuple[float, float | None]:
    """Cohere multiplies the logits by `model.logit_scale` (from `config.logit_scale`)."""
    return float(model.logit_scale), None


FUSED_MODEL_TYPES: dict[str, Callable[[Any], tuple[float, float | None]]] = {
    "llama": _plain,
    "mistral": _plain,
    "qwen2": _plain,
    "qwen3": _plain,
    "gemma": _plain,
    "gemma2": _final_softcap,
    "gemma3_text": _final_softcap,
    "phi": _plain,
    "phi3": _plain,
    "olmo2": _plain,
    "smollm3": _plain,
    "starcoder2": _plain,
    "gpt2": _plain,
    "gpt_neox": _plain,
    "granite": _granite,
    "cohere": _cohere,
}
"""`config.model_type` -> `(scale, softcap)` of the logits, for the `*ForCausalLM` classes whose
forward is exactly `body -> lm_head -> that transform` (read from transformers 5.x;
tests/losses/test_fused_head.py checks each one against the model's own logits). Add a type here
only with such a test."""


def fused_lm_head(model: torch.nn.Module) -> LMHead | None:
    """The body and head of `model` if `head_logps` can stand in for its forward, else None.

    The rule: a `transformers` `PreTrainedModel` (or a peft LoRA model around one) whose
    `config.model_type` is in `FUSED_MODEL_TYPES`, whose output embedding is a plain
    `torch.nn.Linear` without hooks, and whose top module has no forward hooks. DDP and FSDP2
    wrappers (their forward does the gradient sync / unsharding), prompt-learning adapters, a LoRA
    adapter on the head itself and other architectures give None.
    """
    from transformers import PreTrainedModel

    peft = sys.modules.get("peft")  # never imported here: a peft model exists only if peft was
    if peft is not None and isinstance(model, peft.PeftModel):
        if model.active_peft_config.is_prompt_learning:
            return None
        model = model.get_base_model()  # the adapters live inside it, so calling its body runs them
    if not isinstance(model, PreTrainedModel) or isinstance(model, FSDPModule):
        return None
    transform = FUSED_MODEL_TYPES.get(getattr(model.config, "model_type", ""))
    head = model.get_output_embeddings()
    body = getattr(model, model.base_model_prefix, None)
    if transform is None or type(head) is not torch.nn.Linear or not isinstance(body, torch.nn.Module):
        return None
    if _has_hooks(model) or _has_hooks(head):
        return None
    scale, softcap = transform(model)
    return LMHead(body=body, weight=head.weight, bias=head.bias, scale=scale, softcap=softcap)


def _has_hooks(module: torch.nn.Module) -> bool:
    """Whether `module` has forward (pre-)hooks, which the fused path would skip."""
    return bool(module._forward_hooks or module._forward_pre_hooks)


def tile_shape(
    num_rows: int, vocab_size: int, chunk_rows: int | None, chunk_vocab: int | None
) -> tuple[int, int]:
    """`(rows, vocab)` of one tile of logits: at most `FUSED_CHUNK_ELEMENTS` entries unless both are given.

    By default a tile takes as many rows as it can (all of them when `rows x MIN_VOCAB_CHUNK` fits)
    and the widest vocabulary slice that fits beside them: each slice's weight gradient is then one
    matmul over all rows, written once, rather than a sum of thin per-row-chunk products.
    """
    if chunk_rows is not None and chunk_rows < 1 or chunk_vocab is not None and chunk_vocab < 1:
        raise ValueError(f"chunk sizes must be >= 1, got rows={chunk_rows}, vocab={chunk_vocab}")
    rows_wanted = max(1, min(num_rows, chunk_rows or num_rows))
    vocab = chunk_vocab or max(MIN_VOCAB_CHUNK, FUSED_CHUNK_ELEMENTS // rows_wanted)
    vocab = min(vocab, vocab_size)
    rows = chunk_rows or max(1, FUSED_CHUNK_ELEMENTS // vocab)
    return rows, vocab


def head_logps(
    hidden: torch.Tensor,
    head: LMHead,
    targets: torch.Tensor,
    chunk_rows: int | None = None,
    chunk_vocab: int | None = None,
) -> torch.Tensor:
    """`log_softmax(logits(hidden))[target]` for each row, without the [N, V] logits.

    Args:
        hidden: [N, H] final hidden states (after the body's final norm) of the rows to score.
        head: the model's head (`fused_lm_head`).
        targets: [N] token ids (int64) whose log-probability each row gives.
        chunk_rows, chunk_vocab: the tile of logits computed at once (`tile_shape`); by default
            sized to `FUSED_CHUNK_ELEMENTS`.

    Returns:
        [N] log-probabilities in fp32 (fp64 for an fp64 model). The matmul runs in the hidden
        states' dtype (the autocast dtype under autocast), the log-softmax in fp32, as the plain path
        does. Gradients flow to `hidden`, `head.weight` and `head.bias` (those that require them);
        a tied weight receives this gradient on top of its embedding gradient.
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"hidden must be [N, H] and targets [N], got {tuple(hidden.shape)} and {tuple(targets.shape)}"
        )
    if hidden.size(1) != head.weight.size(1):
        raise ValueError(
            f"hidden size {hidden.size(1)} does not match the head weight {tuple(head.weight.shape)}"
        )
    tile = tile_shape(hidden.size(0), head.weight.size(0), chunk_rows, chunk_vocab)
    return _FusedHeadLogps.apply(hidden, head.weight, head.bias, targets, tile, head.scale, head.softcap)


def _matmul_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The head's matmul dtype: autocast's when it is on for this device (as `lm_head` would run)."""
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return hidden.dtype


@dataclass(frozen=True)
class _Tile:
    """One tile: rows `rows` of the scored positions against vocabulary entries `vocab`."""

    rows: slice
    vocab: slice
    first_vocab: bool
    """The row block's first vocabulary slice (the running max and sum start here)."""


def _tiles(num_rows: int, vocab_size: int, tile: tuple[int, int]) -> Iterator[_Tile]:
    """Row blocks in order, and within each every vocabulary slice in order."""
    for row_start in range(0, num_rows, tile[0]):
        for vocab_start in range(0, vocab_size, tile[1]):
            rows = slice(row_start, row_start + tile[0])
            yield _Tile(rows, slice(vocab_start, vocab_start + tile[1]), vocab_start == 0)


class _Head:
    """The head's tensors in the matmul dtype and the transform, with per-tile helpers."""

    def __init__(self, hidden, weight, bias, targets, scale, softcap, matmul_dtype):
        self.matmul_dtype = matmul_dtype
        self.compute_dtype = torch.promote_types(self.matmul_dtype, torch.float32)
        self.h, self.w = hidden.to(self.matmul_dtype), weight.to(self.matmul_dtype)
        self.b = None if bias is None else bias.to(self.matmul_dtype)
        self.targets, self.scale, self.softcap = targets, scale, softcap

    def logits(self, tile: _Tile) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(z, tanh)`: the tile's transformed logits [n, v] in the compute dtype (a fresh tensor),
        and with a softcap the tanh its derivative needs."""
        b = None if self.b is None else self.b[tile.vocab]
        z = F.linear(self.h[tile.rows], self.w[tile.vocab], b).to(self.compute_dtype)  # [n, v]
        if self.scale != 1.0:
            z.mul_(self.scale)
        if self.softcap is None:
            return z, None
        tanh = z.div_(self.softcap).tanh_()
        return tanh * self.softcap, tanh

    def local_targets(self, tile: _Tile, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`(index [n, 1], inside [n])`: each row's target as a column of the tile (clamped), and
        whether the target falls in the tile's vocabulary slice."""
        local = self.targets[tile.rows] - tile.vocab.start  # [n]
        inside = (local >= 0) & (local < width)
        return local.clamp(0, width - 1).unsqueeze(-1), inside

    def chain(self, grad_z: torch.Tensor, tanh: torch.Tensor | None) -> torch.Tensor:
        """d/d(raw logits) from d/dz, in place: times `1 - tanh^2` (softcap) and `scale`."""
        if tanh is not None:
            grad_z.mul_(tanh.square_().neg_().add_(1.0))
        if self.scale != 1.0:
            grad_z.mul_(self.scale)
        return grad_z


class _FusedHeadLogps(torch.autograd.Function):
    """`head_logps`, tile by tile in both passes (tiles of `rows x vocab` logits).

    Forward: per row block, a running max and sum of exponentials over the vocabulary slices give
    each row's log-normaliser (as in flash attention); the target's logit is picked from its slice.
    With `z` a row's transformed logits and `g` the upstream gradient of its log-probability,
    d/dz = g * (onehot(target) - softmax(z)). Backward recomputes each tile's logits, then
    `grad_hidden += dlogits @ W[slice]` and `grad_W[slice] += dlogits^T @ hidden[rows]`.

    When the head weight needs no gradient (LoRA, a frozen head) the hidden-state gradient is `g`
    times a row vector known in the forward pass, `(1 - p_target) dz/dlogits(target) W[target] -
    sum_(j != target) p_j dz/dlogits_j W_j`; the forward accumulates the sum with the same running
    max, and the backward only scales it: two vocabulary-sized matmuls per tile in all instead of
    three. The target's own term is left out of the sum and added with `1 - p_target` in the compute
    dtype: for a confident token the two terms of the plain form `W[target] - E_p[W]` nearly cancel,
    so a bf16 matmul's rounding of `E_p[W]` came out amplified `1 / (1 - p_target)` times
    (tests/train/test_precision.py: the hidden-state gradient error under autocast at p ~ 0.999).
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, tile, scale, softcap):
        head = _Head(hidden, weight, bias, targets, scale, softcap, _matmul_dtype(hidden))
        eager = ctx.needs_input_grad[0] and not any(ctx.needs_input_grad[1:3])
        num_rows, size = head.h.size(0), head.w.size(0)
        lse = torch.empty(num_rows, dtype=head.compute_dtype, device=head.h.device)  # [N]
        target_z = torch.empty_like(lse)  # [N]
        row_grads = (
            torch.empty(head.h.shape, dtype=head.compute_dtype, device=head.h.device) if eager else None
        )
        with torch.autocast(head.h.device.type, enabled=False):
            for t in _tiles(num_rows, size, tile):
                z, tanh = head.logits(t)  # [n, v]
                index, inside = head.local_targets(t, z.size(1))
                picked = z.gather(-1, index).squeeze(-1)  # [n]
                chunk_max = z.amax(-1)  # [n]
                if t.first_vocab:  # a new row block: reset the running max, sum and accumulator
                    row_max, other_sum = chunk_max, torch.zeros_like(chunk_max)
                    acc = torch.zeros_like(row_grads[t.rows]) if eager else None  # [n, H]
                target_z[t.rows] = (
                    torch.where(inside, picked, target_z[t.rows]) if not t.first_vocab else picked
                )
                new_max = torch.maximum(row_max, chunk_max)
                rescale = (row_max - new_max).exp_()  # [n]
                probs = z.sub_(new_max.unsqueeze(-1)).exp_()  # [n, v]: exp(z - running max)
                # the target's own term is added at the end: 1 - p_target = other_sum / sum stays exact
                # for a confident token, where 1 - (a sum that includes it) would cancel to rounding
                probs.scatter_(-1, index, probs.gather(-1, index) * ~inside.unsqueeze(-1))
                other_sum = other_sum * rescale + probs.sum(-1)
                row_max = new_max
                if eager:  # sum_{j != target} exp(z_j - max) dz_j/dlogit_j W_j, rescaled as the max grows
                    weighted = head.chain(probs, tanh).to(head.matmul_dtype)
                    acc.mul_(rescale.unsqueeze(-1)).add_(weighted @ head.w[t.vocab])
                if t.vocab.stop >= size:  # the row block's last slice
                    row_sum = other_sum + (target_z[t.rows] - row_max).exp()  # [n]
                    lse[t.rows] = row_max + row_sum.log()
                    if eager:  # + (1 - p_target) dz_target/dlogit_target W_target, in the compute dtype
                        not_target = (other_sum / row_sum).unsqueeze(-1)  # [n, 1]
                        row_grads[t.rows] = not_target * _target_term(
                            head, t.rows, target_z[t.rows]
                        ) - acc / row_sum.unsqueeze(-1)
        ctx.save_for_backward(hidden, weight, bias, targets, lse, row_grads)
        ctx.config = (tile, scale, softcap, eager, head.matmul_dtype)  # backward runs outside autocast
        return target_z - lse

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logps):
        hidden, weight, bias, targets, lse, row_grads = ctx.saved_tensors
        tile, scale, softcap, eager, matmul_dtype = ctx.config
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]
        head = _Head(hidden, weight, bias, targets, scale, softcap, matmul_dtype)
        grad = grad_logps.to(head.compute_dtype)  # [N]
        if eager:
            return (row_grads * grad.unsqueeze(-1)).to(hidden.dtype), None, None, None, None, None, None
        grad_hidden = (
            torch.zeros(head.h.shape, dtype=head.compute_dtype, device=head.h.device) if need_hidden else None
        )
        weight_dtype = torch.promote_types(weight.dtype, head.compute_dtype)
        grad_weight = (
            torch.zeros(weight.shape, dtype=weight_dtype, device=weight.device) if need_weight else None
        )
        grad_bias = (
            torch.zeros(weight.size(0), dtype=head.compute_dtype, device=weight.device) if need_bias else None
        )
        with torch.autocast(head.h.device.type, enabled=False):
            for t in _tiles(head.h.size(0), head.w.size(0), tile):
                z, tanh = head.logits(t)  # [n, v]
                index, inside = head.local_targets(t, z.size(1))
                g = grad[t.rows].unsqueeze(-1)  # [n, 1]
                grad_z = z.sub_(lse[t.rows].unsqueeze(-1)).exp_().mul_(-g)  # -g softmax
                grad_z.scatter_add_(-1, index, g * inside.unsqueeze(-1))  # + g at the target
                grad_raw = head.chain(grad_z, tanh)  # [n, v]
                grad_logits = grad_raw.to(head.matmul_dtype)
                if grad_hidden is not None:
                    _accumulate(grad_hidden[t.rows], grad_logits, head.w[t.vocab])
                if grad_weight is not None:
                    _accumulate(grad_weight[t.vocab], grad_logits.T, head.h[t.rows])
                if grad_bias is not None:
                    grad_bias[t.vocab] += grad_raw.sum(0)
        return (
            None if grad_hidden is None else grad_hidden.to(hidden.dtype),
            None if grad_weight is None else grad_weight.to(weight.dtype),
            None if grad_bias is None else grad_bias.to(bias.dtype),
            None,
            None,
            None,
            None,
        )


def _target_term(head: _Head, rows: slice, target_z: torch.Tensor) -> torch.Tensor:
    """`dz_target/dlogit_target * W[target]` [n, H]: the one-hot part of the hidden-state gradient
    (the derivative of the transform at the target's own logit, from its transformed value)."""
    coef = torch.full_like(target_z, head.scale)  # [n]
    if head.softcap is not None:
        coef = coef * (1.0 - (target_z / head.softcap).square())
    return coef.unsqueeze(-1) * head.w[head.targets[rows]].to(head.compute_dtype)


def _accumulate(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """`out += a @ b` in place; a low-precision product is formed first, then added in `out`'s dtype."""
    if a.dtype == out.dtype:
        out.addmm_(a, b)
    else:
        out.add_(a @ b)
