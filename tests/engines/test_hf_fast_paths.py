"""HFEngine's fast paths give what the plain paths give: scratch buffers, the top-k nucleus, finished
rows kept in the batch, prefill groups, the in-place KV cache (grown when full; also on
sliding-window layers)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

from selftaught.engines import hf, kv_cache, sampling
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.kv_cache import prefill_groups, supports_buffered_cache
from selftaught.engines.sampling import Scratch, nucleus_probs, sample_next_tokens
from selftaught.types import Completion, Prompt


def reference_nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """The nucleus by a full sort of every row (the engine's path before the top-k one)."""
    probs = logits.softmax(-1)
    if top_p >= 1:
        return probs
    sorted_probs, order = probs.sort(-1, descending=True)
    mass_before = sorted_probs.cumsum(-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


def reference_sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator):
    """Tokens and logprobs as the engine drew them before its fast paths: fresh tensors throughout."""
    probs = reference_nucleus(logits / params.temperature, params.top_p)
    cdf = probs.cumsum(-1)
    total = cdf[:, -1:]
    uniform = torch.rand(total.shape, generator=generator, dtype=probs.dtype)
    target = (uniform * total).minimum(total.nextafter(torch.zeros_like(total)))
    tokens = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    return tokens, logits.log_softmax(-1).gather(-1, tokens[:, None]).squeeze(-1)


def mixed_logits(rows: int = 12, vocab: int = 3000) -> torch.Tensor:
    """Peaked rows (nucleus among the top-k candidates) and flat rows (nucleus past them)."""
    torch.manual_seed(0)
    scale = torch.tensor([8.0, 0.05] * (rows // 2))[:, None]
    return torch.randn(rows, vocab) * scale


@pytest.mark.parametrize("top_p", [1.0, 0.95, 0.5, 1e-6])
def test_top_k_nucleus_equals_the_full_sort(monkeypatch, top_p):
    monkeypatch.setattr(sampling, "NUCLEUS_CANDIDATES", 64)
    logits = mixed_logits()
    fast = nucleus_probs(logits, top_p)
    assert torch.equal(fast, reference_nucleus(logits, top_p))
    if top_p == 0.95:  # both paths ran: flat rows keep more than the candidates, peaked rows fewer
        kept = (fast > 0).sum(-1)
        assert kept[1::2].min() > 64 and kept[::2].max() < 64


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 1.0), (1.0, 0.9), (0.7, 0.9)])
def test_sampling_with_scratch_is_bitwise_the_plain_path(temperature, top_p):
    params = SamplingParams(temperature=temperature, top_p=top_p)
    logits = mixed_logits()
    scratch = Scratch(16, logits.shape[1], "cpu")  # more rows than the step has, as after drops
    for _ in range(3):  # reused buffers give the same results again
        fast = sample_next_tokens(logits, params, torch.Generator().manual_seed(3), scratch=scratch)
        plain = sample_next_tokens(logits, params, torch.Generator().manual_seed(3))
        expected = reference_sample(logits, params, torch.Generator().manual_seed(3))
        for got in (fast, plain):
            assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_rows_outside_drawing_take_no_random_numbers():
    logits = mixed_logits()
    drawing = torch.tensor([True, False, True, True, False, True] * 2)
    params = SamplingParams(temperature=1.0)
    tokens, logps = sample_next_tokens(logits, params, torch.Generator().manual_seed(5), drawing=drawing)
    alone = sample_next_tokens(logits[drawing], params, torch.Generator().manual_seed(5))
    assert torch.equal(tokens[drawing], alone[0]) and torch.equal(logps[drawing], alone[1])


def test_prefill_groups_bound_padding_and_cover_every_prompt():
    assert prefill_groups([5, 5, 5]) == [[0, 1, 2]]
    lengths = [60, 117, 32, 70, 110, 33, 75, 100, 74]
    groups = prefill_groups(lengths)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    assert groups[0] == [1, 4, 7, 6, 8]  # 117 110 100 75 74: 585 padded for 476 real tokens
    for group in groups:
        assert len(group) * lengths[group[0]] <= kv_cache.PREFILL_PAD_SLACK * sum(lengths[i] for i in group)
        assert lengths[group[0]] == max(lengths[i] for i in group)


def varied_prompts() -> list[Prompt]:
    texts = ["Hi", "Tell a story about the sea, with a whale and a storm and a boat.", "What is 12 + 35?"]
    texts += ["The quick brown fox jumps over the lazy dog. " * 3, "Name an animal."]
    return [Prompt(id=str(i), messages=[], text=text) for i, text in enumerate(texts)]


def outputs(results: list[list[Completion]]) -> tuple[list[list[int]], torch.Tensor]:
    completions = [c for row in results for c in row]
    return [c.token_ids for c in completions], torch.tensor([lp for c in completions for lp in c.logprobs])


def eos_biased(model: torch.nn.Module, eos_id: int) -> torch.nn.Module:
    """Rows end at EOS at different steps, so finished rows are kept or dropped."""
    bias = torch.zeros(model.config.vocab_size)
    bias[eos_id] = 3.0
    model.get_output_embeddings().register_forward_hook(lambda module, args, output: output + bias)
    return model


SAMPLED = SamplingParams(temperature=1.0, n=4, max_new_tokens=20, seed=11)


@pytest.mark.parametrize(("share", "min_rows"), [(0.0, 1), (1.0, 1), (0.5, 3)])
def test_keeping_finished_rows_changes_no_sample(monkeypatch, any_model, tokenizer, share, min_rows):
    """Dropping at once, never (share 1: rows leave only when all finished), or in batches."""
    model = eos_biased(any_model, tokenizer.eos_token_id)
    expected_ids, expected_logps = outputs(HFEngine(model, tokenizer).generate(varied_prompts(), SAMPLED))
    assert len({len(ids) for ids in expected_ids}) > 3
    monkeypatch.setattr(hf, "DROP_SHARE", share)
    monkeypatch.setattr(hf, "MIN_DROP_ROWS", min_rows)
    ids, logps = outputs(HFEngine(model, tokenizer).generate(varied_prompts(), SAMPLED))
    assert ids == expected_ids
    torch.testing.assert_close(logps, expected_logps, atol=1e-5, rtol=0)


@pytest.mark.parametrize("path", ["one prefill", "transformers cache", "cache grown every 3 steps"])
def test_prefill_groups_and_buffered_cache_change_no_sample(monkeypatch, any_model, tokenizer, path):
    model = eos_biased(any_model, tokenizer.eos_token_id)
    engine = HFEngine(model, tokenizer)
    assert engine._buffered_cache
    assert len(prefill_groups([len(engine.encode_prompt(p)) for p in varied_prompts()])) > 1
    expected_ids, expected_logps = outputs(engine.generate(varied_prompts(), SAMPLED))
    if path == "one prefill":
        monkeypatch.setattr(kv_cache, "PREFILL_PAD_SLACK", math.inf)
    elif path == "transformers cache":
        engine._buffered_cache = False
    else:
        monkeypatch.setattr(kv_cache, "CACHE_GROWTH", 3)
    ids, logps = outputs(engine.generate(varied_prompts(), SAMPLED))
    assert ids == expected_ids
    torch.testing.assert_close(logps, expected_logps, atol=1e-5, rtol=0)


def tiny_gemma3(tokenizer, sliding_window: int) -> Gemma3ForCausalLM:
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=sliding_window,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=256,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    return Gemma3ForCausalLM(config).float().eval()


@pytest.mark.parametrize("window", [128, 24])
def test_sliding_window_layers_buffered_below_the_window_else_transformers_cache(
    monkeypatch, tokenizer, window
):
    """Window 128: prompt + new tokens fit, the in-place cache is used; 24: they do not, so the
    engine keeps transformers' cache. Either way the samples are those of transformers' cache."""
    model = tiny_gemma3(tokenizer, window)
    assert supports_buffered_cache(model.config) == (True, window)
    used = []
    assemble = kv_cache.assemble_cache
    monkeypatch.setattr(hf, "assemble_cache", lambda *args: used.append(assemble(*args)) or used[-1])
    engine = HFEngine(model, tokenizer)
    ids, logps = outputs(engine.generate(varied_prompts(), SAMPLED))
    assert (used[-1] is not None) == (window == 128)
    engine._buffered_cache = False
    expected_ids, expected_logps = outputs(engine.generate(varied_prompts(), SAMPLED))
    assert ids == expected_ids
    torch.testing.assert_close(logps, expected_logps, atol=1e-5, rtol=0)
