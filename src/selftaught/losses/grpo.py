"""GRPO family: group-relative advantages and the clipped policy-gradient loss with a k3 KL penalty.

One loss covers GRPO (Shao et al. 2024, DeepSeekMath Eq. 3), DAPO's token-level normalisation and
clip-higher (Yu et al. 2025, Eq. 8 and §3.1), and the online-RL paper's strictly on-policy,
unnormalised variant (papers_B §1.5, as realised in fairseq2).
"""

from __future__ import annotations

import torch

from selftaught.configs.losses import AdvantageType as AdvantageType
from selftaught.configs.losses import LossNormalization as LossNormalization


def compute_advantages(
    rewards: torch.Tensor, advantage_type: AdvantageType = AdvantageType.GROUP_MEAN, eps: float = 1e-4
) -> torch.Tensor:
    """Group-relative advantages.

    Args:
        rewards: [G, N] finite rewards, G prompts x N completions each (unscorable completions must
            be resolved before, never passed as 0 by accident).
        advantage_type: see `AdvantageType`.
        eps: added to the std (GROUP_MEAN_STD only), so a constant group gets advantage 0.

    Returns:
        [G, N] advantages; `.flatten()` gives the [B = G * N] advantages of group-major completions.
        The std is the sample std (Bessel-corrected, divide by N - 1), as in TRL, so the two agree.
    """
    advantage_type = AdvantageType(advantage_type)
    if rewards.dim() != 2 or rewards.size(1) < 2:
        raise ValueError(
            f"rewards must be [G, N] with N >= 2 completions per prompt, got shape {tuple(rewards.shape)}: "
            "sample at least 2 completions per prompt"
        )
    centred = rewards - rewards.mean(dim=1, keepdim=True)  # [G, N]
    match advantage_type:
        case AdvantageType.GROUP_MEAN:
            return centred
        case AdvantageType.GROUP_MEAN_STD:
            return centred / (rewards.std(dim=1, keepdim=True) + eps)
    raise AssertionError(f"unhandled AdvantageType {advantage_type}")


def grpo_loss(
    policy_logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    *,
    ref_logps: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    normalization: LossNormalization = LossNormalization.TOKEN,
    num_tokens: int | torch.Tensor | None = None,
    num_sequences: int | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped policy-gradient loss with an optional KL penalty, normalised by `normalization`.

    Per token (DeepSeekMath Eq. 3 with DAPO's asymmetric clip):
        rho = exp(logp - logp_old)
        l = -min(rho * A, clip(rho, 1 - clip_low, 1 + clip_high) * A) + kl_coef * k3
        k3 = exp(ref - logp) - (ref - logp) - 1        (Schulman's unbiased, non-negative estimator)
    then summed over masked tokens and divided as `LossNormalization` says.

    `old_logps=None` means strictly on-policy (the online-RL paper, s = 1): `old = logp.detach()`,
    so rho = 1, clipping is inactive and the gradient per token is `-A / normaliser * grad logp`.

    Gradient accumulation: pass the global `num_tokens` (TOKEN) or `num_sequences` (SEQUENCE,
    NONE) of the optimizer batch; the micro-batch losses then add up to the whole-batch loss.
    The argument the normalization does not use is ignored.

    Args:
        policy_logps: [B, T] per-token log-probs under the policy (with gradient).
        old_logps: [B, T] under the policy that sampled the batch, or None (on-policy).
        advantages: [B] one advantage per sequence (`compute_advantages(...).flatten()`).
        loss_mask: [B, T] bool or 0/1, True on completion tokens.
        ref_logps: [B, T] under the reference model; required when `kl_coef != 0`. When given, the
            KL is also reported.
        kl_coef: weight of the k3 KL penalty (0 = off).
        clip_low, clip_high: the ratio is clipped to [1 - clip_low, 1 + clip_high].
        normalization: see `LossNormalization`.
        num_tokens: TOKEN denominator; defaults to this call's masked tokens.
        num_sequences: SEQUENCE / NONE denominator; defaults to B.

    Returns:
        loss: 0-dim tensor.
        metrics (detached, over this call only): `loss` (normalised with this call's own counts),
            `ratio` (mean rho), `clip_low` / `clip_high` (fraction of tokens whose gradient is cut
            by the lower clip with A < 0 / the upper clip with A > 0), `kl` (mean k3, only with
            `ref_logps`), `advantage` (mean over sequences), `entropy` (mean -logp of the sampled
            tokens: a Monte-Carlo estimate of the policy entropy on-policy), `num_tokens`.
    """
    normalization = LossNormalization(normalization)
    _check_grpo_args(policy_logps, old_logps, advantages, loss_mask, ref_logps, kl_coef, clip_low, clip_high)
    _check_denominators(num_tokens, num_sequences)
    mask = loss_mask.bool()  # [B, T]
    old_logps = policy_logps.detach() if old_logps is None else old_logps
    # `where`, not `*`: padding may hold non-finite log-probs, which must not reach the backward pass.
    ratio = torch.exp(torch.where(mask, policy_logps - old_logps, 0.0))  # [B, T]
    adv = advantages.unsqueeze(1)  # [B, 1]
    clipped_ratio = ratio.clamp(1 - clip_low, 1 + clip_high)  # [B, T]
    per_token = -torch.min(ratio * adv, clipped_ratio * adv)  # [B, T]
    kl = None
    if ref_logps is not None:
        ref_log_ratio = torch.where(mask, ref_logps - policy_logps, 0.0)  # [B, T]
        kl = torch.exp(ref_log_ratio) - ref_log_ratio - 1  # [B, T]
        per_token = per_token + kl_coef * kl
    per_token = torch.where(mask, per_token, 0.0)
    total, local_denominator, denominator = _reduce(per_token, mask, normalization, num_tokens, num_sequences)
    with torch.no_grad():
        metrics = {
            "loss": total / local_denominator,
            "ratio": _masked_mean(ratio, mask),
            "clip_low": _masked_mean((ratio < 1 - clip_low) & (adv < 0), mask),
            "clip_high": _masked_mean((ratio > 1 + clip_high) & (adv > 0), mask),
            "advantage": advantages.float().mean(),
            "entropy": _masked_mean(-policy_logps, mask),
            "num_tokens": mask.sum().float(),
        }
        if kl is not None:
            metrics["kl"] = _masked_mean(kl, mask)
    return total / denominator, metrics


def _reduce(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    normalization: LossNormalization,
    num_tokens: int | torch.Tensor | None,
    num_sequences: int | None,
) -> tuple[torch.Tensor, torch.Tensor | int, torch.Tensor | int]:
    """The one dispatch over `LossNormalization`: (summed loss, this call's denominator, the
    denominator to use). `per_token` [B, T] is already zero outside `mask`."""
    batch_size = per_token.size(0)
    match normalization:
        case LossNormalization.TOKEN:
            local_tokens = mask.sum().clamp(min=1)
            return per_token.sum(), local_tokens, local_tokens if num_tokens is None else num_tokens
        case LossNormalization.SEQUENCE:
            sequence_means = per_token.sum(-1) / mask.sum(-1).clamp(min=1)  # [B]
            return sequence_means.sum(), batch_size, batch_size if num_sequences is None else num_sequences
        case LossNormalization.NONE:
            return per_token.sum(), batch_size, batch_size if num_sequences is None else num_sequences
    raise AssertionError(f"unhandled LossNormalization {normalization}")


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` [B, T] over the True entries of `mask` [B, T] (0 when there are none)."""
    return torch.where(mask, values.float(), 0.0).sum() / mask.sum().clamp(min=1)


def _check_grpo_args(
    policy_logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    loss_mask: torch.Tensor,
    ref_logps: torch.Tensor | None,
    kl_coef: float,
    clip_low: float,
    clip_high: float,
) -> None:
    """ValueError naming the argument and the fix for every inconsistent call."""
    shape = policy_logps.shape
    if len(shape) != 2:
        raise ValueError(f"policy_logps must be per-token log-probs [B, T], got shape {tuple(shape)}")
    for name, tensor in [("old_logps", old_logps), ("ref_logps", ref_logps), ("loss_mask", loss_mask)]:
        if tensor is not None and tensor.shape != shape:
            raise ValueError(
                f"{name} must have the shape of policy_logps {tuple(shape)}, got {tuple(tensor.shape)}"
            )
    if advantages.shape != shape[:1]:
        raise ValueError(
            f"advantages must be [B] = {tuple(shape[:1])} (one per sequence), got {tuple(advantages.shape)}"
        )
    if kl_coef != 0 and ref_logps is None:
        raise ValueError(
            f"kl_coef={kl_coef} needs ref_logps: pass the reference model's log-probs or set kl_coef=0"
        )
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    if not (0 <= clip_low < 1 and clip_high >= 0):
        raise ValueError(
            f"need 0 <= clip_low < 1 and clip_high >= 0, got clip_low={clip_low}, clip_high={clip_high}"
        )


def _check_denominators(num_tokens: int | torch.Tensor | None, num_sequences: int | None) -> None:
    """ValueError for a non-positive explicit denominator."""
    if isinstance(num_tokens, int) and num_tokens < 1:
        raise ValueError(f"num_tokens must be >= 1 (the trained tokens of the whole batch), got {num_tokens}")
    if num_sequences is not None and num_sequences < 1:
        raise ValueError(
            f"num_sequences must be >= 1 (the sequences of the whole batch), got {num_sequences}"
        )
