"""VLLMEngine (offline `vllm.LLM`) on the converted Gemma 3 270M. Its tests run where vLLM imports: in
`.venv-vllm` (CPU build), launched from the main suite by `test_vllm_engine_in_its_virtualenv`, with
one `LLM` shared by the module (start-up takes minutes on CPU). `checkpoint_tensors`, the file half
of the weight sync, is tested here without vLLM."""

import copy
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaForCausalLM

from selftaught.engines.base import SamplingParams
from selftaught.engines.vllm import checkpoint_tensors
from selftaught.types import Prompt
from tests.vllm_utils import run_in_vllm_venv

VLLM_TESTS = [
    "test_vllm_engine_generates_with_exact_logprobs",
    "test_vllm_engine_sync_weights_reaches_the_running_model",
]
PROMPT = Prompt(id="q", messages=[], text="Question: What is 12 plus 7?\nAnswer:")
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=12)


def test_checkpoint_tensors_keeps_a_tied_tensor_once_under_its_first_name(model, tmp_path):
    state = model.state_dict()
    assert state["lm_head.weight"].data_ptr() == state["model.embed_tokens.weight"].data_ptr()
    tensors = checkpoint_tensors(model)
    assert set(tensors) == set(state) - {"lm_head.weight"}
    save_file(tensors, tmp_path / "model.safetensors")  # refuses shared storage
    loaded = load_file(tmp_path / "model.safetensors")
    for name, tensor in loaded.items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)


def test_checkpoint_tensors_keeps_an_untied_lm_head(model):
    config = copy.deepcopy(model.config)
    config.tie_word_embeddings = False
    untied = LlamaForCausalLM(config)
    assert set(checkpoint_tensors(untied)) == set(untied.state_dict())


def teacher_forced_logps(model, prompt_ids: list[int], completion_ids: list[int]) -> torch.Tensor:
    """[N] logprob of each completion token under `model`, given the prompt and the tokens before it."""
    ids = torch.tensor([prompt_ids + completion_ids])  # [1, P + N]
    with torch.no_grad():
        logps = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)  # [P + N - 1, V]
    return logps[len(prompt_ids) - 1 :].gather(-1, ids[0, len(prompt_ids) :, None]).squeeze(-1)


@pytest.fixture(scope="module")
def model_dir() -> str:
    from selftaught.models.io import resolve_model_source

    return os.environ.get("SELFTAUGHT_GEMMA_DIR") or str(resolve_model_source("gemma-3-270m"))


@pytest.fixture(scope="module")
def engine(model_dir):
    pytest.importorskip("vllm", reason="vllm is not importable here; see test_vllm_engine_in_its_virtualenv")
    from selftaught.engines.vllm import VLLMEngine

    return VLLMEngine(model_dir, dtype="float32", max_model_len=512, gpu_memory_utilization=0.5)


@pytest.mark.slow
def test_vllm_engine_generates_with_exact_logprobs(engine, model_dir):
    from transformers import AutoModelForCausalLM

    [[greedy]] = engine.generate([PROMPT], GREEDY)
    assert "19" in greedy.text and len(greedy.logprobs) == len(greedy.token_ids)
    # the returned logprobs are the model's own: teacher-forced HF logprobs agree
    hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    expected = teacher_forced_logps(hf, engine.encode_prompt(PROMPT), greedy.token_ids)
    torch.testing.assert_close(torch.tensor(greedy.logprobs), expected, atol=2e-2, rtol=0)
    sampling = SamplingParams(temperature=1.0, n=3, max_new_tokens=6, seed=5)
    samples = engine.generate([PROMPT, PROMPT], sampling)
    assert [len(s) for s in samples] == [3, 3]
    # seeded: the same call gives the same samples; no two samples share a stream (prompt i, sample j)
    assert [[c.text for c in s] for s in engine.generate([PROMPT, PROMPT], sampling)] == [
        [c.text for c in s] for s in samples
    ]
    assert [c.meta["seed"] for s in samples for c in s] == list(range(5, 11))
    assert [c.text for c in samples[0]] != [c.text for c in samples[1]]


@pytest.mark.slow
def test_vllm_engine_sync_weights_reaches_the_running_model(engine, model_dir):
    """Perturb every weight of an HF copy (the tied embedding included), sync it: vLLM's greedy
    tokens and logprobs become the perturbed model's; syncing the original back restores them."""
    from transformers import AutoModelForCausalLM

    [[before]] = engine.generate([PROMPT], GREEDY)
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    original = {name: tensor.clone() for name, tensor in policy.state_dict().items()}
    noise = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(torch.randn(param.shape, generator=noise) * 0.03 * param.std())

    engine.sync_weights(policy, policy_version=1)
    [[after]] = engine.generate([PROMPT], GREEDY)
    assert after.policy_version == 1 and after.token_ids != before.token_ids
    expected = teacher_forced_logps(policy, engine.encode_prompt(PROMPT), after.token_ids)
    torch.testing.assert_close(torch.tensor(after.logprobs), expected, atol=2e-2, rtol=0)

    policy.load_state_dict(original)
    engine.sync_weights(policy, policy_version=2)
    [[restored]] = engine.generate([PROMPT], GREEDY)
    assert restored.policy_version == 2 and restored.token_ids == before.token_ids
    torch.testing.assert_close(restored.logprobs, before.logprobs, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_vllm_engine_in_its_virtualenv(model_dir):
    run_in_vllm_venv(__file__, VLLM_TESTS, env={"SELFTAUGHT_GEMMA_DIR": model_dir})  # converted here
