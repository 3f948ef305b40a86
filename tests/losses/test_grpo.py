"""compute_advantages and grpo_loss: golden values, clipping boundaries, k3, gradient accumulation."""

import math

import pytest
import torch

from selftaught.losses.grpo import AdvantageType, LossNormalization, compute_advantages, grpo_loss


def rollout_batch(seed: int, size: int = 4, length: int = 5) -> dict[str, torch.Tensor]:
    """Random per-token log-probs near each other (so some ratios clip), advantages of both signs,
    and a ragged completion mask."""
    gen = torch.Generator().manual_seed(seed)
    policy = -torch.rand(size, length, generator=gen) - 0.5
    mask = torch.rand(size, length, generator=gen) > 0.3
    mask[:, 0] = True  # every sequence has a token
    return {
        "policy_logps": policy.requires_grad_(),
        "old_logps": policy.detach() + 0.3 * torch.randn(size, length, generator=gen),
        "ref_logps": policy.detach() + 0.3 * torch.randn(size, length, generator=gen),
        "advantages": torch.randn(size, generator=gen),
        "loss_mask": mask,
    }


@pytest.mark.parametrize("advantage_type", list(AdvantageType))
def test_advantages_of_a_constant_group_are_zero(advantage_type):
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    assert (compute_advantages(rewards, advantage_type) == 0).all()


def test_advantages_golden():
    """Group [1, 0, 0, 1]: mean 1/2, so GROUP_MEAN gives +-1/2. Sample std = sqrt((4 * 1/4) / 3)
    = sqrt(1/3), so GROUP_MEAN_STD gives +-(1/2) / (sqrt(1/3) + 1e-4)."""
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    signs = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    torch.testing.assert_close(compute_advantages(rewards, AdvantageType.GROUP_MEAN), 0.5 * signs)
    expected = 0.5 / (math.sqrt(1 / 3) + 1e-4) * signs
    torch.testing.assert_close(compute_advantages(rewards, "group_mean_std"), expected)


def test_advantages_need_two_completions_per_prompt():
    with pytest.raises(ValueError, match="N >= 2"):
        compute_advantages(torch.ones(3, 1))


@pytest.mark.parametrize(
    "normalization, denominators",
    [
        # TOKEN: every token divided by all 5 masked tokens.
        (LossNormalization.TOKEN, [[5.0, 5.0, 5.0], [5.0, 5.0, 5.0]]),
        # SEQUENCE: each token by its sequence length (3, then 2) times B = 2.
        (LossNormalization.SEQUENCE, [[6.0, 6.0, 6.0], [4.0, 4.0, 4.0]]),
        # NONE: each token by B = 2.
        (LossNormalization.NONE, [[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]),
    ],
)
def test_on_policy_loss_and_gradient_golden(normalization, denominators):
    """On-policy (old_logps=None) the ratio is 1 and never clips, so each masked token contributes
    -A_i / denominator to the loss and -A_i / denominator to d loss / d logp; masked-out tokens 0.
    A = (2, -1); row 0 has 3 tokens, row 1 has 2."""
    policy = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.7, 9.0]], requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    advantages = torch.tensor([2.0, -1.0])

    loss, metrics = grpo_loss(policy, None, advantages, mask, normalization=normalization)
    loss.backward()

    expected_grad = -advantages[:, None] / torch.tensor(denominators) * mask
    torch.testing.assert_close(policy.grad, expected_grad)
    torch.testing.assert_close(loss, expected_grad.sum())
    assert metrics["ratio"].item() == 1 and metrics["clip_low"].item() == metrics["clip_high"].item() == 0
    torch.testing.assert_close(metrics["entropy"], torch.tensor((1.0 + 2.0 + 0.5 + 0.3 + 0.7) / 5))


def test_k3_is_zero_with_gradient_zero_when_ref_equals_policy_and_golden_otherwise():
    """k3(d) = exp(d) - d - 1 with d = ref - logp: 0 at d = 0 with derivative 0; at d = log 2 it is
    1 - log 2, and d k3 / d logp = 1 - exp(d) = -1 there."""
    policy = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    zero_adv, mask = torch.zeros(1), torch.ones(1, 2, dtype=torch.bool)

    loss, metrics = grpo_loss(policy, None, zero_adv, mask, ref_logps=policy.detach(), kl_coef=0.5)
    loss.backward()
    assert loss.item() == 0 and metrics["kl"].item() == 0 and (policy.grad == 0).all()

    policy.grad = None
    ref = policy.detach() + math.log(2)
    loss, metrics = grpo_loss(policy, None, zero_adv, mask, ref_logps=ref, kl_coef=0.5, normalization="none")
    loss.backward()
    torch.testing.assert_close(metrics["kl"], torch.tensor(1 - math.log(2)))
    torch.testing.assert_close(loss, torch.tensor(0.5 * 2 * (1 - math.log(2))))
    torch.testing.assert_close(policy.grad, torch.full((1, 2), -0.5))


@pytest.mark.parametrize("advantage", [1.0, -1.0])
def test_clipping_starts_exactly_at_one_plus_or_minus_epsilon(advantage):
    """With A > 0 the gradient is cut once rho > 1 + clip_high and kept for any rho below it (even
    rho < 1 - clip_low: PPO's min never clips in the direction that undoes an update); with A < 0
    it is cut once rho < 1 - clip_low. Asymmetric bounds (0.2, 0.28) show which one applies."""
    clip_low, clip_high, delta = 0.2, 0.28, 1e-3
    ratios = torch.tensor(
        [1 - clip_low - delta, 1 - clip_low + delta, 1 + clip_high - delta, 1 + clip_high + delta]
    )
    old = torch.zeros(1, 4)
    policy = torch.log(ratios)[None].requires_grad_()
    loss, metrics = grpo_loss(
        policy,
        old,
        torch.tensor([advantage]),
        torch.ones(1, 4, dtype=torch.bool),
        clip_low=clip_low,
        clip_high=clip_high,
        normalization="none",
    )
    loss.backward()

    live = [True, True, True, False] if advantage > 0 else [False, True, True, True]
    torch.testing.assert_close(policy.grad[0], torch.where(torch.tensor(live), -advantage * ratios, 0.0))
    assert metrics["clip_high"].item() == (0.25 if advantage > 0 else 0)
    assert metrics["clip_low"].item() == (0.25 if advantage < 0 else 0)


@pytest.mark.parametrize("normalization", list(LossNormalization))
def test_gradient_accumulation_equals_one_batch(normalization):
    batch = rollout_batch(seed=0)
    kwargs = {"kl_coef": 0.1, "clip_low": 0.2, "clip_high": 0.28, "normalization": normalization}
    full, _ = grpo_loss(**batch, **kwargs)
    (grad_full,) = torch.autograd.grad(full, batch["policy_logps"])

    num_tokens, num_sequences = int(batch["loss_mask"].sum()), 4
    parts = []
    for rows in (slice(0, 1), slice(1, 4)):
        split = {name: t[rows] for name, t in batch.items()}
        parts.append(grpo_loss(**split, num_tokens=num_tokens, num_sequences=num_sequences, **kwargs)[0])
    (grad_parts,) = torch.autograd.grad(sum(parts), batch["policy_logps"])

    torch.testing.assert_close(sum(parts), full)
    torch.testing.assert_close(grad_parts, grad_full)


def test_non_finite_values_outside_the_mask_do_not_leak():
    batch = rollout_batch(seed=1)
    clean, _ = grpo_loss(**batch, kl_coef=0.1)
    (grad_clean,) = torch.autograd.grad(clean, batch["policy_logps"])
    old = batch["old_logps"].masked_fill(~batch["loss_mask"], float("nan"))
    dirty, _ = grpo_loss(**{**batch, "old_logps": old}, kl_coef=0.1)
    (grad_dirty,) = torch.autograd.grad(dirty, batch["policy_logps"])
    torch.testing.assert_close(dirty, clean)
    torch.testing.assert_close(grad_dirty, grad_clean)


def test_user_errors_name_the_argument():
    batch = rollout_batch(seed=2)
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_loss(**{**batch, "ref_logps": None}, kl_coef=0.1)
    with pytest.raises(ValueError, match="advantages"):
        grpo_loss(**{**batch, "advantages": torch.zeros(4, 1)})
    with pytest.raises(ValueError, match="loss_mask"):
        grpo_loss(**{**batch, "loss_mask": batch["loss_mask"][:, :3]})
    with pytest.raises(ValueError, match="clip_low"):
        grpo_loss(**batch, clip_low=1.0)
    with pytest.raises(ValueError, match="num_sequences"):
        grpo_loss(**batch, normalization="sequence", num_sequences=0)
