"""`activation_checkpointing`: the decoder layers run twice per training step (once more in the
backward) and the gradients, losses and trained weights are those of the run without it; recipes
that cannot apply it refuse it."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selftaught.cli import main
from selftaught.configs.adaptive import AdaptiveDecodingConfig
from selftaught.configs.cocomix import CocomixConfig
from selftaught.configs.recipes import RagSelfDemosConfig, SFTConfig
from selftaught.losses.logps import token_logps
from selftaught.models import policy
from selftaught.models.policy import LoraConfig, load_policy
from selftaught.rewards.registry import REWARDS
from selftaught.train.parallel import decoder_layers


def _loss_and_grads(model: torch.nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, 100, (3, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :4] = 0  # a left-padded row
    loss_mask = attention_mask.bool() & (torch.arange(12) >= 6)
    model.zero_grad()
    loss = -token_logps(model, input_ids, attention_mask, loss_mask=loss_mask).sum()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("lora_r", [0, 4])
@pytest.mark.parametrize("every", [1, 2])
def test_checkpointed_layers_recompute_and_give_the_same_gradients(tiny_model_dir, lora_r, every):
    plain, _ = load_policy(tiny_model_dir, LoraConfig(r=lora_r))
    checkpointed, _ = load_policy(tiny_model_dir, LoraConfig(r=lora_r), activation_checkpointing=every)
    calls: list[int] = []
    layers = decoder_layers(checkpointed.get_base_model() if lora_r else checkpointed)
    for i, layer in enumerate(layers):  # a layer's own hooks stay outside the checkpoint: its mlp's
        layer.mlp.register_forward_pre_hook(lambda module, args, i=i: calls.append(i))
    if lora_r:  # the same adapter init on both sides
        checkpointed.load_state_dict(plain.state_dict())
    expected_loss, expected = _loss_and_grads(plain)
    loss, got = _loss_and_grads(checkpointed)
    # every layer once in the forward; the checkpointed ones (every `every`-th) again in the backward
    recomputed = [i for i in range(len(layers)) if i % every == 0]
    assert sorted(calls) == sorted([*range(len(layers)), *recomputed])
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-6)
    assert expected.keys() == got.keys() and expected
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)


def parity_reward(prompts, completions, answer, **columns):
    return [float(len(c[0]["content"]) % 2 == 0) for c in completions]


@pytest.fixture(autouse=True)
def _parity(monkeypatch):  # a random-init model never answers right: a reward that varies, for pairs
    monkeypatch.setitem(REWARDS, "world_answer", parity_reward)


def _run(tiny_model_dir: str, out: Path, recipe: str, *overrides: str) -> list[float]:
    argv = [recipe, "--preset", "tiny-smoke", f"out_dir={out}", f"model={tiny_model_dir}", "eval.every=-1"]
    assert main([*argv, "checkpoint_every=0", *overrides]) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [m["loss"] for m in metrics if "loss" in m]


@pytest.mark.parametrize(
    ("recipe", "overrides"),
    [
        ("sft", []),
        ("dpo", ["lora.r=4", "data.max_new_tokens=16"]),
        ("online-rl", ["loss=grpo", "kl_coef=0.1", "lora.r=4"]),
    ],
)
def test_a_checkpointed_run_equals_the_plain_run(tiny_model_dir, tmp_path, monkeypatch, recipe, overrides):
    plain = _run(tiny_model_dir, tmp_path / "plain", recipe, *overrides)
    enabled: list[int] = []
    real = policy.enable_activation_checkpointing
    monkeypatch.setattr(
        policy, "enable_activation_checkpointing", lambda m, n: enabled.append(n) or real(m, n)
    )
    checkpointed = _run(tiny_model_dir, tmp_path / "ckpt", recipe, *overrides, "activation_checkpointing=1")
    assert enabled == [1]  # the recipe applied it to its policy
    assert len(plain) >= 2 and checkpointed == pytest.approx(plain, rel=1e-5)
    for name in {p.name for p in (tmp_path / "plain" / "model").glob("*.safetensors")}:
        expected, got = (load_file(tmp_path / d / "model" / name) for d in ("plain", "ckpt"))
        assert all(torch.allclose(got[k], expected[k], rtol=1e-5, atol=1e-7) for k in expected)
    config = (tmp_path / "ckpt" / "config.yaml").read_text()
    assert (
        "activation_checkpointing: 1" in config
        and "activation_checkpointing" not in (tmp_path / "plain" / "config.yaml").read_text()
    )  # shown only when set: earlier runs' fingerprints are unchanged


@pytest.mark.parametrize("config", [AdaptiveDecodingConfig, CocomixConfig, RagSelfDemosConfig])
def test_recipes_that_cannot_apply_it_refuse_it(config):
    with pytest.raises(ValueError, match="activation_checkpointing"):
        config(activation_checkpointing=1)
    assert SFTConfig(activation_checkpointing=2).activation_checkpointing == 2
    with pytest.raises(ValueError, match="activation_checkpointing"):
        SFTConfig(activation_checkpointing=-1)
