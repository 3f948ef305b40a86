"""Per-token log-probabilities of a causal language model, in fp32, without an fp32 [B, T, V] copy.

`log_softmax(logits).gather(index)` keeps a full [B, T, V] log-softmax tensor alive for the backward
pass, in the upcast dtype: for a 128k vocabulary that is the largest tensor of a training step.
`selective_log_softmax` computes the same values with a custom autograd function that works on
`chunk_size` rows at a time in both passes and saves only the logits (which the model already holds).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

DEFAULT_CHUNK_SIZE = 512
"""Rows per chunk: the fp32 work buffer is `chunk_size * V * 4` bytes (128 MiB for V = 64k)."""


class _SelectiveLogSoftmax(torch.autograd.Function):
    """`log_softmax(logits, -1).gather(-1, index)`, row chunk by row chunk.

    Backward: d logp_i / d logit_j = 1[j == i] - softmax_j, with the softmax recomputed per chunk,
    so no [N, V] fp32 tensor is ever kept. Each chunk uses the native fused `log_softmax` /
    `softmax` kernels and an in-place update: 2.3-2.6x faster than composing `logsumexp`, `exp`
    and arithmetic (fwd + bwd, 2 CPU threads, V = 320 to 262k).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, index: torch.Tensor, chunk_size: int) -> torch.Tensor:
        compute_dtype = torch.promote_types(logits.dtype, torch.float32)
        rows = logits.reshape(-1, logits.size(-1))  # [N, V]
        flat_index = index.reshape(-1, 1)  # [N, 1]
        logps = torch.empty(rows.size(0), dtype=compute_dtype, device=logits.device)  # [N]
        for start in range(0, rows.size(0), chunk_size):
            span = slice(start, start + chunk_size)
            chunk_logps = torch.log_softmax(rows[span].to(compute_dtype), dim=-1)  # [n, V]
            logps[span] = chunk_logps.gather(-1, flat_index[span]).squeeze(-1)
        ctx.save_for_backward(logits, index)
        ctx.chunk_size = chunk_size
        return logps.view(index.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_logps: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        logits, index = ctx.saved_tensors
        compute_dtype = torch.promote_types(logits.dtype, torch.float32)
        rows = logits.reshape(-1, logits.size(-1))  # [N, V]
        flat_index = index.reshape(-1, 1)  # [N, 1]
        grad = grad_logps.reshape(-1, 1).to(compute_dtype)  # [N, 1]
        grad_rows = torch.empty_like(rows)
        for start in range(0, rows.size(0), ctx.chunk_size):
            span = slice(start, start + ctx.chunk_size)
            probs = torch.softmax(rows[span].to(compute_dtype), dim=-1)  # [n, V]
            grad_rows[span] = probs.mul_(-grad[span]).scatter_add_(-1, flat_index[span], grad[span])
        return grad_rows.view_as(logits), None, None


def selective_log_softmax(
    logits: torch.Tensor, index: torch.Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> torch.Tensor:
    """Log-probability of `index` under `softmax(logits)`: `log_softmax(logits, -1).gather(-1, index)`.

    Args:
        logits: [..., V] in any float dtype.
        index: [...] token ids (int64), same leading shape as `logits`.
        chunk_size: rows (positions) processed at once; bounds the fp32 work buffer.

    Returns:
        [...] log-probabilities in fp32 (fp64 if `logits` is fp64). The gradient flows to `logits`
        in their own dtype.
    """
    if logits.shape[:-1] != index.shape:
        raise ValueError(
            f"index shape {tuple(index.shape)} must equal logits.shape[:-1] {tuple(logits.shape[:-1])}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return _SelectiveLogSoftmax.apply(logits, index, chunk_size)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids [B, T] counted over real tokens only: left padding does not shift positions.

    The first real token of each row gets 0; padding gets 0 (left) or repeats the last position
    (right), which is harmless because padding is masked out of attention and of every loss.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def token_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    position_ids: torch.Tensor | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Teacher-forced log-probabilities `log p(x_t | x_<t)` of every token, [B, T], fp32.

    Args:
        model: a causal LM whose call returns an object with `.logits` [B, T, V] (any HF
            `*ForCausalLM`).
        input_ids: [B, T] token ids, left or right padded.
        attention_mask: [B, T], 1 for real tokens, 0 for padding.
        position_ids: [B, T]; by default counted from `attention_mask` (`positions_from_mask`), so a
            left-padded row scores exactly like the same row unpadded.
        chunk_size: see `selective_log_softmax`.

    Returns:
        [B, T]: entry t is the log-probability of `input_ids[:, t]` given the tokens before it. It is
        0 where there is nothing to score: padding, and the first real token of each row (no
        context). Multiply by a `loss_mask` to select the trained tokens.
    """
    if input_ids.shape != attention_mask.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} must equal input_ids shape {tuple(input_ids.shape)}"
        )
    if position_ids is None:
        position_ids = positions_from_mask(attention_mask)
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).logits  # [B, T, V]
    # Row t scores token t + 1; rolling (not slicing) keeps `logits` contiguous, so no copy is made.
    next_ids = input_ids.roll(-1, dims=1)  # [B, T], last column wraps around and is dropped
    next_logps = selective_log_softmax(logits, next_ids, chunk_size)[:, :-1]  # [B, T - 1]
    real = attention_mask.bool()
    has_context = real[:, 1:] & real[:, :-1]  # [B, T - 1]
    next_logps = next_logps.masked_fill(~has_context, 0.0)
    return F.pad(next_logps, (1, 0))  # [B, T]
