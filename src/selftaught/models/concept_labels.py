"""CoCoMix's concept labels from a frozen teacher and its SAE (papers_B §5.3).

Attribution (the official code's form, paper Eq. 1 with its caveats, §5.8.1):

    L      = mean next-token CE of the teacher over the batch (real, shifted positions)
    g      = dL / dh       at the residual stream after `layer` blocks  [B, T, d]
             (`torch.autograd.grad` w.r.t. that cached activation only: the teacher's parameters
             never get gradients)
    a      = (g @ W_dec) * act                                           [B, T, C]
             act = the SAE's post-TopK activations c (`activation_source="post"`, the code) or its
             pre-activations c_pre (`"pre"`, the paper's Eq. 1)
    labels = top-K_attr of a (`attribution_sign="paper"`: largest signed values, as paper and code),
             of |a| (`"abs"`), or of -a (`"neg"`)

With post-TopK activations only the k active latents can have a non-zero attribution, and the
gradient at t comes from the batch-mean loss (t's effect on every later prediction); the LN Jacobian
of the SAE input is ignored (as in the code). `activation_labels` is the ablation: the K_attr largest
SAE activations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from selftaught.models.cocomix import causal_lm
from selftaught.models.sae import TopKSAE

SIGNS = ("paper", "abs", "neg")
SOURCES = ("post", "pre")


@dataclass
class ConceptLabels:
    labels: torch.Tensor
    """[B, T, K_attr] long: concept ids, best first."""
    scores: torch.Tensor
    """[B, T, K_attr]: the signed attribution (or activation) of each label."""
    teacher_logits: torch.Tensor
    """[B, T, V]: the teacher's logits (detached), for KD."""


def teacher_residual(
    teacher: nn.Module, layer: int, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, grad: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(logits [B, T, V], h [B, T, d])`: the residual stream after `layer` blocks (>= 1), captured by a
    forward hook that swaps in a detached leaf (requires_grad when `grad`), so autograd reaches it and
    nothing before it."""
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor | tuple) -> torch.Tensor | tuple:
        hidden = output[0] if isinstance(output, tuple) else output
        leaf = hidden.detach().requires_grad_(grad)
        captured.append(leaf)
        return (leaf, *output[1:]) if isinstance(output, tuple) else leaf

    layers = causal_lm(teacher).model.layers
    if not 1 <= layer <= len(layers):
        raise ValueError(f"teacher layer must be in [1, {len(layers)}] (blocks before the SAE), got {layer}")
    handle = layers[layer - 1].register_forward_hook(hook)
    try:
        with torch.enable_grad() if grad else torch.no_grad():
            logits = teacher(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    finally:
        handle.remove()
    return logits, captured[0]


def mean_ntp_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """Mean next-token CE over the real shifted positions of the batch (a scalar)."""
    targets = input_ids[:, 1:]
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), reduction="none")
    if attention_mask is None:
        return losses.mean()
    weights = attention_mask[:, 1:].flatten().float()
    return (losses * weights).sum() / weights.sum().clamp_min(1)


def attribution_labels(
    teacher: nn.Module,
    sae: TopKSAE,
    layer: int,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    k_attr: int = 4,
    sign: str = "paper",
    activation_source: str = "post",
) -> ConceptLabels:
    """The top-`k_attr` attributed concepts at every position (module doc)."""
    if sign not in SIGNS or activation_source not in SOURCES:
        raise ValueError(f"attribution_sign must be one of {SIGNS} and activation_source one of {SOURCES}")
    logits, hidden = teacher_residual(teacher, layer, input_ids, attention_mask, grad=True)
    (grad,) = torch.autograd.grad(mean_ntp_loss(logits, input_ids, attention_mask), hidden)
    with torch.no_grad():
        c, info = sae.encode(hidden.detach())
        activation = c if activation_source == "post" else info["pre"]
        attribution = (grad @ sae.W_dec) * activation  # [B, T, C]
        ranked = {"paper": attribution, "abs": attribution.abs(), "neg": -attribution}[sign]
        labels = ranked.topk(k_attr, dim=-1).indices
        scores = attribution.gather(-1, labels)
    return ConceptLabels(labels=labels, scores=scores, teacher_logits=logits.detach())


def activation_labels(
    teacher: nn.Module,
    sae: TopKSAE,
    layer: int,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    k_attr: int = 4,
) -> ConceptLabels:
    """The ablation: the `k_attr` most active SAE latents at every position (no gradient)."""
    logits, hidden = teacher_residual(teacher, layer, input_ids, attention_mask, grad=False)
    with torch.no_grad():
        c, _ = sae.encode(hidden)
        top = c.topk(k_attr, dim=-1)
    return ConceptLabels(labels=top.indices, scores=top.values, teacher_logits=logits.detach())


def label_sign_stats(labels: ConceptLabels) -> dict[str, float]:
    """Shares of labels with positive, zero and negative scores (zero: an arbitrary tie-broken id)."""
    scores = labels.scores
    return {
        "label_positive_share": float((scores > 0).float().mean()),
        "label_zero_share": float((scores == 0).float().mean()),
        "label_negative_share": float((scores < 0).float().mean()),
    }
