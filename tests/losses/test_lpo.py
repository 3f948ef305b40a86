"""LPO losses: golden values derived by hand, gradients, the reductions between variants."""

import math

import pytest
import torch

from selftaught.losses.lpo import (
    latent_logps,
    lpo_joint,
    lpo_marginal,
    lpo_tokens_only,
    marginal_logps,
    nll_chosen_latent,
    temperature_token_logps,
)

TEMPS = [0.0, 0.5, 1.0]


def test_latent_logps_sum_the_chosen_indices_over_unmasked_steps():
    head = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]]))  # [1, 3, 3]
    choices = torch.tensor([[0, 2, 1]])
    mask = torch.tensor([[True, True, False]])  # the third step is padding
    assert latent_logps(head, choices, mask).item() == pytest.approx(math.log(0.5) + math.log(0.7))
    assert latent_logps(head, choices).item() == pytest.approx(math.log(0.5 * 0.7 * 0.3))


def test_tokens_only_golden_value_and_gradient():
    """Margin m = log .6 - log .2 = log 3; beta 1: loss = -log sigmoid(log 3) = -log(3/4) = log(4/3).
    d loss / d chosen = -sigmoid(-m) = -1/4; d / d rejected = +1/4."""
    chosen = torch.tensor([math.log(0.6)], requires_grad=True)
    rejected = torch.tensor([math.log(0.2)], requires_grad=True)
    loss, metrics = lpo_tokens_only(chosen, rejected, beta=1.0)
    assert loss.item() == pytest.approx(math.log(4 / 3))
    loss.backward()
    assert chosen.grad.item() == pytest.approx(-0.25) and rejected.grad.item() == pytest.approx(0.25)
    assert metrics["latent_accuracy"].item() == 1.0
    # at equal latents: log 2 per pair, whatever beta
    loss, _ = lpo_tokens_only(torch.zeros(3), torch.zeros(3), beta=0.3)
    assert loss.item() == pytest.approx(math.log(2))


def test_joint_is_tokens_only_shifted_by_the_text_margin():
    chosen, rejected = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -0.5])
    zeros = torch.zeros(2)
    same, _ = lpo_joint(chosen, rejected, zeros, zeros, zeros, zeros, beta=0.5)
    only, _ = lpo_tokens_only(chosen, rejected, beta=0.5)
    assert same.item() == pytest.approx(only.item())
    # text log-ratios +1 (chosen) and -1 (rejected): margin + 2 inside the sigmoid
    joint, _ = lpo_joint(chosen, rejected, zeros + 1, zeros - 1, zeros, zeros, beta=0.5)
    shifted, _ = lpo_tokens_only(chosen + 2, rejected, beta=0.5)
    assert joint.item() == pytest.approx(shifted.item())


def test_nll_baseline_is_the_mean_negative_chosen_latent_logp():
    loss, _ = nll_chosen_latent(torch.tensor([math.log(0.5), math.log(0.25)]))
    assert loss.item() == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_num_pairs_makes_micro_batches_add_up_to_the_whole_batch():
    chosen, rejected = torch.randn(6), torch.randn(6)
    whole, _ = lpo_tokens_only(chosen, rejected, beta=0.7)
    parts = sum(
        lpo_tokens_only(chosen[i : i + 2], rejected[i : i + 2], beta=0.7, num_pairs=6)[0] for i in (0, 2, 4)
    )
    assert parts.item() == pytest.approx(whole.item())


def test_temperature_token_logps_greedy_is_an_indicator_and_others_are_tempered_softmax():
    logits = torch.tensor([[[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]]])  # [1, 2, 3]
    tokens = torch.tensor([[0, 2]])  # step 0 takes the argmax, step 1 does not
    got = temperature_token_logps(logits, tokens, TEMPS)  # [1, 2, 3]
    assert got[0, 0, 0].item() == 0.0 and got[0, 1, 0].item() == float("-inf")
    half = torch.log_softmax(logits[0, 0] / 0.5, -1)[0]
    assert got[0, 0, 1].item() == pytest.approx(half.item())
    assert got[0, 1, 2].item() == pytest.approx(torch.log_softmax(logits[0, 1], -1)[2].item())


def test_marginal_golden_value_and_zero_at_the_reference():
    """One token, K = 2: P(y|tau) = (1, .5) (greedy hit, tempered .5); head (.8, .2), ref (.5, .5):
    log(.8 + .1) - log(.5 + .25) = log(.9 / .75) = log 1.2."""
    token = torch.log(torch.tensor([[[1.0, 0.5]]]))
    head = torch.log(torch.tensor([[[0.8, 0.2]]]))
    ref = torch.log(torch.tensor([[[0.5, 0.5]]]))
    mask = torch.tensor([[True]])
    assert marginal_logps(token, head, ref, mask).item() == pytest.approx(math.log(1.2))
    assert marginal_logps(token, ref, ref, mask).item() == pytest.approx(0.0)
    # the loss at the reference head is log 2, and its gradient moves mass toward the chosen's greedy token
    head_param = ref.clone().requires_grad_()
    rejected_token = torch.log(torch.tensor([[[1e-9, 0.5]]]))  # the rejected token was not the argmax
    loss, _ = lpo_marginal((token, head_param, ref, mask), (rejected_token, head_param, ref, mask), beta=1.0)
    assert loss.item() == pytest.approx(math.log(2))
    loss.backward()
    assert head_param.grad[0, 0, 0] < head_param.grad[0, 0, 1]  # raising log P(tau=0) lowers the loss more


def test_bad_beta_is_refused():
    with pytest.raises(ValueError, match="beta must be > 0"):
        lpo_tokens_only(torch.zeros(1), torch.zeros(1), beta=0.0)
