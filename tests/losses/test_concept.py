"""CoCoMix's loss (papers_B §5.5): golden values for the NTP, concept and KD terms, the global token
denominator, and lambda = 0 in pause mode = the pause-token baseline."""

import math

import pytest
import torch

from selftaught.losses.concept import cocomix_loss, concept_cross_entropy, concept_topk_accuracy
from selftaught.models.cocomix import CoCoMixLM, DecoderShape, build_decoder


def test_golden_uniform_logits():
    """Uniform logits over V = 2 tokens and C = 4 concepts: every NTP term is log 2 and every concept
    CE log 4, so L = log 2 + 0.1 log 4 = 0.831777 (2 trained tokens, num_tokens 2)."""
    ids = torch.tensor([[0, 1, 0]])
    mask = torch.tensor([[False, True, True]])
    loss, metrics = cocomix_loss(
        torch.zeros(1, 3, 2), ids, mask, 2,
        concept_logits=torch.zeros(1, 3, 4), concept_labels=torch.tensor([[[0, 1], [2, 3], [1, 1]]]), concept_weight=0.1,
    )  # fmt: skip
    assert loss.item() == pytest.approx(math.log(2) + 0.1 * math.log(4))
    assert metrics["ntp_loss"] == pytest.approx(math.log(2)) and metrics["concept_loss"] == pytest.approx(
        math.log(4)
    )


def test_golden_kd_term():
    """Teacher p = (1/4, 3/4), student uniform: KL = 1/4 log(1/2) + 3/4 log(3/2) = 0.130812 per
    position; with lambda_KD 0.5 and one trained token L = log 2 + 0.5 * 0.130812."""
    teacher = torch.tensor([[[0.0, math.log(3)], [0.0, 0.0]]])
    loss, metrics = cocomix_loss(
        torch.zeros(1, 2, 2), torch.tensor([[0, 1]]), torch.tensor([[False, True]]), 1,
        teacher_logits=teacher, kd_weight=0.5,
    )  # fmt: skip
    kl = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert metrics["kd_loss"] == pytest.approx(kl, abs=1e-6)
    assert loss.item() == pytest.approx(math.log(2) + 0.5 * kl, abs=1e-6)


def test_concept_ce_and_topk_accuracy():
    z = torch.log(torch.tensor([[[0.5, 0.25, 0.25]]]))
    ce = concept_cross_entropy(z, torch.tensor([[[0, 1]]]))
    assert ce.item() == pytest.approx((math.log(2) + math.log(4)) / 2)
    assert concept_topk_accuracy(z, torch.tensor([[[0, 1]]]), 1) == 0.5
    assert concept_topk_accuracy(z, torch.tensor([[[0, 1]]]), 2) == 1.0


def test_split_batches_with_the_global_count_sum_to_the_whole():
    torch.manual_seed(0)
    logits, z = torch.randn(4, 6, 5), torch.randn(4, 6, 7)
    ids, labels = torch.randint(5, (4, 6)), torch.randint(7, (4, 6, 2))
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[:, 0] = False
    mask[1, 4:] = False
    n = int(mask.sum())
    kwargs = {"concept_weight": 0.3}
    whole, _ = cocomix_loss(logits, ids, mask, n, concept_logits=z, concept_labels=labels, **kwargs)
    parts = sum(
        cocomix_loss(logits[s], ids[s], mask[s], n, concept_logits=z[s], concept_labels=labels[s], **kwargs)[
            0
        ]
        for s in (slice(0, 1), slice(1, 4))
    )
    assert torch.allclose(whole, parts)


def test_lambda_zero_in_pause_mode_is_the_pause_baseline():
    """With lambda = 0 the pause model's loss is plain NTP on its logits (equal to HF run on the
    interleaved sequence when the pause sits on the embeddings) and the concept head gets no gradient."""
    base = build_decoder(DecoderShape(32, 2, 4, 2, 64), 30, seed=0)
    model = CoCoMixLM(base, 0, 12, 3, "pause")
    ids = torch.randint(30, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[:, 0] = False
    out = model(ids)
    labels = torch.randint(12, (2, 6, 2))
    loss, _ = cocomix_loss(
        out.logits,
        ids,
        mask,
        10,
        concept_logits=out.concept_logits,
        concept_labels=labels,
        concept_weight=0.0,
    )
    emb = base.model.embed_tokens(ids)
    mixed = torch.stack((emb, model.mixer.pause.expand_as(emb)), 2).reshape(2, 12, -1)
    positions = torch.arange(6).repeat_interleave(2).expand(2, 12)
    reference = base(
        inputs_embeds=mixed, position_ids=positions, attention_mask=torch.ones(2, 12, dtype=torch.long)
    ).logits[:, 1::2]
    baseline, _ = cocomix_loss(reference, ids, mask, 10)
    assert torch.allclose(loss, baseline, atol=1e-6)
    loss.backward()
    assert model.mixer.predictor.weight.grad is None and model.mixer.compress.weight.grad is None
    assert model.mixer.pause.grad is not None
