"""HeadTemperatureEngine: sequence-level adaptive decoding over any engine. Its argmax completions are
HFEngine(temperature_head=...)'s; a sampling head follows its distribution, seeded; samples come back
in order; a token-level head is refused. The vLLM test needs a GPU and vLLM (skipped elsewhere)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import torch

from selftaught.engines.adaptive import HeadTemperatureEngine
from selftaught.engines.base import Engine, SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.models.adaptive import AdaptiveDecoder, Level
from selftaught.types import Completion, Prompt


def chat_prompt(pid: str, content: str) -> Prompt:
    return Prompt(id=pid, messages=[{"role": "user", "content": content}])


PROMPTS = [
    chat_prompt("short", "Hi"),
    chat_prompt("long", "Tell a story about the sea, with a whale and a storm and a boat."),
    Prompt(id="raw", messages=[], text="What is 12 + 35? Let us add:"),
    chat_prompt("mid", "Name an animal."),
    chat_prompt("fox", "The quick brown fox"),
    Prompt(id="cat", messages=[], text="A cat."),
]


def random_head(hidden_size: int, level: Level = Level.SEQUENCE, scale: float = 3.0) -> AdaptiveDecoder:
    """A head over the default grid whose last layer is random (seeded): prompts pick different temperatures."""
    head = AdaptiveDecoder(hidden_size, level=level)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        last = head.mlp[-1]
        last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * scale)
    return head


def flat(results: list[list[Completion]]) -> list[Completion]:
    return [c for cs in results for c in cs]


def head_probs(model, tokenizer, head: AdaptiveDecoder, prompt: Prompt) -> torch.Tensor:
    """[K] the head's distribution from one unpadded forward over the prompt (independent of the engine)."""
    from selftaught.data.chat import encode_prompt

    ids = torch.tensor([encode_prompt(tokenizer, prompt)])
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0, -1]
        return head(hidden).exp()


class EchoEngine:
    """Records calls; sample j of a call answers `"<prompt id>|<temperature>|<j>|<seed>"`."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Prompt], SamplingParams]] = []

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        self.calls.append((list(prompts), sampling))
        return [
            [
                Completion(
                    prompt_id=p.id,
                    text=f"{p.id}|{sampling.temperature}|{j}|{sampling.seed}",
                    meta={"sample_index": j, "seed": sampling.seed},
                )
                for j in range(sampling.n)
            ]
            for p in prompts
        ]


def test_argmax_completions_are_hf_engines_own(model, tokenizer):
    head = random_head(model.config.hidden_size)
    sampling = SamplingParams(max_new_tokens=12, n=2, seed=7, per_prompt_seeds=True)
    expected = HFEngine(model, tokenizer, temperature_head=head, head_sample=False).generate(
        PROMPTS, sampling
    )
    wrapper = HeadTemperatureEngine(HFEngine(model, tokenizer), model, tokenizer, head, sample=False)
    assert isinstance(wrapper, Engine)
    got = wrapper.generate(PROMPTS, sampling)
    assert [[c.prompt_id for c in cs] for cs in got] == [[p.id] * 2 for p in PROMPTS]
    assert [c.meta["tau_index"] for c in flat(got)] == [c.meta["tau_index"] for c in flat(expected)]
    assert [c.meta["temperatures"] for c in flat(got)] == [c.meta["temperatures"] for c in flat(expected)]
    assert [c.meta["sample_index"] for c in flat(got)] == [0, 1] * len(PROMPTS)
    assert [c.token_ids for c in flat(got)] == [c.token_ids for c in flat(expected)]
    for a, b in zip(flat(got), flat(expected), strict=True):
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-4, rtol=0)
    taus = {c.meta["temperatures"][0] for c in flat(got)}
    assert len(taus) >= 2 and taus - {0.0}, taus  # the test can fail: several temperatures, some sampled
    # the choice is the head's argmax over an unpadded forward of each prompt
    for prompt, completions in zip(PROMPTS, got, strict=True):
        argmax = int(head_probs(model, tokenizer, head, prompt).argmax())
        assert {c.meta["tau_index"][0] for c in completions} == {argmax}


def test_greedy_at_tau_0_whatever_the_requested_temperature(model, tokenizer):
    head = AdaptiveDecoder(model.config.hidden_size)  # uniform: the argmax is the lowest, tau = 0
    wrapper = HeadTemperatureEngine(HFEngine(model, tokenizer), model, tokenizer, head, sample=False)
    got = wrapper.generate(PROMPTS[:3], SamplingParams(temperature=1.0, max_new_tokens=10, n=2, seed=3))
    greedy = HFEngine(model, tokenizer).generate(
        PROMPTS[:3], SamplingParams(temperature=0, max_new_tokens=10)
    )
    for completions, [reference] in zip(got, greedy, strict=True):
        assert [c.token_ids for c in completions] == [reference.token_ids] * 2
        assert all(c.meta["temperatures"] == [0.0] for c in completions)


@pytest.mark.parametrize("per_prompt_seeds", [False, True])
def test_a_sampling_head_follows_its_distribution_and_is_seeded(model, tokenizer, per_prompt_seeds):
    head = random_head(model.config.hidden_size, scale=0.3)  # spread: most temperatures have mass
    prompts = PROMPTS[:2]
    sampling = SamplingParams(max_new_tokens=4, n=3000, seed=11, per_prompt_seeds=per_prompt_seeds)
    inner = EchoEngine()
    wrapper = HeadTemperatureEngine(inner, model, tokenizer, head)
    first = wrapper.generate(prompts, sampling)
    assert [[c.meta["tau_index"] for c in cs] for cs in wrapper.generate(prompts, sampling)] == [
        [c.meta["tau_index"] for c in cs] for cs in first
    ]
    other = wrapper.generate(prompts, replace(sampling, seed=12))
    assert [c.meta["tau_index"] for c in flat(other)] != [c.meta["tau_index"] for c in flat(first)]
    for prompt, completions in zip(prompts, first, strict=True):
        counts = Counter(c.meta["tau_index"][0] for c in completions)
        frequencies = torch.tensor(
            [counts[k] / sampling.n for k in range(len(head.temperatures))], dtype=torch.float64
        )
        expected = head_probs(model, tokenizer, head, prompt)
        assert (expected > 0.05).sum() >= 3  # not a near-deterministic head
        torch.testing.assert_close(frequencies, expected.double(), atol=0.03, rtol=0)
    if per_prompt_seeds:  # a prompt's choices do not depend on the other prompts of the call
        alone = wrapper.generate(prompts[1:], sampling)
        assert [c.meta["tau_index"] for c in alone[0]] == [c.meta["tau_index"] for c in first[1]]


@pytest.mark.parametrize("per_prompt_seeds", [False, True])
def test_samples_come_back_in_order_at_their_temperature_with_unshared_streams(
    model, tokenizer, per_prompt_seeds
):
    head = random_head(model.config.hidden_size, scale=0.3)
    inner = EchoEngine()
    wrapper = HeadTemperatureEngine(inner, model, tokenizer, head)
    sampling = SamplingParams(temperature=0.5, n=5, seed=2, per_prompt_seeds=per_prompt_seeds)
    results = wrapper.generate(PROMPTS, sampling)
    assert len(results) == len(PROMPTS)
    assert any(len({c.meta["tau_index"][0] for c in cs}) > 1 for cs in results)  # some prompts split
    for prompt, completions in zip(PROMPTS, results, strict=True):
        assert len(completions) == sampling.n
        for j, completion in enumerate(completions):
            prompt_id, temperature, _, _ = completion.text.split("|")
            [k] = completion.meta["tau_index"]
            assert prompt_id == completion.prompt_id == prompt.id
            assert float(temperature) == head.temperatures[k] and completion.meta["temperatures"] == [
                head.temperatures[k]
            ]
            assert completion.meta["sample_index"] == j
        # within one temperature a prompt's samples keep their order (inner sample index 0, 1, ...)
        by_tau: dict[int, list[int]] = {}
        for c in completions:
            by_tau.setdefault(c.meta["tau_index"][0], []).append(int(c.text.split("|")[2]))
        assert all(inner_ids == list(range(len(inner_ids))) for inner_ids in by_tau.values())
    assert sum(len(ps) * s.n for ps, s in inner.calls) == len(PROMPTS) * sampling.n
    assert {s.temperature for _, s in inner.calls} <= set(head.temperatures)
    if per_prompt_seeds:  # (seed, prompt id, inner sample index): one stream per sample
        streams = [(s.seed, p.id, j) for ps, s in inner.calls for p in ps for j in range(s.n)]
    else:  # vLLM's and OpenAI's request seeds, seed + request: distinct over the whole generate
        streams = [s.seed + r for ps, s in inner.calls for r in range(len(ps) * s.n)]
    assert len(set(streams)) == len(streams)


def test_per_prompt_seeds_keep_an_unsplit_prompt_on_the_calls_own_seed(model, tokenizer):
    inner = EchoEngine()
    head = random_head(model.config.hidden_size)
    wrapper = HeadTemperatureEngine(inner, model, tokenizer, head, sample=False)
    wrapper.generate(PROMPTS, SamplingParams(n=3, seed=9, per_prompt_seeds=True))
    assert {s.seed for _, s in inner.calls} == {9} and len(inner.calls) >= 2


def test_a_token_level_head_and_mismatches_are_refused(model, tokenizer):
    token_head = AdaptiveDecoder(model.config.hidden_size, level=Level.TOKEN)
    with pytest.raises(ValueError, match="sequence-level heads only.*hidden state.*logits processors"):
        HeadTemperatureEngine(HFEngine(model, tokenizer), model, tokenizer, token_head)
    with pytest.raises(ValueError, match="hidden states of size 8"):
        HeadTemperatureEngine(HFEngine(model, tokenizer), model, tokenizer, AdaptiveDecoder(8))
    head = AdaptiveDecoder(model.config.hidden_size)
    with pytest.raises(ValueError, match="its own temperature_head"):
        HeadTemperatureEngine(HFEngine(model, tokenizer, temperature_head=head), model, tokenizer, head)
    wrapper = HeadTemperatureEngine(EchoEngine(), model, tokenizer, head)
    assert wrapper.generate([], SamplingParams()) == []


# --- vLLM (GPU) --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_vllm_samples_at_the_heads_argmax_temperature(tmp_path, tokenizer):
    """A tiny Llama (head_dim 64) served by vLLM: the wrapper's choices are the head's argmax over HF
    hidden states, each prompt's samples are vLLM's own at that temperature (per-prompt seeds), tau = 0
    is vLLM's greedy decoding, and a sampling head is seeded."""
    pytest.importorskip("vllm", reason="needs vLLM")
    from transformers import LlamaConfig, LlamaForCausalLM

    from selftaught.engines.vllm import VLLMEngine
    from selftaught.models.io import save_model

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).float().eval()
    directory = str(save_model(model, tokenizer, tmp_path / "model"))
    inner = VLLMEngine(directory, dtype="float32", max_model_len=256, gpu_memory_utilization=0.3)
    head = random_head(config.hidden_size)
    wrapper = HeadTemperatureEngine(inner, model, tokenizer, head, sample=False)
    sampling = SamplingParams(max_new_tokens=12, n=2, seed=5, per_prompt_seeds=True)
    results = wrapper.generate(PROMPTS, sampling)
    for prompt, completions in zip(PROMPTS, results, strict=True):
        argmax = int(head_probs(model, tokenizer, head, prompt).argmax())
        assert [c.meta["tau_index"] for c in completions] == [[argmax]] * 2
        assert all(c.prompt_id == prompt.id for c in completions)
        # per-prompt seeds: the samples vLLM draws for this prompt alone at that temperature
        [alone] = inner.generate([prompt], replace(sampling, temperature=head.temperatures[argmax]))
        assert [c.token_ids for c in completions] == [c.token_ids for c in alone]
    assert len({c.meta["tau_index"][0] for c in flat(results)}) >= 2
    at_0 = AdaptiveDecoder(config.hidden_size)  # uniform: the argmax is tau = 0, greedy
    greedy = HeadTemperatureEngine(inner, model, tokenizer, at_0, sample=False).generate(PROMPTS, sampling)
    reference = inner.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=12))
    for completions, [expected] in zip(greedy, reference, strict=True):
        assert [c.token_ids for c in completions] == [expected.token_ids] * 2
    sampler = HeadTemperatureEngine(inner, model, tokenizer, head)
    first = sampler.generate(PROMPTS, sampling)
    again = sampler.generate(PROMPTS, sampling)
    assert [c.token_ids for c in flat(first)] == [c.token_ids for c in flat(again)]
    assert [c.meta["tau_index"] for c in flat(first)] == [c.meta["tau_index"] for c in flat(again)]
