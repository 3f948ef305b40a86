"""Rollouts become training examples exactly as the engines rendered their prompts."""

from selftaught.data.chat import encode_text, render_prompt
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.models.io import load_model
from selftaught.train.online import rollout_examples
from selftaught.types import Prompt


def test_rollout_examples_are_the_engines_own_sequences_for_chat_and_raw_text_prompts(tiny_model_dir):
    model, tokenizer = load_model(tiny_model_dir)
    engine = HFEngine(model, tokenizer)
    prompts = [
        Prompt(id="chat", messages=[{"role": "user", "content": "12+7"}]),
        Prompt(id="text", messages=[], text="12+7="),
    ]
    for prompt, expected_prompt in zip(
        prompts,
        [render_prompt(tokenizer, prompts[0].messages), encode_text(tokenizer, "12+7=", add_bos=True)],
        strict=True,
    ):
        assert engine.encode_prompt(prompt) == expected_prompt
        completions = engine.generate(
            [prompt], SamplingParams(temperature=1.0, n=2, max_new_tokens=5, seed=0)
        )[0]
        examples = rollout_examples(tokenizer, prompt, completions)
        for (ids, mask), completion in zip(examples, completions, strict=True):
            assert ids == expected_prompt + completion.token_ids
            assert mask == [False] * len(expected_prompt) + [True] * len(completion.token_ids)
