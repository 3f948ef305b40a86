"""online-rl holds no copy it does not need: the in-process generator is the policy itself when it
samples in the policy's dtype, and a LoRA policy never re-synced is its own reference (adapters
off). Each run equals the run with the copies (the code before), step by step and in its weights."""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selftaught.cli import main
from selftaught.configs.recipes import OnlineRLConfig
from selftaught.configs.train import Precision
from selftaught.recipes import online_rl
from selftaught.rewards.registry import REWARDS
from selftaught.train.online import build_reference, frozen_copy


def parity_reward(prompts, completions, answer, **columns):
    return [float(len(c[0]["content"]) % 2 == 0) for c in completions]


@pytest.fixture(autouse=True)
def _parity(monkeypatch):
    monkeypatch.setitem(REWARDS, "world_answer", parity_reward)


def _run(tiny_model_dir, out: Path, *overrides: str) -> dict[int, dict]:
    argv = ["online-rl", "--preset", "tiny-smoke", f"out_dir={out}", f"model={tiny_model_dir}", *overrides]
    argv += ["eval.every=-1", "checkpoint_every=0"]
    assert main(argv) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {m["step"]: m for m in metrics if "staleness" in m}


@pytest.mark.parametrize(
    "overrides",
    [
        ["loss=grpo", "sync_every=1", "kl_coef=0.1", "lora.r=4"],
        ["sync_every=2", "lora.r=4"],  # semi-online DPO, the reference = the frozen base
        ["sync_every=1", "ref_sync_every=2", "lora.r=4"],  # a re-synced LoRA reference is a copy
        ["loss=grpo", "sync_every=2", "kl_coef=0.1"],  # full fine-tuning, off-policy
    ],
    ids=["grpo-lora", "dpo-lora", "dpo-lora-ref-sync", "grpo-full"],
)
def test_a_run_without_the_copies_equals_the_run_with_them(tiny_model_dir, tmp_path, monkeypatch, overrides):
    shared = _run(tiny_model_dir, tmp_path / "shared", *overrides)
    with monkeypatch.context() as m:  # the copies: a generator copy and a frozen reference copy
        m.setattr(online_rl, "shares_policy", lambda cfg: False)
        m.setattr(online_rl, "build_reference", lambda policy, resynced: (frozen_copy(policy), True))
        copied = _run(tiny_model_dir, tmp_path / "copied", *overrides)
    assert sorted(shared) == sorted(copied) == [1, 2, 3, 4]
    keys = ("loss", "reward", "grad_norm", "kl", "reward_margin")
    for step in shared:
        for key in (k for k in keys if k in shared[step]):
            assert math.isfinite(shared[step][key])
            assert shared[step][key] == pytest.approx(copied[step][key], rel=1e-5, abs=1e-7), (step, key)
    assert any(abs(shared[s].get("kl", shared[s].get("reward_margin", 0))) > 0 for s in (2, 3, 4))
    expected, got = (_weights(tmp_path / d / "model") for d in ("copied", "shared"))
    assert expected.keys() == got.keys()
    assert all(torch.allclose(expected[k], got[k], rtol=1e-5, atol=1e-7) for k in expected)


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in sorted(model_dir.glob("*.safetensors")) for k, v in load_file(f).items()}


def test_a_lora_policy_never_resynced_is_its_own_reference(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    full_reference, adapters = build_reference(base, resynced=False)
    assert (
        full_reference is not base
        and adapters
        and not any(p.requires_grad for p in full_reference.parameters())
    )
    policy = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    assert build_reference(policy, resynced=False) == (policy, False)
    copy, adapters = build_reference(policy, resynced=True)
    assert copy is not policy and adapters


@pytest.mark.parametrize(
    ("overrides", "shares"),
    [
        ({}, True),
        ({"precision": Precision.BF16}, True),  # bf16 weights, a bf16 generator
        ({"precision": Precision.BF16_AUTOCAST}, False),  # fp32 weights, a bf16 generator copy
    ],
)
def test_the_generator_is_the_policy_when_it_samples_in_the_policys_dtype(overrides, shares):
    assert online_rl.shares_policy(OnlineRLConfig(**overrides)) is shares
