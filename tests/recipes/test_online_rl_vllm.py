"""online-rl with `generator.kind=vllm`. The end-to-end run needs vLLM, so it runs in `.venv-vllm` (CPU
build), launched from the main suite by `test_online_rl_vllm_in_its_virtualenv` as in
tests/engines/test_vllm_engine.py, with one vLLM start-up. The configuration errors are fast tests.

As in test_online_rl.py, the verifiable reward is the parity of the completion's length, so the
random-init model's groups are mixed and give non-zero advantages.
"""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from selftaught.cli import main
from selftaught.data.chat import render_prompt
from selftaught.engines.base import SamplingParams
from selftaught.models.io import save_model
from selftaught.recipes import online_rl
from selftaught.rewards.registry import REWARDS
from selftaught.world.arith import sample_problems, to_prompt
from selftaught.world.tokenizer import build_tokenizer
from tests.vllm_utils import run_in_vllm_venv

VLLM_TESTS = ["test_semi_online_grpo_samples_from_a_vllm_generator_synced_every_two_steps"]


def parity_reward(prompts, completions, answer, **columns):
    return [float(len(c[0]["content"]) % 2 == 0) for c in completions]


@pytest.fixture(autouse=True)
def _parity(monkeypatch):
    monkeypatch.setitem(REWARDS, "world_answer", parity_reward)


def _argv(model_dir: str, out: Path, *overrides: str) -> list[str]:
    return ["online-rl", "--preset", "tiny-smoke", f"out_dir={out}", f"model={model_dir}", *overrides]


def test_a_vllm_generator_refuses_a_lora_policy(tiny_model_dir, tmp_path, capsys):
    assert main(_argv(tiny_model_dir, tmp_path, "generator.kind=vllm", "lora.r=4")) == 2
    assert "set lora.r=0" in capsys.readouterr().err


def test_a_vllm_generator_without_vllm_is_a_clear_error(tiny_model_dir, tmp_path, capsys):
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm imports here: the end-to-end test runs instead")
    assert main(_argv(tiny_model_dir, tmp_path, "generator.kind=vllm")) == 2
    assert "pip install 'selftaught[vllm]'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def vllm_model_dir(tmp_path_factory) -> str:
    """A random-init Llama with the world tokenizer and head_dim 64, which vLLM's CPU attention
    supports (the xs size's 16 is not). `initializer_range` 0.2 makes next-token distributions
    peaked (logit std about 2 rather than 0.2), so a stale or misaligned logprob shows."""
    tokenizer = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=512,
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    return str(save_model(model, tokenizer, tmp_path_factory.mktemp("vllm-tiny") / "model"))


def teacher_forced_logps(model, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    """[N] logprob of each completion token under `model`, given the prompt and the tokens before it."""
    ids = torch.tensor([prompt_ids + completion_ids])  # [1, P + N]
    with torch.no_grad():
        logps = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)  # [P + N - 1, V]
    return logps[len(prompt_ids) - 1 :].gather(-1, ids[0, len(prompt_ids) :, None]).squeeze(-1)


def load_policy_at(model_dir: str, step_dir: Path) -> LlamaForCausalLM:
    """The seed model with the weights of checkpoint `step_dir` (tied LM head stored once)."""
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    missing, unexpected = model.load_state_dict(load_file(step_dir / "model.safetensors"), strict=False)
    assert unexpected == [] and set(missing) <= {"lm_head.weight"}
    return model


@pytest.mark.slow
def test_semi_online_grpo_samples_from_a_vllm_generator_synced_every_two_steps(
    vllm_model_dir, tmp_path, monkeypatch
):
    """GRPO at s = 2 for 3 steps, sampled by vLLM: syncs at steps 1 and 3 give staleness 0, 1, 0.
    At s != 1 GRPO's old logprobs are the generator's, so at a sync step, where generator and
    policy hold the same weights, the mean ratio is 1 (the rollouts' token ids, logprobs and prompt
    rendering agree with the trainer's), and off 1 a step later. After the run the engine serves
    version 2: its greedy logprobs are the step-2 checkpoint's teacher-forced ones, not the seed's."""
    pytest.importorskip("vllm", reason="vllm is not importable here; see the test in its virtualenv")
    build, engines = online_rl.build_generator, []

    def build_and_keep(*args):
        engines.append(build(*args))
        return engines[-1]

    monkeypatch.setattr(online_rl, "build_generator", build_and_keep)
    out = tmp_path / "run"
    overrides = [
        "loss=grpo",
        "sync_every=2",
        "num_steps=3",
        "checkpoint_every=2",
        "optim.lr=0.003",  # a policy that moves visibly in two steps
        "eval.every=-1",
        "generator.kind=vllm",
        "generator.vllm_dtype=float32",
    ]
    assert main(_argv(vllm_model_dir, out, *overrides)) == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = {m["step"]: m for m in metrics if "staleness" in m}
    assert {step: m["staleness"] for step, m in steps.items()} == {1: 0, 2: 1, 3: 0}
    assert sorted(s for s, m in steps.items() if "generation_seconds" in m) == [1, 3]
    for step in (1, 3):
        assert steps[step]["ratio"] == pytest.approx(1.0, abs=1e-4), step
    assert abs(steps[2]["ratio"] - 1) > 1e-3

    [engine] = engines
    assert engine.policy_version == 2
    prompt = to_prompt(sample_problems("valid", 1, [2], 0)[0])
    prompt_ids = render_prompt(AutoTokenizer.from_pretrained(vllm_model_dir), prompt.messages)
    assert engine.encode_prompt(prompt) == prompt_ids
    [[greedy]] = engine.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=16))
    assert greedy.policy_version == 2
    policy = load_policy_at(vllm_model_dir, out / "checkpoints" / "step-0000002")
    expected = teacher_forced_logps(policy, prompt_ids, greedy.token_ids)
    torch.testing.assert_close(torch.tensor(greedy.logprobs), expected, atol=1e-3, rtol=0)
    seed = LlamaForCausalLM.from_pretrained(vllm_model_dir, dtype=torch.float32).eval()
    assert (teacher_forced_logps(seed, prompt_ids, greedy.token_ids) - expected).abs().max() > 0.1


@pytest.mark.slow
def test_online_rl_vllm_in_its_virtualenv():
    run_in_vllm_venv(__file__, VLLM_TESTS, timeout=600)
