"""An engine whose replies are a Python function of the prompt: the tiny world's oracle teachers and
annotators (a program that knows the answer stands in for a strong model), behind the same
`generate` as any model, so a pipeline runs unchanged on either.

    teacher = ProgramEngine(lambda prompt, rng: teacher_reply(prompt_text(prompt), rng), tokenizer)

The reply function gets a `random.Random` seeded by `(sampling.seed, prompt.id, sample index)`, so
samples depend on neither batching nor the other prompts. With a tokenizer, completions carry the
token ids of their text (so `num_tokens` counts what a model would have generated); without one,
no token ids.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from selftaught.engines.base import SamplingParams
from selftaught.types import Completion, Prompt

Reply = Callable[[Prompt, random.Random], str]


class ProgramEngine:
    """`generate` by calling `reply(prompt, rng)` once per sample (Engine Protocol)."""

    def __init__(self, reply: Reply, tokenizer: Any = None) -> None:
        self.reply = reply
        self.tokenizer = tokenizer

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        return [[self._sample(prompt, sampling, j) for j in range(sampling.n)] for prompt in prompts]

    def _sample(self, prompt: Prompt, sampling: SamplingParams, index: int) -> Completion:
        text = self.reply(prompt, random.Random(f"{sampling.seed}|{prompt.id}|{index}"))
        ids = (
            []
            if self.tokenizer is None
            else list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        )
        return Completion(prompt_id=prompt.id, text=text, token_ids=ids, finish_reason="stop")


def prompt_text(prompt: Prompt) -> str:
    """The text a program reads: the raw text when set, else the last user turn."""
    if prompt.text is not None:
        return prompt.text
    return next(m["content"] for m in reversed(prompt.messages) if m["role"] == "user")
