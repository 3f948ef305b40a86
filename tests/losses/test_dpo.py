"""dpo_loss: golden values derived by hand, gradient accumulation, metrics, user errors."""

import math

import pytest
import torch

from selftaught.losses.dpo import DPOLossType, NLLNormalization, dpo_loss


def pair_batch(seed: int, size: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logps = {
        name: -10 * torch.rand(size, generator=gen)
        for name in ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")
    }
    logps["policy_chosen_logps"].requires_grad_()
    logps["policy_rejected_logps"].requires_grad_()
    return logps


def lengths(seed: int, size: int = 4) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        name: torch.randint(1, 9, (size,), generator=gen) for name in ("chosen_lengths", "rejected_lengths")
    }


def test_sigmoid_at_equal_log_ratios_is_log_2_with_gradient_beta_over_2():
    """Margin 0: loss = -log sigmoid(0) = log 2 per pair. d/dz [-log sigmoid(beta z)] =
    -beta sigmoid(-beta z) = -beta / 2 at z = 0; z = chosen - rejected log-ratio, and the batch
    mean divides by B, so d loss / d policy_chosen_logps = -beta / (2B) and +beta / (2B) on the
    rejected ones."""
    beta, size = 0.1, 3
    policy_chosen = torch.tensor([-5.0, -7.0, -1.0], requires_grad=True)
    policy_rejected = torch.tensor([-4.0, -2.0, -3.0], requires_grad=True)
    ref_chosen = policy_chosen.detach() - 1.0  # every log-ratio is +1
    ref_rejected = policy_rejected.detach() - 1.0

    loss, metrics = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=beta)
    loss.backward()

    torch.testing.assert_close(loss, torch.tensor(math.log(2)))
    torch.testing.assert_close(policy_chosen.grad, torch.full((size,), -beta / 2 / size))
    torch.testing.assert_close(policy_rejected.grad, torch.full((size,), beta / 2 / size))
    torch.testing.assert_close(metrics["reward_chosen"], torch.tensor(beta))
    torch.testing.assert_close(metrics["reward_margin"], torch.tensor(0.0))
    assert metrics["reward_accuracy"].item() == 0  # a tie is not a win


def test_ipo_golden():
    """Chosen log-ratio 2 over 4 tokens (0.5 per token), rejected -1 over 2 tokens (-0.5): margin 1.
    tau = beta = 0.25, target 1 / (2 tau) = 2: loss = (1 - 2)^2 = 1. d loss / d policy_chosen =
    2 (margin - 2) / 4 = -0.5; d loss / d policy_rejected = -2 (margin - 2) / 2 = +1."""
    policy_chosen = torch.tensor([-3.0], requires_grad=True)
    policy_rejected = torch.tensor([-6.0], requires_grad=True)
    loss, _ = dpo_loss(
        policy_chosen,
        policy_rejected,
        torch.tensor([-5.0]),
        torch.tensor([-5.0]),
        beta=0.25,
        loss_type=DPOLossType.IPO,
        chosen_lengths=torch.tensor([4]),
        rejected_lengths=torch.tensor([2]),
    )
    loss.backward()
    torch.testing.assert_close(loss, torch.tensor(1.0))
    torch.testing.assert_close(policy_chosen.grad, torch.tensor([-0.5]))
    torch.testing.assert_close(policy_rejected.grad, torch.tensor([1.0]))


def test_length_normalized_compares_per_token_log_ratios():
    """Chosen log-ratio 2 over 4 tokens and rejected 1 over 2 tokens are both 0.5 per token:
    length-normalised margin 0, loss log 2; plain sigmoid sees margin 1: -log sigmoid(beta)."""
    args = (torch.tensor([-3.0]), torch.tensor([-4.0]), torch.tensor([-5.0]), torch.tensor([-5.0]))
    lens = {"chosen_lengths": torch.tensor([4]), "rejected_lengths": torch.tensor([2])}
    normalized, _ = dpo_loss(*args, beta=0.5, loss_type="length_normalized", **lens)
    plain, _ = dpo_loss(*args, beta=0.5, **lens)
    torch.testing.assert_close(normalized, torch.tensor(math.log(2)))
    torch.testing.assert_close(plain, torch.tensor(-math.log(1 / (1 + math.exp(-0.5)))))


def test_label_smoothing_golden():
    """beta * margin = log 3, so sigmoid = 3/4 and sigmoid(-x) = 1/4; with eps = 0.1 the
    conservative loss is -(0.9 log 3/4 + 0.1 log 1/4) = 0.9 log(4/3) + 0.1 log 4."""
    margin = math.log(3)
    zero = torch.tensor([0.0])
    loss, _ = dpo_loss(torch.tensor([margin]), zero, zero, zero, beta=1.0, label_smoothing=0.1)
    torch.testing.assert_close(loss, torch.tensor(0.9 * math.log(4 / 3) + 0.1 * math.log(4)))


@pytest.mark.parametrize("normalization, expected", [("sum", 6.0), ("token_mean", 2.0)])
def test_nll_term_on_chosen(normalization, expected):
    """Chosen log-prob -6 over 3 tokens at margin 0: loss = log 2 + 0.5 * NLL with NLL = 6 (sum)
    or 6 / 3 = 2 (token_mean); its gradient adds -0.5 (sum) or -0.5 / 3 (token_mean)."""
    policy_chosen = torch.tensor([-6.0], requires_grad=True)
    loss, metrics = dpo_loss(
        policy_chosen,
        torch.tensor([-6.0]),
        torch.tensor([-6.0]),
        torch.tensor([-6.0]),
        beta=0.1,
        chosen_lengths=torch.tensor([3]),
        nll_scale=0.5,
        nll_normalization=normalization,
    )
    loss.backward()
    nll_grad = -0.5 if normalization == "sum" else -0.5 / 3
    torch.testing.assert_close(loss, torch.tensor(math.log(2) + 0.5 * expected))
    torch.testing.assert_close(policy_chosen.grad, torch.tensor([-0.1 / 2 + nll_grad]))
    torch.testing.assert_close(metrics["nll"], torch.tensor(expected))


@pytest.mark.parametrize("loss_type", list(DPOLossType))
@pytest.mark.parametrize("nll_normalization", list(NLLNormalization))
def test_gradient_accumulation_equals_one_batch(loss_type, nll_normalization):
    batch, lens = pair_batch(seed=1), lengths(seed=2)
    kwargs = {"beta": 0.3, "loss_type": loss_type, "nll_scale": 0.7, "nll_normalization": nll_normalization}
    full, _ = dpo_loss(**batch, **lens, **kwargs)
    leaves = [batch["policy_chosen_logps"], batch["policy_rejected_logps"]]
    grads_full = torch.autograd.grad(full, leaves)

    parts = []
    for rows in (slice(0, 1), slice(1, 4)):
        split = {name: t[rows] for name, t in {**batch, **lens}.items()}
        parts.append(dpo_loss(**split, num_pairs=4, **kwargs)[0])
    grads_parts = torch.autograd.grad(sum(parts), leaves)

    torch.testing.assert_close(sum(parts), full)
    for grad_parts, grad_full in zip(grads_parts, grads_full, strict=True):
        torch.testing.assert_close(grad_parts, grad_full)


def test_metrics_are_detached_means_over_pairs():
    batch = pair_batch(seed=3)
    _, metrics = dpo_loss(**batch, beta=0.2, num_pairs=100)
    reward_chosen = 0.2 * (batch["policy_chosen_logps"] - batch["ref_chosen_logps"]).detach()
    reward_rejected = 0.2 * (batch["policy_rejected_logps"] - batch["ref_rejected_logps"]).detach()
    torch.testing.assert_close(metrics["reward_chosen"], reward_chosen.mean())
    torch.testing.assert_close(metrics["reward_accuracy"], (reward_chosen > reward_rejected).float().mean())
    torch.testing.assert_close(metrics["logps_rejected"], batch["policy_rejected_logps"].detach().mean())
    assert all(not value.requires_grad and value.dim() == 0 for value in metrics.values())


def test_user_errors_name_the_argument():
    batch = pair_batch(seed=4)
    with pytest.raises(ValueError, match="chosen_lengths"):
        dpo_loss(**batch, beta=0.1, loss_type=DPOLossType.IPO)
    with pytest.raises(ValueError, match="chosen_lengths"):
        dpo_loss(**batch, beta=0.1, nll_scale=1.0, nll_normalization="token_mean")
    with pytest.raises(ValueError, match="label_smoothing"):
        dpo_loss(**batch, **lengths(seed=5), beta=0.1, loss_type="ipo", label_smoothing=0.1)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(**batch, beta=0.0)
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        dpo_loss(batch["policy_chosen_logps"][:2], *list(batch.values())[1:], beta=0.1)
    with pytest.raises(ValueError, match="not a valid DPOLossType"):
        dpo_loss(**batch, beta=0.1, loss_type="kto")


def test_needs_lengths_capability():
    assert [t.needs_lengths for t in DPOLossType] == [False, True, True]
