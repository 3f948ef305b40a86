"""sft_loss: golden value and gradient, gradient accumulation, degenerate inputs."""

import math

import pytest
import torch

from selftaught.losses.sft import sft_loss


def test_golden_value_and_gradient():
    """Masked tokens hold log-probs log(1/2), log(1/4) (row 0) and log(1/8) (row 1): the NLLs are
    1, 2, 3 times log 2, so the loss is (1 + 2 + 3) log 2 / 3 = 2 log 2. Unmasked entries (9.0)
    must not count. d loss / d logp = -1/3 on each masked token, 0 elsewhere."""
    log2 = math.log(2)
    logps = torch.tensor([[9.0, -log2, -2 * log2], [9.0, 9.0, -3 * log2]], requires_grad=True)
    mask = torch.tensor([[False, True, True], [False, False, True]])

    loss, metrics = sft_loss(logps, mask)
    loss.backward()

    torch.testing.assert_close(loss, torch.tensor(2 * log2))
    torch.testing.assert_close(logps.grad, -mask.float() / 3)
    torch.testing.assert_close(metrics["nll"], torch.tensor(2 * log2))
    assert metrics["num_tokens"].item() == 3
    assert not metrics["nll"].requires_grad


def test_explicit_num_tokens_divides_the_sum():
    logps = torch.tensor([[-1.0, -2.0]])
    loss, metrics = sft_loss(logps, torch.ones(1, 2), num_tokens=6)
    torch.testing.assert_close(loss, torch.tensor(3.0 / 6))
    torch.testing.assert_close(metrics["nll"], torch.tensor(1.5))  # the metric stays per token of this call


def test_gradient_accumulation_equals_one_batch():
    gen = torch.Generator().manual_seed(0)
    logps = (-torch.rand(4, 5, generator=gen)).requires_grad_()
    mask = torch.rand(4, 5, generator=gen) > 0.4
    full, _ = sft_loss(logps, mask)
    (grad_full,) = torch.autograd.grad(full, logps)

    num_tokens = int(mask.sum())
    parts = [sft_loss(logps[rows], mask[rows], num_tokens)[0] for rows in (slice(0, 1), slice(1, 4))]
    (grad_parts,) = torch.autograd.grad(sum(parts), logps)

    torch.testing.assert_close(sum(parts), full)
    torch.testing.assert_close(grad_parts, grad_full)


def test_empty_mask_is_zero_not_nan():
    loss, metrics = sft_loss(torch.full((1, 3), -1.0), torch.zeros(1, 3, dtype=torch.bool))
    assert loss.item() == 0 and metrics["num_tokens"].item() == 0


def test_user_errors_name_the_argument():
    with pytest.raises(ValueError, match="loss_mask shape"):
        sft_loss(torch.zeros(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="num_tokens"):
        sft_loss(torch.zeros(2, 3), torch.ones(2, 3), num_tokens=0)


def test_loss_weights_scale_each_token_and_keep_the_token_denominator():
    """Weights 1, 5 on row 0's masked tokens and 2 on row 1's: (1 * 1 + 5 * 2 + 2 * 3) log 2 / 3;
    the gradient of a token is -w / 3; `nll` stays the unweighted mean; all-ones weights = no weights."""
    log2 = math.log(2)
    logps = torch.tensor([[9.0, -log2, -2 * log2], [9.0, 9.0, -3 * log2]], requires_grad=True)
    mask = torch.tensor([[False, True, True], [False, False, True]])
    weights = torch.tensor([[7.0, 1.0, 5.0], [7.0, 7.0, 2.0]])  # off-mask weights never count

    loss, metrics = sft_loss(logps, mask, loss_weights=weights)
    loss.backward()

    torch.testing.assert_close(loss, torch.tensor(17 * log2 / 3))
    torch.testing.assert_close(logps.grad, -(weights * mask) / 3)
    torch.testing.assert_close(metrics["nll"], torch.tensor(2 * log2))
    plain, _ = sft_loss(logps.detach(), mask)
    ones, _ = sft_loss(logps.detach(), mask, loss_weights=torch.ones(2, 3))
    torch.testing.assert_close(ones, plain)
    with pytest.raises(ValueError, match="loss_weights shape"):
        sft_loss(logps, mask, loss_weights=torch.ones(3))
