"""The one generation interface every recipe uses.

An engine turns prompts into sampled completions with token ids and per-token log-probabilities.
It can live in-process (`HFEngine`), be a vLLM instance, or a remote OpenAI-compatible server; a
recipe only sees `Engine.generate`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from selftaught.types import Completion, Prompt


@dataclass
class SamplingParams:
    """How to sample. Defaults follow the online-RL paper (temperature 1, top-p 1)."""

    temperature: float = 1.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass; 1.0 disables it."""
    max_new_tokens: int = 256
    """Hard cap on generated tokens; a completion that hits it has `finish_reason == "length"`."""
    n: int = 1
    """Samples per prompt."""
    stop: list[str] = field(default_factory=list)
    """Stop strings: generation of a sequence ends at the first one, which is cut from the text."""
    seed: int = 0
    """Seed of the sampling randomness; same seed, prompts and weights give the same samples."""
    top_logprobs: int = 0
    """Also return, per generated token, the `top_logprobs` most likely tokens and their logprobs under
    the unprocessed distribution, in `Completion.meta["top_logprobs"]` as `[[token_id, logprob], ...]`
    per token, most likely first. Only engines with `supports_top_logprobs` (`HFEngine`) compute them."""
    per_prompt_seeds: bool = False
    """Sample j of prompt p draws its randomness from its own stream, keyed by `(seed, p.id, j)`
    (`sample_key`): a prompt's samples then do not depend on the other prompts of the call or on
    batching, so data-parallel ranks that split the prompts sample what one process does."""

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"sampling.temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.top_logprobs < 0:
            raise ValueError(f"sampling.top_logprobs must be >= 0, got {self.top_logprobs}")
        if self.n < 1:
            raise ValueError(f"sampling.n must be >= 1, got {self.n}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError(f"sampling.stop must hold non-empty strings, got {self.stop!r}")


@runtime_checkable
class Engine(Protocol):
    """Generates completions. `result[i][j]` is the j-th of `sampling.n` samples for `prompts[i]`."""

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]: ...


@runtime_checkable
class ReloadableEngine(Protocol):
    """An engine that can serve the weights of a saved model directory (`selftaught serve`'s reload).

    Two steps, so that the slow one does not pause generation: `load_checkpoint` loads and checks
    the directory while the engine keeps serving, then `sync_weights` swaps the weights in between
    two `generate` calls. `HFEngine` is one.
    """

    def load_checkpoint(self, directory: str) -> Any:
        """The model saved in `directory`, checked to fit this engine; ValueError when it does not."""

    def sync_weights(self, source_model: Any, policy_version: int) -> None:
        """Serve `source_model`'s weights from now on, stamping samples `policy_version`."""


@runtime_checkable
class CancellableEngine(Protocol):
    """An engine that can stop work on prompts nobody waits for any more (`selftaught serve`'s clients
    that hung up). `HFEngine` is one.

    `cancelled(i)` is polled while `prompts[i]` is generated; once it is True the prompt's samples
    stop where they are (`finish_reason` "abort", text possibly cut short) and free their share of
    the batch. The other prompts' completions are those `generate` returns when they are greedy or
    keyed per prompt (`per_prompt_seeds`); otherwise they are samples from a shifted random stream.
    """

    def generate_cancellable(
        self, prompts: list[Prompt], sampling: SamplingParams, cancelled: Callable[[int], bool]
    ) -> list[list[Completion]]: ...


TokenListener = Callable[[int, int, int, float, "list[list[Any]] | None"], None]
"""Told `(prompt index, sample index, token id, logprob, top alternatives or None)` of every token as
it is generated (`HFEngine.generate_cancellable`'s `on_token`, for `selftaught serve`'s streams)."""


class ServerError(RuntimeError):
    """A generation server could not be reached or refused a request after its retries: a problem of
    the deployment the user named (its address, key, limits), reported as one line by the CLI."""


def sample_key(seed: int, prompt_id: str, sample_index: int) -> int:
    """The 32-bit key of sample `sample_index` of prompt `prompt_id` (`SamplingParams.per_prompt_seeds`)."""
    digest = hashlib.sha256(f"{seed}|{prompt_id}|{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")
