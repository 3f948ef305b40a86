"""Preference pairs as training micro-batches (DPO and reward models), and the DPO-family loss that
`train_step` calls on them.

A micro-batch of P pairs holds the P chosen sequences, then the P rejected ones in the same order:
one forward scores both sides, `chunk(2)` splits them, and row k and row P + k are one pair. The
reference log-probs of N pairs use the same layout, [2N]: the N chosen sequences, then the N
rejected ones. A pair never straddles two micro-batches, since its loss needs both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from selftaught.data.preferences import PairExample
from selftaught.losses.dpo import DPOLossType, NLLNormalization, dpo_loss
from selftaught.losses.logps import token_logps
from selftaught.train.batching import Batch, collate, token_budget_batches


@dataclass
class PairBatch:
    """One micro-batch of P pairs: the P chosen sequences, then the P rejected ones in the same order.

    It serves every pairwise loss: DPO (with the reference log-probs) and a reward model's
    Bradley-Terry loss (`ref_logps=None`). `train_step` normalises by pairs (`unit`, `num_units`).
    """

    sequences: Batch
    """[2P, T] padded sequences; `loss_mask` marks the response tokens."""
    ref_logps: torch.Tensor | None = None
    """[2P] reference log-probs of the same rows, summed over the response tokens; None when the loss
    has no reference (a reward model)."""

    unit: ClassVar[str] = "pairs"
    """What `train_step` counts in a `PairBatch`: pairs (`num_pairs`, `pairs_per_s`)."""

    def __post_init__(self) -> None:
        rows = self.sequences.input_ids.shape[0]
        if rows % 2:
            raise ValueError(
                f"PairBatch: {rows} sequences; a batch of P pairs holds 2P (chosen, then rejected)"
            )
        if self.ref_logps is not None and self.ref_logps.shape != (rows,):
            raise ValueError(
                f"PairBatch: ref_logps has shape {tuple(self.ref_logps.shape)}, expected ({rows},): "
                "one per sequence, chosen then rejected"
            )

    @property
    def num_pairs(self) -> int:
        """P, the pairs of this micro-batch."""
        return self.sequences.input_ids.shape[0] // 2

    @property
    def num_units(self) -> int:
        """The units `train_step` normalises the loss by: the pairs (`num_pairs`)."""
        return self.num_pairs


def build_pair_batches(
    pairs: Sequence[PairExample], ref_logps: torch.Tensor | None, *, pad_id: int, micro_batch_tokens: int
) -> list[PairBatch]:
    """`pairs` and their reference log-probs ([2N], chosen then rejected; None: no reference, e.g. a
    reward model's pairs) as `PairBatch`es.

    A pair costs two rows of its longer sequence's length; a micro-batch holds at most
    `micro_batch_tokens` padded tokens (0: all pairs in one micro-batch).
    """
    sizes = [2 * max(len(chosen[0]), len(rejected[0])) for chosen, rejected in pairs]
    batches = []
    for ids in token_budget_batches(sizes, micro_batch_tokens or max(sizes) * len(sizes)):
        rows = [pairs[i][0] for i in ids] + [pairs[i][1] for i in ids]
        ref = None if ref_logps is None else ref_logps[ids + [len(pairs) + i for i in ids]]  # [2P]
        batches.append(PairBatch(collate(rows, pad_id), ref))
    return batches


def pair_loss(
    model: Any,
    batch: PairBatch,
    num_pairs: float,
    *,
    beta: float,
    loss_type: DPOLossType = DPOLossType.SIGMOID,
    nll_scale: float = 0.0,
    nll_normalization: NLLNormalization = NLLNormalization.SUM,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """`train_step`'s loss of one `PairBatch`: `dpo_loss` of the policy's summed response log-probs
    against the batch's reference ones, divided by `num_pairs` (the pairs of the whole step).

    Metrics: those of `dpo_loss`, plus `length_chosen` / `length_rejected` (mean response tokens).
    A batch without reference log-probs is a ValueError.
    """
    if batch.ref_logps is None:
        raise ValueError("pair_loss: the PairBatch has no ref_logps; DPO needs the reference's log-probs")
    sequences = batch.sequences.to(next(model.parameters()).device)
    logps = token_logps(
        model,
        sequences.input_ids,
        sequences.attention_mask,
        position_ids=sequences.position_ids,
        loss_mask=sequences.loss_mask,
    )  # [2P, T], 0 outside the responses
    seq_logps = (logps * sequences.loss_mask).sum(-1)  # [2P]
    lengths = sequences.loss_mask.sum(-1)  # [2P]
    chosen_logps, rejected_logps = seq_logps.chunk(2)  # [P], [P]
    ref_chosen_logps, ref_rejected_logps = batch.ref_logps.to(seq_logps.device).chunk(2)  # [P], [P]
    chosen_lengths, rejected_lengths = lengths.chunk(2)  # [P], [P]
    loss, metrics = dpo_loss(
        chosen_logps,
        rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        beta=beta,
        loss_type=loss_type,
        chosen_lengths=chosen_lengths,
        rejected_lengths=rejected_lengths,
        num_pairs=num_pairs,
        nll_scale=nll_scale,
        nll_normalization=nll_normalization,
    )
    metrics["length_chosen"] = chosen_lengths.float().mean()
    metrics["length_rejected"] = rejected_lengths.float().mean()
    return loss, metrics


def pair_units(metrics: dict[str, float]) -> dict[str, float]:
    """`metrics` unchanged: `train_step` names its counts after the micro-batches' unit itself
    (`num_pairs`, `pairs_per_s` for `PairBatch`es). Kept for callers until they drop it."""
    return metrics
