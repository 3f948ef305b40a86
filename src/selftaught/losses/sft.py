"""Supervised fine-tuning loss: token NLL on the trained (assistant) tokens."""

from __future__ import annotations

import torch


def sft_loss(
    token_logps: torch.Tensor,
    loss_mask: torch.Tensor,
    num_tokens: int | torch.Tensor | None = None,
    loss_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summed negative log-likelihood of the masked tokens divided by `num_tokens`.

    `L = -(1 / num_tokens) * sum_{b, t} w[b, t] * loss_mask[b, t] * token_logps[b, t]` (papers_A §0.1,
    SFT: NLL on the target only, normalised by the total target length `sum |y|`); `w` = 1 unless
    `loss_weights` are given (emphasised tokens, e.g. a judge's verdict x5: the denominator stays
    the token count, so an emphasised token's gradient is `w` times a plain one's).

    Gradient accumulation: pass the token count of the whole optimizer batch as `num_tokens`;
    the losses of its micro-batches then add up to the loss of the whole batch, and so do their
    gradients.

    Args:
        token_logps: [B, T] log-probabilities of each token given its prefix (`token_logps`).
        loss_mask: [B, T] bool or 0/1, True on trained tokens.
        num_tokens: the denominator; defaults to `loss_mask.sum()` (this call's tokens). A call
            with no trained tokens then returns 0 (a sum over no tokens).
        loss_weights: [B, T] float weight of each token (only masked tokens count), or None.

    Returns:
        loss: 0-dim tensor.
        metrics: `nll` (mean NLL per trained token of this call), `num_tokens` (trained tokens in
            this call), detached 0-dim tensors.
    """
    if token_logps.shape != loss_mask.shape:
        raise ValueError(
            f"loss_mask shape {tuple(loss_mask.shape)} must equal token_logps shape {tuple(token_logps.shape)}"
        )
    if isinstance(num_tokens, int) and num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1 (the trained tokens of the whole batch), got {num_tokens}")
    mask = loss_mask.to(token_logps.dtype)  # [B, T]
    nll_sum = -(token_logps * mask).sum()
    local_tokens = mask.sum()
    denominator = local_tokens.clamp(min=1) if num_tokens is None else num_tokens
    metrics = {
        "nll": (nll_sum / local_tokens.clamp(min=1)).detach(),  # unweighted: comparable across runs
        "num_tokens": local_tokens.detach(),
    }
    if loss_weights is not None:
        if loss_weights.shape != loss_mask.shape:
            raise ValueError(
                f"loss_weights shape {tuple(loss_weights.shape)} must equal loss_mask shape {tuple(loss_mask.shape)}"
            )
        nll_sum = -(token_logps * mask * loss_weights.to(token_logps.dtype)).sum()
    return nll_sum / denominator, metrics
