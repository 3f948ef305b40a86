"""Cross-check against TRL 1.16 (dev-only dependency): same inputs, same loss, same gradients.

TRL's losses live inside trainer methods, so each test builds the trainer with `object.__new__`
(no `__init__`, no model download), sets only the attributes the method reads, and replaces the
model call with a fake that returns our per-token log-probs, exactly as TRL's fused LM head would
(zero outside the completion). TRL's own loss code then runs unchanged:

- `DPOTrainer._compute_loss` with `loss_type` "sigmoid" (our SIGMOID), "sigmoid_norm"
  (LENGTH_NORMALIZED), "ipo" (IPO), and ["sigmoid", "sft"] with `loss_weights` [1, nll_scale]
  (our NLL term with `token_mean`; TRL's "sft" averages over all chosen tokens of the batch, which
  equals our per-pair token mean only when every chosen response has the same length, so the test
  uses equal chosen lengths; TRL 1.16 has no `rpo_alpha`, and nothing matches our `sum` NLL).
- `GRPOTrainer._compute_loss` with `loss_type` "grpo" (our SEQUENCE), "bnpo" and "dapo" (TOKEN),
  "dr_grpo" (TOKEN with num_tokens = B * max_completion_length), off-policy, asymmetric clip, k3
  KL; and "luspo" (NONE: per-sequence token sums averaged over sequences) on-policy only: TRL
  requires sequence-level importance ratios for LUSPO, which equal our token-level ones (ratio 1,
  same gradient) only on-policy.
- Group advantages: TRL computes them inline in `_generate_and_score_completions` (not callable
  alone); the test repeats its two lines with TRL's own `nanstd`.
- `token_logps` against TRL's fused LM head (`add_fused_lm_head`) on a tiny Llama.
"""

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

trl = pytest.importorskip("trl")
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402
from trl import DPOTrainer, GRPOTrainer  # noqa: E402
from trl.trainer.utils import add_fused_lm_head, nanstd  # noqa: E402

from selftaught.losses import (  # noqa: E402
    AdvantageType,
    DPOLossType,
    LossNormalization,
    compute_advantages,
    dpo_loss,
    grpo_loss,
    token_logps,
)

FAKE_ACCELERATOR = SimpleNamespace(
    device=torch.device("cpu"),
    num_processes=1,
    gather=lambda t: t,
    gather_for_metrics=lambda t: t,
    reduce=lambda t, reduction: t,
)


def fused_head_output(per_token_logps: torch.Tensor) -> SimpleNamespace:
    """What TRL's fused LM head returns, with our log-probs and zeroed extras for its metrics."""
    zeros = torch.zeros_like(per_token_logps.detach())
    return SimpleNamespace(log_probs=per_token_logps, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())


def trl_dpo(loss_types: list[str], loss_weights: list[float], beta: float) -> DPOTrainer:
    trainer = object.__new__(DPOTrainer)
    trainer.__dict__.update(
        model=SimpleNamespace(training=True),
        accelerator=FAKE_ACCELERATOR,
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=loss_types,
        loss_weights=loss_weights,
        beta=beta,
        label_smoothing=0.0,
        use_weighting=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0,
        _tp_size=1,
    )
    return trainer


def dpo_inputs(pairs: int, length: int, equal_chosen_lengths: bool, seed: int) -> dict[str, torch.Tensor]:
    """TRL's DPO batch layout: rows [chosen..., rejected...]; prompt tokens then completion tokens
    then padding; the fake model's per-token log-probs are [2B, T - 1] (shifted), zero off-completion."""
    gen = torch.Generator().manual_seed(seed)
    completion_mask = torch.zeros(2 * pairs, length, dtype=torch.long)
    for row in range(2 * pairs):
        full_length = equal_chosen_lengths and row < pairs
        end = length if full_length else int(torch.randint(3, length + 1, (1,), generator=gen))
        completion_mask[row, 2:end] = 1  # 2 prompt tokens, the completion, then padding
    shift_mask = completion_mask[:, 1:].bool()
    return {
        "input_ids": torch.randint(0, 50, (2 * pairs, length), generator=gen),
        "attention_mask": torch.ones(2 * pairs, length, dtype=torch.long),
        "completion_mask": completion_mask,
        "ref_chosen_logps": -10 * torch.rand(pairs, generator=gen),
        "ref_rejected_logps": -10 * torch.rand(pairs, generator=gen),
        "per_token_logps": (
            -2 * torch.rand(2 * pairs, length - 1, generator=gen) * shift_mask
        ).requires_grad_(),
    }


@pytest.mark.parametrize(
    "trl_loss_types, trl_weights, ours",
    [
        (["sigmoid"], [1.0], {"loss_type": DPOLossType.SIGMOID}),
        (["sigmoid_norm"], [1.0], {"loss_type": DPOLossType.LENGTH_NORMALIZED}),
        (["ipo"], [1.0], {"loss_type": DPOLossType.IPO}),
        (["sigmoid", "sft"], [1.0, 0.7], {"nll_scale": 0.7, "nll_normalization": "token_mean"}),
    ],
)
def test_dpo_matches_trl(trl_loss_types, trl_weights, ours):
    pairs, beta = 4, 0.3
    inputs = dpo_inputs(pairs, length=7, equal_chosen_lengths="sft" in trl_loss_types, seed=0)
    per_token = inputs.pop("per_token_logps")
    shift_mask = inputs["completion_mask"][:, 1:].bool()
    trainer = trl_dpo(trl_loss_types, trl_weights, beta)

    def fake_model(**kwargs):
        return fused_head_output(per_token.masked_fill(~shift_mask, 0.0))

    trl_loss = trainer._compute_loss(fake_model, inputs, return_outputs=False)
    (trl_grad,) = torch.autograd.grad(trl_loss, per_token)

    seq_logps = (per_token * shift_mask).sum(-1)  # [2B]
    lengths = shift_mask.sum(-1)  # [2B]
    our_loss, metrics = dpo_loss(
        seq_logps[:pairs],
        seq_logps[pairs:],
        inputs["ref_chosen_logps"],
        inputs["ref_rejected_logps"],
        beta=beta,
        chosen_lengths=lengths[:pairs],
        rejected_lengths=lengths[pairs:],
        **ours,
    )
    (our_grad,) = torch.autograd.grad(our_loss, per_token)

    torch.testing.assert_close(our_loss, trl_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(our_grad, trl_grad, atol=1e-5, rtol=1e-5)
    trl_metrics = trainer._metrics["train"]
    for ours_name, trl_name in [
        ("reward_chosen", "rewards/chosen"),
        ("reward_rejected", "rewards/rejected"),
        ("reward_margin", "rewards/margins"),
        ("reward_accuracy", "rewards/accuracies"),
        ("logps_chosen", "logps/chosen"),
    ]:
        assert metrics[ours_name].item() == pytest.approx(trl_metrics[trl_name][0], abs=1e-5)


def trl_grpo(
    loss_type: str, beta: float, epsilon_low: float, epsilon_high: float, **overrides
) -> GRPOTrainer:
    trainer = object.__new__(GRPOTrainer)
    trainer.__dict__.update(
        model=SimpleNamespace(training=True),
        accelerator=FAKE_ACCELERATOR,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        loss_type=loss_type,
        beta=beta,
        epsilon_low=epsilon_low,
        epsilon_high=epsilon_high,
        importance_sampling_level="token",
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        use_vllm=False,
        current_gradient_accumulation_steps=1,
        max_completion_length=8,
        aux_loss_enabled=False,
        _entropy_bonus_enabled=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
    )
    trainer.__dict__.update(overrides)
    return trainer


def grpo_inputs(size: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    completion_mask = (torch.rand(size, length, generator=gen) > 0.3).long()
    completion_mask[:, 0] = 1
    policy = (-torch.rand(size, length, generator=gen) - 0.5) * completion_mask
    return {
        "prompt_ids": torch.zeros(size, 2, dtype=torch.long),
        "prompt_mask": torch.ones(size, 2, dtype=torch.long),
        "completion_ids": torch.zeros(size, length, dtype=torch.long),
        "completion_mask": completion_mask,
        "advantages": torch.randn(size, generator=gen),
        "old_per_token_logps": policy + 0.3 * torch.randn(size, length, generator=gen) * completion_mask,
        "ref_per_token_logps": policy + 0.3 * torch.randn(size, length, generator=gen) * completion_mask,
        "num_items_in_batch": completion_mask.sum(),
        "per_token_logps": policy.requires_grad_(),
    }


@pytest.mark.parametrize(
    "trl_loss_type, normalization, on_policy",
    [
        ("grpo", LossNormalization.SEQUENCE, False),
        ("bnpo", LossNormalization.TOKEN, False),
        ("dapo", LossNormalization.TOKEN, False),
        ("dr_grpo", LossNormalization.TOKEN, False),
        ("luspo", LossNormalization.NONE, True),
    ],
)
def test_grpo_matches_trl(trl_loss_type, normalization, on_policy):
    size, length, beta, eps_low, eps_high = 6, 5, 0.04, 0.2, 0.28
    inputs = grpo_inputs(size, length, seed=1)
    per_token = inputs.pop("per_token_logps")
    if on_policy:
        inputs.pop("old_per_token_logps")
    level = "sequence" if trl_loss_type == "luspo" else "token"
    trainer = trl_grpo(trl_loss_type, beta, eps_low, eps_high, importance_sampling_level=level)
    trainer._get_per_token_logps_and_entropies = lambda *args, **kwargs: (
        per_token,
        torch.zeros_like(per_token),
        None,
    )

    trl_loss = trainer._compute_loss(None, inputs)
    (trl_grad,) = torch.autograd.grad(trl_loss, per_token)

    num_tokens = size * trainer.max_completion_length if trl_loss_type == "dr_grpo" else None
    our_loss, metrics = grpo_loss(
        per_token,
        inputs.get("old_per_token_logps"),
        inputs["advantages"],
        inputs["completion_mask"],
        ref_logps=inputs["ref_per_token_logps"],
        kl_coef=beta,
        clip_low=eps_low,
        clip_high=eps_high,
        normalization=normalization,
        num_tokens=num_tokens,
    )
    (our_grad,) = torch.autograd.grad(our_loss, per_token)

    torch.testing.assert_close(our_loss, trl_loss, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(our_grad, trl_grad, atol=1e-5, rtol=1e-5)
    trl_metrics = trainer._metrics["train"]
    assert metrics["kl"].item() == pytest.approx(trl_metrics["kl"][0], abs=1e-6)
    if not on_policy:
        assert 0 < metrics["clip_low"].item() + metrics["clip_high"].item()  # the clip branch is exercised
        assert metrics["clip_low"].item() == pytest.approx(trl_metrics["clip_ratio/low_mean"][0], abs=1e-6)
        assert metrics["clip_high"].item() == pytest.approx(trl_metrics["clip_ratio/high_mean"][0], abs=1e-6)


@pytest.mark.parametrize(
    "advantage_type, scale_rewards", [("group_mean", "none"), ("group_mean_std", "group")]
)
def test_advantages_match_trl(advantage_type, scale_rewards):
    """TRL `_generate_and_score_completions`, sum_then_normalize branch, one reward function."""
    num_generations = 4
    rewards = torch.rand(3 * num_generations, generator=torch.Generator().manual_seed(2))
    mean = torch.nanmean(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
    std = nanstd(rewards.view(-1, num_generations), dim=1).repeat_interleave(num_generations)
    trl_advantages = rewards - mean
    if scale_rewards != "none":
        trl_advantages = trl_advantages / (std + 1e-4)

    ours = compute_advantages(rewards.view(-1, num_generations), AdvantageType(advantage_type)).flatten()
    torch.testing.assert_close(ours, trl_advantages)


def test_token_logps_matches_trl_fused_lm_head():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
    )
    model = LlamaForCausalLM(config)
    gen = torch.Generator().manual_seed(3)
    input_ids = torch.randint(0, 50, (3, 7), generator=gen)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0  # right padding: TRL does not pass position ids
    attention_mask[2, 3:] = 0

    ours = token_logps(model, input_ids, attention_mask)[:, 1:]  # [B, T - 1]
    (our_grad,) = torch.autograd.grad(ours.sum(), model.lm_head.weight)
    add_fused_lm_head(model)
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    theirs = model(
        input_ids=input_ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True
    ).log_probs
    (their_grad,) = torch.autograd.grad(theirs.sum(), model.lm_head.weight)

    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(our_grad, their_grad, atol=1e-5, rtol=1e-5)
