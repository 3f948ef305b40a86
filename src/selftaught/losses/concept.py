"""CoCoMix's loss (papers_B §5.5): next-token prediction plus concept prediction, and the KD baseline.

    L = L_NTP + lambda * L_concept + lambda_KD * L_KD

    L_NTP     = sum_t CE(logits_t, x_{t+1}) / N
    L_concept = sum_t (1/K) sum_k CE(z_t, I_t[k]) / N            (a C-way softmax per label)
    L_KD      = sum_t KL(p_teacher,t || p_student,t) / N

over the positions t whose next token is trained (`loss_mask[:, t+1]`), N = `num_tokens`, the
trained tokens of the whole optimizer step (so accumulation equals one big batch). The official
code averages the concept term over every position, the last too; here it covers the NTP
positions: the last position's gradient (hence its attribution) is zero, so its labels are
arbitrary tie-breaks.
"""

from __future__ import annotations

import torch


def cocomix_loss(
    logits: torch.Tensor,
    input_ids: torch.Tensor,
    loss_mask: torch.Tensor,
    num_tokens: float,
    *,
    concept_logits: torch.Tensor | None = None,
    concept_labels: torch.Tensor | None = None,
    concept_weight: float = 0.0,
    teacher_logits: torch.Tensor | None = None,
    kd_weight: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """`(loss, metrics)` for `logits [B, T, V]`, `input_ids [B, T]`, `loss_mask [B, T]` (True: token
    t is trained), `concept_logits [B, T, C]`, `concept_labels [B, T, K]`, `teacher_logits [B, T, V]`.
    Terms with weight 0 are skipped (their inputs may be None). Metrics are detached means per
    position: `ntp_loss`, `concept_loss`, `kd_loss`."""
    positions = loss_mask[:, 1:]  # [B, T-1]: position t predicts the trained token t+1
    logps = torch.log_softmax(logits[:, :-1].float(), -1)  # [B, T-1, V]
    nll = -logps.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # [B, T-1]
    count = positions.sum().clamp_min(1)
    loss = (nll * positions).sum() / num_tokens
    metrics = {"ntp_loss": float((nll.detach() * positions).sum() / count)}
    if concept_weight:
        assert concept_logits is not None and concept_labels is not None
        concept_ce = concept_cross_entropy(concept_logits[:, :-1], concept_labels[:, :-1])  # [B, T-1]
        loss = loss + concept_weight * (concept_ce * positions).sum() / num_tokens
        metrics["concept_loss"] = float((concept_ce.detach() * positions).sum() / count)
    if kd_weight:
        assert teacher_logits is not None
        teacher_logps = torch.log_softmax(teacher_logits[:, :-1].float(), -1)
        kl = (teacher_logps.exp() * (teacher_logps - logps)).sum(-1)  # [B, T-1]
        loss = loss + kd_weight * (kl * positions).sum() / num_tokens
        metrics["kd_loss"] = float((kl.detach() * positions).sum() / count)
    return loss, metrics


def concept_cross_entropy(concept_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """`[B, T]`: (1/K) sum_k -log softmax(z)[I_k] for `concept_logits [B, T, C]`, `labels [B, T, K]`."""
    logps = torch.log_softmax(concept_logits.float(), -1)
    return -logps.gather(-1, labels).mean(-1)


def concept_topk_accuracy(concept_logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Share of labels `[B, T, K]` found among the `k` largest concept logits `[B, T, C]`."""
    top = concept_logits.topk(k, dim=-1).indices  # [B, T, k]
    hits = (labels[..., :, None] == top[..., None, :]).any(-1)  # [B, T, K]
    return float(hits.float().mean())
