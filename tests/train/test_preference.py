"""`PairBatch` counts pairs for `train_step` (with or without reference log-probs); `RolloutBatch` counts
completion tokens."""

from functools import partial

import pytest
import torch

from selftaught.losses.grpo import LossNormalization
from selftaught.train.batching import collate
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.policy_gradient import build_rollout_batches, rollout_loss
from selftaught.train.preference import PairBatch, build_pair_batches, pair_loss, pair_units
from selftaught.train.step import LossFn, MicroBatch, train_step
from tests.train.test_step import PAD_ID, make_examples, tiny_llama


def step(micro_batches: list[MicroBatch], loss_fn: LossFn) -> dict[str, float]:
    """One `train_step` of a fresh tiny model on `micro_batches`."""
    model, cfg = tiny_llama(), OptimConfig(lr=1e-3)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps=1)
    return train_step(model, micro_batches, loss_fn, optimizer, scheduler, max_grad_norm=1.0)


def make_pairs(num_pairs: int, seed: int = 0) -> list:
    """`num_pairs` (chosen, rejected) examples of a few lengths."""
    examples = make_examples([4 + i % 3 for i in range(2 * num_pairs)], seed=seed)
    return list(zip(examples[:num_pairs], examples[num_pairs:], strict=True))


def test_pair_batch_counts_pairs_with_or_without_a_reference():
    pairs = make_pairs(3)
    batches = build_pair_batches(pairs, None, pad_id=PAD_ID, micro_batch_tokens=0)
    assert len(batches) == 1 and batches[0].ref_logps is None
    assert PairBatch.unit == "pairs" and batches[0].num_units == batches[0].num_pairs == 3
    with_ref = build_pair_batches(pairs, torch.arange(6.0), pad_id=PAD_ID, micro_batch_tokens=20)
    assert sum(b.num_units for b in with_ref) == 3 and len(with_ref) > 1
    for batch in with_ref:
        assert batch.ref_logps is not None and batch.ref_logps.shape == (2 * batch.num_pairs,)


def test_pair_batch_checks_its_shapes():
    rows = collate([pair[0] for pair in make_pairs(3)], PAD_ID)
    with pytest.raises(ValueError, match="3 sequences; a batch of P pairs holds 2P"):
        PairBatch(rows)
    two_pairs = collate([seq for pair in make_pairs(2) for seq in pair], PAD_ID)
    with pytest.raises(ValueError, match=r"ref_logps has shape \(2,\), expected \(4,\)"):
        PairBatch(two_pairs, torch.zeros(2))
    with pytest.raises(ValueError, match="DPO needs the reference"):
        pair_loss(tiny_llama(), PairBatch(two_pairs), 2, beta=0.1)


def test_dpo_step_reports_pairs():
    pairs = make_pairs(4, seed=1)
    batches = build_pair_batches(pairs, torch.zeros(8), pad_id=PAD_ID, micro_batch_tokens=20)
    metrics = step(batches, partial(pair_loss, beta=0.1))
    assert metrics["num_pairs"] == 4 and metrics["pairs_per_s"] == pytest.approx(4 / metrics["seconds"])
    assert "num_tokens" not in metrics and "tokens_per_s" not in metrics
    assert pair_units(metrics) is metrics  # kept for callers; nothing left to rename


def test_pair_batch_without_reference_trains_a_pairwise_loss():
    """A reward model's Bradley-Terry loss on the same `PairBatch` (no reference), normalised by pairs."""

    def bradley_terry(model, batch: PairBatch, num_pairs: float):
        seqs = batch.sequences
        scores = model(input_ids=seqs.input_ids, attention_mask=seqs.attention_mask).logits[:, -1, 0]  # [2P]
        chosen, rejected = scores.chunk(2)  # [P], [P]
        return -torch.nn.functional.logsigmoid(chosen - rejected).sum() / num_pairs, {}

    batches = build_pair_batches(make_pairs(4, seed=2), None, pad_id=PAD_ID, micro_batch_tokens=20)
    metrics = step(batches, bradley_terry)
    assert metrics["num_pairs"] == 4 and torch.isfinite(torch.tensor(metrics["loss"]))


def test_rollout_batch_counts_completion_tokens():
    examples = make_examples([5, 7, 6], seed=3)
    batches = build_rollout_batches(examples, [1.0, -1.0, 0.5], None, pad_id=PAD_ID, micro_batch_tokens=12)
    assert len(batches) > 1
    assert [b.num_units for b in batches] == [b.sequences.num_tokens for b in batches] and batches[
        0
    ].unit == "tokens"
    loss_fn = partial(
        rollout_loss, reference=None, kl_coef=0.0, clip=0.2, normalization=LossNormalization.TOKEN
    )
    metrics = step(batches, loss_fn)
    completion_tokens = sum(sum(mask) for _, mask in examples)
    assert metrics["num_tokens"] == completion_tokens
