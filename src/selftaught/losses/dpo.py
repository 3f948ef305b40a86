"""Direct preference optimisation losses: sigmoid DPO, length-normalised DPO, IPO, + optional NLL.

Inputs are sequence log-probabilities summed over response tokens ([B], one entry per pair), as in
the papers (papers_B §1.5: "main runs do not length-normalise"); the variants that need per-token
averages take the response lengths separately.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from selftaught.configs.losses import DPOLossType as DPOLossType
from selftaught.configs.losses import NLLNormalization as NLLNormalization


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float,
    loss_type: DPOLossType = DPOLossType.SIGMOID,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    num_pairs: float | None = None,
    nll_scale: float = 0.0,
    nll_normalization: NLLNormalization = NLLNormalization.SUM,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Preference loss of B pairs, summed over pairs and divided by `num_pairs`.

    Per pair: `loss_type`'s loss (see `DPOLossType`) `+ nll_scale * NLL(y_c)`, the NLL add-on of
    fairseq2 `DpoFinetuneUnit` (papers_A §0.1; papers_B §1.5 "NLL add-on"). With label smoothing
    eps (conservative DPO, Mitchell 2023) the sigmoid losses become
    `-(1 - eps) log sigmoid(beta m) - eps log sigmoid(-beta m)`.

    Gradient accumulation: pass the number of pairs of the whole optimizer batch as `num_pairs`;
    the micro-batch losses then add up to the whole-batch loss.

    Args:
        policy_chosen_logps, policy_rejected_logps: [B] summed log-probs of the responses under
            the policy (with gradient).
        ref_chosen_logps, ref_rejected_logps: [B] the same under the reference model (no gradient).
        beta: inverse temperature of the implicit reward (tau for IPO), > 0.
        loss_type: the variant; `loss_type.needs_lengths` says whether lengths are required.
        chosen_lengths, rejected_lengths: [B] response token counts (an empty response counts as
            1: its summed log-ratio is 0, so is its average).
        label_smoothing: probability that a preference label is flipped, in [0, 0.5); sigmoid
            variants only.
        num_pairs: the denominator; defaults to B.
        nll_scale: weight of the NLL term on the chosen response (0 = off).
        nll_normalization: `sum` or `token_mean` (needs `chosen_lengths`).

    Returns:
        loss: 0-dim tensor.
        metrics (detached, means over this call's pairs, independent of `num_pairs`): `loss`,
            `reward_chosen` / `reward_rejected` (`beta * z`, summed log-ratios for every variant),
            `reward_margin`, `reward_accuracy` (fraction with reward_chosen > reward_rejected),
            `logps_chosen` / `logps_rejected` (policy), `nll` (the NLL term before `nll_scale`).
    """
    loss_type, nll_normalization = DPOLossType(loss_type), NLLNormalization(nll_normalization)
    _check_dpo_args(
        [policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps],
        beta=beta,
        loss_type=loss_type,
        chosen_lengths=chosen_lengths,
        rejected_lengths=rejected_lengths,
        label_smoothing=label_smoothing,
        num_pairs=num_pairs,
        nll_normalization=nll_normalization,
    )
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # [B]
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # [B]
    if chosen_lengths is not None:
        chosen_lengths = chosen_lengths.to(policy_chosen_logps.dtype).clamp(min=1)  # [B]
    if rejected_lengths is not None:
        rejected_lengths = rejected_lengths.to(policy_rejected_logps.dtype).clamp(min=1)  # [B]
    pair_losses = _pair_losses(
        loss_type,
        chosen_logratios,
        rejected_logratios,
        chosen_lengths,
        rejected_lengths,
        beta,
        label_smoothing,
    )  # [B]
    chosen_nll = -policy_chosen_logps  # [B]
    if nll_normalization is NLLNormalization.TOKEN_MEAN:
        chosen_nll = chosen_nll / chosen_lengths  # type: ignore[operator]
    per_pair = pair_losses + nll_scale * chosen_nll  # [B]
    loss = per_pair.sum() / (per_pair.numel() if num_pairs is None else num_pairs)
    with torch.no_grad():
        reward_chosen, reward_rejected = beta * chosen_logratios, beta * rejected_logratios  # [B]
        metrics = {
            "loss": per_pair.mean(),
            "reward_chosen": reward_chosen.mean(),
            "reward_rejected": reward_rejected.mean(),
            "reward_margin": (reward_chosen - reward_rejected).mean(),
            "reward_accuracy": (reward_chosen > reward_rejected).float().mean(),
            "logps_chosen": policy_chosen_logps.mean(),
            "logps_rejected": policy_rejected_logps.mean(),
            "nll": chosen_nll.mean(),
        }
    return loss, metrics


def _pair_losses(
    loss_type: DPOLossType,
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    chosen_lengths: torch.Tensor | None,
    rejected_lengths: torch.Tensor | None,
    beta: float,
    label_smoothing: float,
) -> torch.Tensor:
    """The one dispatch over `DPOLossType`: per-pair preference loss [B]."""
    match loss_type:
        case DPOLossType.SIGMOID:
            return _smoothed_sigmoid_loss(beta * (chosen_logratios - rejected_logratios), label_smoothing)
        case DPOLossType.LENGTH_NORMALIZED:
            margin = _per_token_margin(chosen_logratios, rejected_logratios, chosen_lengths, rejected_lengths)
            return _smoothed_sigmoid_loss(beta * margin, label_smoothing)
        case DPOLossType.IPO:
            margin = _per_token_margin(chosen_logratios, rejected_logratios, chosen_lengths, rejected_lengths)
            return (margin - 1 / (2 * beta)) ** 2
    raise AssertionError(f"unhandled DPOLossType {loss_type}")


def _per_token_margin(
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    chosen_lengths: torch.Tensor | None,
    rejected_lengths: torch.Tensor | None,
) -> torch.Tensor:
    """`z_c / n_c - z_r / n_r` [B]: the margin of the per-token average log-ratios."""
    assert chosen_lengths is not None and rejected_lengths is not None, "checked by _check_dpo_args"
    return chosen_logratios / chosen_lengths - rejected_logratios / rejected_lengths


def _smoothed_sigmoid_loss(logits: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """`-(1 - eps) log sigmoid(x) - eps log sigmoid(-x)`; eps = 0 is plain DPO."""
    return -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)


def _check_dpo_args(
    logps: list[torch.Tensor],
    *,
    beta: float,
    loss_type: DPOLossType,
    chosen_lengths: torch.Tensor | None,
    rejected_lengths: torch.Tensor | None,
    label_smoothing: float,
    num_pairs: int | None,
    nll_normalization: NLLNormalization,
) -> None:
    """ValueError naming the argument and the fix for every inconsistent call."""
    shape = logps[0].shape
    if len(shape) != 1 or any(t.shape != shape for t in logps):
        raise ValueError(
            "dpo_loss takes summed sequence log-probs of shape [B] for all four logps, got "
            f"{[tuple(t.shape) for t in logps]}"
        )
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    needs_chosen = loss_type.needs_lengths or nll_normalization is NLLNormalization.TOKEN_MEAN
    if (needs_chosen and chosen_lengths is None) or (loss_type.needs_lengths and rejected_lengths is None):
        raise ValueError(
            f"loss_type={loss_type.value!r} with nll_normalization={nll_normalization.value!r} needs "
            "chosen_lengths (and rejected_lengths for length-normalised losses): pass the response token counts"
        )
    for name, lengths in [("chosen_lengths", chosen_lengths), ("rejected_lengths", rejected_lengths)]:
        if lengths is not None and lengths.shape != shape:
            raise ValueError(
                f"{name} must have shape {tuple(shape)} like the logps, got {tuple(lengths.shape)}"
            )
    if not 0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    if label_smoothing > 0 and loss_type is DPOLossType.IPO:
        raise ValueError(
            "label_smoothing applies to the sigmoid losses only; set it to 0 for loss_type='ipo'"
        )
    if num_pairs is not None and num_pairs < 1:
        raise ValueError(f"num_pairs must be >= 1 (the pairs of the whole batch), got {num_pairs}")
