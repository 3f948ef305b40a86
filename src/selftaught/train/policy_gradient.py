"""Scored rollouts as policy-gradient (GRPO) micro-batches, and the loss that `train_step` calls on them.

Every sequence of a micro-batch carries its group-relative advantage and, off-policy, the logprobs
of the generator that sampled it, placed at its completion tokens: the clipped ratio of
`selftaught.losses.grpo.grpo_loss` then corrects for the generator's staleness. Without them
(`old_logps=None`) the loss is strictly on-policy (ratio 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from selftaught.losses.grpo import AdvantageType, LossNormalization, compute_advantages, grpo_loss
from selftaught.losses.logps import token_logps
from selftaught.selection.rollouts import RolloutGroup
from selftaught.train.batching import Batch, Example, collate, token_budget_batches
from selftaught.train.reference import reference_mode


@dataclass
class RolloutBatch:
    """One GRPO micro-batch of B sequences."""

    sequences: Batch
    """[B, T]; `loss_mask` marks the completion tokens."""
    advantages: torch.Tensor
    """[B] group-relative advantages."""
    old_logps: torch.Tensor | None
    """[B, T] generator logprobs at the completion tokens; None = strictly on-policy (s = 1)."""

    unit: ClassVar[str] = "tokens"
    """What `train_step` counts in a `RolloutBatch`: completion tokens (`num_tokens`, `tokens_per_s`)."""

    @property
    def num_units(self) -> int:
        """The completion tokens of this micro-batch (`sequences.loss_mask` summed)."""
        return self.sequences.num_tokens


def group_advantages(group: RolloutGroup, advantage_type: AdvantageType) -> list[float]:
    """The advantages of a scored group's N samples (every reward a float: `scored_groups`), from
    its N rewards in float64 (`compute_advantages`)."""
    rewards = torch.tensor([group.rewards], dtype=torch.float64)  # [1, N]
    return compute_advantages(rewards, advantage_type).flatten().tolist()


def build_rollout_batches(
    examples: Sequence[Example],
    advantages: Sequence[float],
    old_logprobs: Sequence[list[float] | None] | None,
    *,
    pad_id: int,
    micro_batch_tokens: int,
) -> list[RolloutBatch]:
    """Sampled sequences with their advantages as `RolloutBatch`es of at most `micro_batch_tokens`
    padded tokens (0: one micro-batch).

    `old_logprobs` holds each sequence's generator logprobs, one per completion token (off-policy),
    or is None (strictly on-policy); a sequence whose generator returned none is a ValueError.
    """
    lengths = [len(ids) for ids, _ in examples]
    batches = []
    for ids in token_budget_batches(lengths, micro_batch_tokens or max(lengths) * len(lengths)):
        sequences = collate([examples[i] for i in ids], pad_id)
        batch_advantages = torch.tensor([advantages[i] for i in ids])  # [B]
        old_logps = None
        if old_logprobs is not None:
            old_logps = _place_old_logps([old_logprobs[i] for i in ids], sequences)  # [B, T]
        batches.append(RolloutBatch(sequences, batch_advantages, old_logps))
    return batches


def _place_old_logps(logprobs: list[list[float] | None], sequences: Batch) -> torch.Tensor:
    """[B, T] generator logprobs placed at each row's completion tokens (0 elsewhere)."""
    old = torch.zeros(sequences.input_ids.shape)  # [B, T]
    for row, row_logprobs in enumerate(logprobs):
        if row_logprobs is None:
            raise ValueError("GRPO with sync_every != 1 needs generator logprobs; the engine returned none")
        positions = sequences.loss_mask[row].nonzero().squeeze(-1)  # [n]
        old[row, positions] = torch.tensor(row_logprobs)
    return old


def rollout_loss(
    model: Any,
    batch: RolloutBatch,
    denominator: float,
    *,
    reference: Any,
    kl_coef: float,
    clip: float,
    normalization: LossNormalization,
    reference_adapters: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """`train_step`'s loss of one `RolloutBatch`: `grpo_loss` with the ratio clipped to [1 - clip,
    1 + clip] and a k3 KL of weight `kl_coef` to `reference` (None: no KL), scored without gradients
    in `reference_mode(reference, adapters=reference_adapters)` (a LoRA policy passed as its own
    reference is scored with its adapters off: its frozen base).

    `denominator` is the step's count of what `normalization` divides by: completion tokens (TOKEN)
    or sequences (SEQUENCE, NONE).
    """
    sequences = batch.sequences
    policy_logps = token_logps(
        model,
        sequences.input_ids,
        sequences.attention_mask,
        position_ids=sequences.position_ids,
        loss_mask=sequences.loss_mask,
    )  # [B, T], 0 outside the completions
    ref_logps = None
    if reference is not None:
        with torch.no_grad(), reference_mode(reference, adapters=reference_adapters):
            ref_logps = token_logps(
                reference,
                sequences.input_ids,
                sequences.attention_mask,
                position_ids=sequences.position_ids,
                loss_mask=sequences.loss_mask,
            )  # [B, T]
    key = "num_tokens" if normalization is LossNormalization.TOKEN else "num_sequences"
    return grpo_loss(
        policy_logps,
        batch.old_logps,
        batch.advantages,
        sequences.loss_mask,
        ref_logps=ref_logps,
        kl_coef=kl_coef,
        clip_low=clip,
        clip_high=clip,
        normalization=normalization,
        **{key: int(denominator)},
    )
