"""A fake engine for unit tests: canned responses, every call recorded, no model."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from selftaught.engines.base import SamplingParams
from selftaught.types import Completion, Prompt

Script = dict[str, list[str]] | Callable[[Prompt, int], str]
"""Prompt id -> responses (cycled when `n` exceeds them), or `(prompt, sample_index) -> response`."""


class ScriptedCall(NamedTuple):
    """One `generate` call as the engine received it."""

    prompts: list[Prompt]
    sampling: SamplingParams


class ScriptedEngine:
    """Answers from a script, so tests of judges, rewards and recipes control what the model says.

    Completions carry only text: `token_ids` empty, `logprobs` None, `finish_reason` "stop"; stop
    strings are not applied. `calls` records every `generate` call in order.
    """

    def __init__(self, script: Script) -> None:
        if isinstance(script, dict):
            empty = sorted(prompt_id for prompt_id, responses in script.items() if not responses)
            if empty:
                raise ValueError(f"script has no responses for prompt id(s) {empty}; give each at least one")
        self.script = script
        self.calls: list[ScriptedCall] = []

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """`result[i][j]` is the scripted j-th response to `prompts[i]` (Engine Protocol)."""
        self.calls.append(ScriptedCall(list(prompts), sampling))
        return [
            [
                Completion(
                    prompt_id=prompt.id,
                    text=self._respond(prompt, j),
                    finish_reason="stop",
                    meta={"sample_index": j, "seed": sampling.seed},
                )
                for j in range(sampling.n)
            ]
            for prompt in prompts
        ]

    def _respond(self, prompt: Prompt, sample_index: int) -> str:
        if callable(self.script):
            return self.script(prompt, sample_index)
        if prompt.id not in self.script:
            raise KeyError(f"ScriptedEngine has no responses for prompt id {prompt.id!r}")
        responses = self.script[prompt.id]
        return responses[sample_index % len(responses)]
