"""CoCoMix's concept labels (papers_B §5.3): attribution = (dL/dh @ W_dec) * activation with the
gradient taken w.r.t. the cached activation only; sign and activation-source options; the
activation-based ablation."""

import pytest
import torch
import torch.nn.functional as F

from selftaught.models.cocomix import DecoderShape, build_decoder
from selftaught.models.concept_labels import (
    activation_labels,
    attribution_labels,
    label_sign_stats,
    mean_ntp_loss,
    teacher_residual,
)
from selftaught.models.sae import TopKSAE

SHAPE = DecoderShape(hidden_size=32, num_layers=3, num_heads=4, num_kv_heads=2, ffn_size=64)


def setup(seed: int = 0):
    teacher = build_decoder(SHAPE, 40, seed=seed).eval().requires_grad_(False)
    torch.manual_seed(seed)
    sae = TopKSAE(32, 24, 3).requires_grad_(False)
    ids = torch.randint(40, (2, 10), generator=torch.Generator().manual_seed(seed))
    return teacher, sae, ids


def reference_attribution(teacher, sae, ids, layer, source="post"):
    """The same quantity through HF's own hidden states, with the teacher's parameters in the graph."""
    teacher = teacher.requires_grad_(True)
    out = teacher(input_ids=ids, output_hidden_states=True, use_cache=False)
    hidden = out.hidden_states[layer]  # the residual after `layer` blocks
    loss = F.cross_entropy(out.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    (grad,) = torch.autograd.grad(loss, hidden)
    teacher.requires_grad_(False)
    c, info = sae.encode(hidden.detach())
    return (grad @ sae.W_dec) * (c if source == "post" else info["pre"]), c


@pytest.mark.parametrize("source", ["post", "pre"])
def test_attribution_matches_the_gradient_through_hf_hidden_states(source):
    teacher, sae, ids = setup()
    expected, c = reference_attribution(teacher, sae, ids, layer=2, source=source)
    labels = attribution_labels(teacher, sae, 2, ids, k_attr=4, activation_source=source)
    assert labels.labels.shape == labels.scores.shape == (2, 10, 4)
    assert torch.allclose(labels.scores, expected.topk(4, -1).values, atol=1e-6)
    assert torch.allclose(expected.gather(-1, labels.labels), labels.scores, atol=1e-6)
    if source == "post":  # only active latents can carry attribution
        nonzero = labels.scores != 0
        assert (c.gather(-1, labels.labels)[nonzero] > 0).all()
    assert all(p.grad is None for p in teacher.parameters())


def test_sign_options_rank_signed_absolute_and_negated_attribution():
    teacher, sae, ids = setup(1)
    expected, _ = reference_attribution(teacher, sae, ids, layer=1, source="pre")
    common = {"k_attr": 3, "activation_source": "pre"}
    paper = attribution_labels(teacher, sae, 1, ids, sign="paper", **common)
    absolute = attribution_labels(teacher, sae, 1, ids, sign="abs", **common)
    negative = attribution_labels(teacher, sae, 1, ids, sign="neg", **common)
    assert torch.equal(paper.labels, expected.topk(3, -1).indices)
    assert torch.equal(absolute.labels, expected.abs().topk(3, -1).indices)
    assert torch.equal(negative.labels, (-expected).topk(3, -1).indices)
    assert (negative.scores[..., 0] <= paper.scores[..., 0]).all()
    with pytest.raises(ValueError, match="attribution_sign"):
        attribution_labels(teacher, sae, 1, ids, sign="max")


def test_activation_labels_are_the_most_active_latents():
    teacher, sae, ids = setup(2)
    labels = activation_labels(teacher, sae, 2, ids, k_attr=2)
    _, hidden = teacher_residual(teacher, 2, ids, None, grad=False)
    c, _ = sae.encode(hidden)
    assert torch.equal(labels.labels, c.topk(2, -1).indices)
    assert torch.allclose(labels.teacher_logits, teacher(input_ids=ids).logits)


def test_the_residual_hook_reads_the_right_layer_and_refuses_others():
    teacher, _, ids = setup()
    with torch.no_grad():
        out = teacher(input_ids=ids, output_hidden_states=True)
    _, first = teacher_residual(teacher, 1, ids, None, grad=False)
    assert torch.allclose(first, out.hidden_states[1])
    _, second = teacher_residual(teacher, 2, ids, None, grad=False)
    assert torch.allclose(second, out.hidden_states[2])
    with pytest.raises(ValueError, match="teacher layer"):
        teacher_residual(teacher, 0, ids, None, grad=False)


def test_mean_loss_skips_padding_and_sign_stats_count_shares():
    logits = torch.zeros(1, 3, 4)
    ids = torch.tensor([[0, 1, 2]])
    assert mean_ntp_loss(logits, ids, torch.tensor([[1, 1, 0]])).item() == pytest.approx(
        torch.log(torch.tensor(4.0)).item()
    )
    teacher, sae, ids = setup()
    stats = label_sign_stats(attribution_labels(teacher, sae, 2, ids))
    assert sum(stats.values()) == pytest.approx(1.0)
