"""Latent Preference Optimization (Dhuliawala et al. 2025, papers_B §4.3): preference losses over the
temperatures an adaptive decoder chose, with the language model frozen.

A pair is a chosen and a rejected response to one prompt, each with the temperature latents that
produced it: one per response (sequence level) or one per generated token (token level). The head
`P_phi(tau | h_t)` gives each latent a log-probability; a response's latent log-probability is the sum
over its latents (`latent_logps`). Variants (sigma = logistic, beta > 0):

- `lpo_tokens_only` (b), the practical form: `-log sigma(beta (log P_phi(tau^c) - log P_phi(tau^r)))`.
  No reference: the head is new and trained alone.
- `lpo_joint` (a): the text tokens' DPO log-ratio added inside the sigmoid,
  `-log sigma(beta [log P(y^c)/P_ref(y^c) - log P(y^r)/P_ref(y^r)] + beta [log P_phi(tau^c) - log P_phi(tau^r)])`.
  With a frozen model the text term is a constant shift of the margin: it changes how much each pair
  weighs, not the direction of the head's gradient.
- `lpo_marginal` (c): the latent marginalised out per token, against the initial head as reference,
  `-log sigma(beta sum_t [log sum_tau P(y_t|tau) P_phi(tau|h_t) - log sum_tau P(y_t|tau) P_ref(tau|h_t)]^c - (same)^r)`,
  with `P(y_t | tau) = softmax(W h_t / tau)[y_t]` and tau = 0 the indicator of the argmax token
  (`temperature_token_logps`). It ignores which tau was sampled and credits each temperature by how
  well it explains the chosen and rejected tokens.
- `nll_chosen_latent`: the baseline, `-log P_phi(tau^c)`; it drifts to the temperatures that win
  most often overall (papers_B §4.3, TINYWORLD_JUDGES_LPO §2.3), as only the pairwise losses use the
  chosen/rejected ratio.

Every loss returns `(loss, metrics)`: the mean over the B pairs (or the sum divided by `num_pairs`,
for gradient accumulation as in `losses.dpo`), and detached metrics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def latent_logps(
    head_logps: torch.Tensor, choices: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """[B] summed log-probabilities of the chosen temperature indices.

    head_logps: [B, T, K] log P_phi(tau_k | h_t) (T = 1 for a sequence-level head); choices: [B, T]
    indices into the K temperatures; mask: [B, T] (True = a latent of the response; padding False).
    """
    picked = head_logps.gather(-1, choices.unsqueeze(-1)).squeeze(-1)  # [B, T]
    if mask is not None:
        picked = picked.masked_fill(~mask, 0.0)
    return picked.sum(-1)


def temperature_token_logps(
    logits: torch.Tensor, tokens: torch.Tensor, temperatures: list[float]
) -> torch.Tensor:
    """[B, T, K] log P(y_t | tau_k): `log_softmax(logits / tau)[y_t]` for tau > 0; for tau = 0 (greedy)
    0 when y_t is the argmax token, else -inf. logits: [B, T, V] (fp32 recommended); tokens: [B, T]."""
    columns = []
    for tau in temperatures:
        if tau == 0:
            greedy = logits.argmax(-1) == tokens
            columns.append(torch.where(greedy, 0.0, float("-inf")).to(logits.dtype))
        else:
            columns.append((logits / tau).log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1))
    return torch.stack(columns, dim=-1)


def _preference(margin: torch.Tensor, beta: float, num_pairs: float | None) -> tuple[torch.Tensor, dict]:
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    losses = -F.logsigmoid(beta * margin)
    loss = losses.sum() / (num_pairs if num_pairs is not None else len(margin))
    metrics = {
        "loss": losses.detach().mean(),
        "latent_margin": margin.detach().mean(),
        "latent_accuracy": (margin.detach() > 0).float().mean(),
    }
    return loss, metrics


def lpo_tokens_only(
    chosen_latent_logps: torch.Tensor,
    rejected_latent_logps: torch.Tensor,
    *,
    beta: float = 1.0,
    num_pairs: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Variant (b): `-log sigma(beta (log P_phi(tau^c) - log P_phi(tau^r)))` per pair ([B] inputs)."""
    return _preference(chosen_latent_logps - rejected_latent_logps, beta, num_pairs)


def lpo_joint(
    chosen_latent_logps: torch.Tensor,
    rejected_latent_logps: torch.Tensor,
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 1.0,
    num_pairs: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Variant (a): the text tokens' DPO log-ratio margin plus the latent margin, inside one sigmoid."""
    text = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return _preference(text + chosen_latent_logps - rejected_latent_logps, beta, num_pairs)


def marginal_logps(
    token_logps: torch.Tensor, head_logps: torch.Tensor, ref_head_logps: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """[B] `sum_t log sum_tau P(y_t|tau) P_phi(tau|h_t) - log sum_tau P(y_t|tau) P_ref(tau|h_t)` over the
    response's tokens (mask [B, T]); token_logps, head_logps, ref_head_logps: [B, T, K]."""
    ours = torch.logsumexp(token_logps + head_logps, dim=-1)
    theirs = torch.logsumexp(token_logps + ref_head_logps, dim=-1)
    return (ours - theirs).masked_fill(~mask, 0.0).sum(-1)


def lpo_marginal(
    chosen: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    rejected: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    beta: float = 1.0,
    num_pairs: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Variant (c); `chosen` and `rejected` are `marginal_logps`'s arguments
    `(token_logps, head_logps, ref_head_logps, mask)` of each side."""
    return _preference(marginal_logps(*chosen) - marginal_logps(*rejected), beta, num_pairs)


def nll_chosen_latent(
    chosen_latent_logps: torch.Tensor, *, num_pairs: float | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The baseline: `-log P_phi(tau^c)`, the chosen response's latents only."""
    losses = -chosen_latent_logps
    loss = losses.sum() / (num_pairs if num_pairs is not None else len(losses))
    return loss, {"loss": losses.detach().mean()}
