"""Objectives of the online loop: how a step's scored rollout groups become micro-batches and a loss.

One `Objective` enum and one dispatch (`build_objective`): a new objective (LPO) is a new member
and a new class with the three methods below, not an edit of the loop.

    micro_batches(groups, tokenizer) -> (micro-batches, data metrics)   [] when nothing to train
    loss_fn                                                              `train_step`'s loss
    num_units(micro_batches) -> float                                    this rank's loss denominator
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import torch

from selftaught.configs.train import Objective as Objective
from selftaught.data.preferences import PairExample
from selftaught.losses.grpo import AdvantageType, LossNormalization
from selftaught.selection.pairs import compute_pair_stats
from selftaught.selection.rollouts import PairRuleFn, RolloutGroup, scored_groups, select_pairs
from selftaught.train.online import rollout_examples
from selftaught.train.policy_gradient import build_rollout_batches, group_advantages, rollout_loss
from selftaught.train.precision import Precision
from selftaught.train.preference import build_pair_batches, pair_loss
from selftaught.train.reference import compute_sequence_logps
from selftaught.types import Pair


class OnlineObjective(Protocol):
    def micro_batches(
        self, groups: Sequence[RolloutGroup], tokenizer: Any
    ) -> tuple[list[Any], dict[str, float]]: ...

    @property
    def loss_fn(self) -> Any: ...

    def num_units(self, micro_batches: Sequence[Any]) -> float: ...


@dataclass
class PairObjective:
    """DPO on each task's pairs, scored by `reference` once when the pairs are built."""

    reference: torch.nn.Module
    pair_rules: Mapping[str, PairRuleFn]
    """Task name -> pair rule."""
    beta: float
    seed: int
    """Seed of the random pair choices (per step and prompt)."""
    micro_batch_tokens: int
    precision: Precision = Precision.FP32
    """The reference scores the pairs as the policy's loss runs (`train.precision.forward_context`)."""
    reference_adapters: bool = False
    """Score the reference with its LoRA adapters on (a copy of a LoRA policy that is re-synced);
    off, a LoRA policy is its own reference: its frozen base (`train.online.build_reference`)."""

    def micro_batches(
        self, groups: Sequence[RolloutGroup], tokenizer: Any
    ) -> tuple[list[Any], dict[str, float]]:
        """Each task's pairs as `PairBatch`es with their reference log-probs; pair statistics."""
        pairs, results = select_pairs(groups, self.pair_rules, self.seed)
        metrics = compute_pair_stats(results)
        if not pairs:
            return [], metrics
        examples = [_pair_example(tokenizer, pair) for pair in pairs]
        sequences = [chosen for chosen, _ in examples] + [rejected for _, rejected in examples]
        pad_id, budget = tokenizer.pad_token_id, self.micro_batch_tokens
        ref_logps = compute_sequence_logps(
            self.reference,
            sequences,
            pad_id=pad_id,
            micro_batch_tokens=budget,
            precision=self.precision,
            adapters=self.reference_adapters,
        )
        return build_pair_batches(examples, ref_logps, pad_id=pad_id, micro_batch_tokens=budget), metrics

    @property
    def loss_fn(self) -> Any:
        return partial(pair_loss, beta=self.beta)

    def num_units(self, micro_batches: Sequence[Any]) -> float:
        return sum(mb.num_units for mb in micro_batches)  # pairs


def _pair_example(tokenizer: Any, pair: Pair) -> PairExample:
    chosen, rejected = rollout_examples(tokenizer, pair.prompt, [pair.chosen, pair.rejected])
    return chosen, rejected


@dataclass
class PolicyGradientObjective:
    """GRPO: every scored sample with its group-relative advantage."""

    reference: torch.nn.Module | None
    """KL reference (None: no KL term)."""
    advantage: AdvantageType
    normalization: LossNormalization
    clip: float
    kl_coef: float
    on_policy: bool
    """True at s = 1: the ratio is 1 (old logps = the policy's, detached); else the generator's logprobs."""
    micro_batch_tokens: int
    reference_adapters: bool = False
    """As `PairObjective.reference_adapters`."""

    def micro_batches(
        self, groups: Sequence[RolloutGroup], tokenizer: Any
    ) -> tuple[list[Any], dict[str, float]]:
        """Scored groups as `RolloutBatch`es; counts of dropped groups and unscored samples."""
        kept, metrics = scored_groups(groups)
        completions = [c for g in kept for c in g.completions]
        metrics["num_sequences"] = len(completions)
        if not completions:
            return [], metrics
        advantages = [a for g in kept for a in group_advantages(g, self.advantage)]
        examples = [e for g in kept for e in rollout_examples(tokenizer, g.prompt, g.completions)]
        old_logprobs = None if self.on_policy else [c.logprobs for c in completions]
        batches = build_rollout_batches(
            examples,
            advantages,
            old_logprobs,
            pad_id=tokenizer.pad_token_id,
            micro_batch_tokens=self.micro_batch_tokens,
        )
        return batches, metrics

    @property
    def loss_fn(self) -> Any:
        return partial(
            rollout_loss,
            reference=self.reference,
            reference_adapters=self.reference_adapters,
            kl_coef=self.kl_coef,
            clip=self.clip,
            normalization=self.normalization,
        )

    def num_units(self, micro_batches: Sequence[Any]) -> float:
        """Completion tokens (TOKEN normalisation), else sequences."""
        if self.normalization is LossNormalization.TOKEN:
            return sum(mb.num_units for mb in micro_batches)
        return sum(len(mb.advantages) for mb in micro_batches)
