"""A model that repeats its prompt, at almost no cost: for benchmarks and tests of the serving path.

`selftaught serve --model scripted:echo` serves it, so a throughput benchmark measures the pipeline,
the HTTP client and the server rather than a network's forward passes. The reply to a prompt is its
raw `text`, or the content of its last message, cut before the first stop string and then to
`max_new_tokens` tokens of the tiny world's tokenizer (finish reason "length" when cut there);
every sample of a prompt is the same, whatever the seed. Completions carry the reply's token ids
and zero logprobs, so usage counts and logprob requests work as with a real model.
"""

from __future__ import annotations

from typing import Any

from selftaught.engines.base import SamplingParams
from selftaught.types import Completion, Prompt

ECHO_MODEL = "scripted:echo"
"""The `--model` value of `selftaught serve` that serves an `EchoEngine`."""


class EchoEngine:
    """Replies with the prompt itself (see the module doc). Not a model: benchmarks and tests only."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """`result[i][j]`: the echo of `prompts[i]`, `sampling.n` times (Engine Protocol)."""
        return [[self._echo(prompt, sampling, j) for j in range(sampling.n)] for prompt in prompts]

    def _echo(self, prompt: Prompt, sampling: SamplingParams, sample_index: int) -> Completion:
        text = prompt.text if prompt.text is not None else str(prompt.messages[-1]["content"])
        for stop in sampling.stop or []:
            text = text.split(stop, 1)[0]
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        cut = len(ids) > sampling.max_new_tokens
        ids = ids[: sampling.max_new_tokens]
        return Completion(
            prompt_id=prompt.id,
            text=self.tokenizer.decode(ids) if cut else text,
            token_ids=ids,
            logprobs=[0.0] * len(ids),
            finish_reason="length" if cut else "stop",
            meta={"sample_index": sample_index, "seed": sampling.seed},
        )


def echo_engine() -> tuple[EchoEngine, Any]:
    """`(EchoEngine, tokenizer)` over the tiny world's tokenizer (built in memory, no download)."""
    from selftaught.world.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    return EchoEngine(tokenizer), tokenizer
