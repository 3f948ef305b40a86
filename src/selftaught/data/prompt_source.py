"""The prompts of each optimizer step of an online run, as a pure function of (seed, step).

A `PromptSource` is a pool of prompts from any data source (`selftaught.data.catalog`: the tiny
world's `world:prompts` or `world:persona-prompts`, a TRL prompt-only file whose extra columns
reach the reward functions, a GSM8K file) and a seeded order over it: step k takes the next
`per_step` prompts of an endless stream of reshuffled epochs. Resume and data-parallel ranks need
no state beyond the step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from selftaught.data.catalog import load_records
from selftaught.data.formats import prompts_from_records
from selftaught.data.order import batch_indices
from selftaught.types import Prompt


@dataclass
class PromptSource:
    pool: list[Prompt]
    per_step: int
    seed: int

    def __post_init__(self) -> None:
        if not self.pool:
            raise ValueError("the prompt source is empty; give it at least one prompt")

    def at(self, step: int) -> list[Prompt]:
        """The prompts of optimizer step `step` (1-based)."""
        indices = batch_indices((step - 1) * self.per_step, self.per_step, len(self.pool), self.seed)
        return [self.pool[i] for i in indices]


def load_prompt_source(
    spec: str,
    *,
    per_step: int,
    seed: int,
    pool_size: int,
    levels: Sequence[int] = (1, 2, 3),
    num_shots: int = 0,
    limit: int | None = None,
) -> PromptSource:
    """The prompts of `spec` (world sources: `pool_size` records, its `num` option, e.g. problems of
    `levels` for `world:prompts`; a world source takes only the options it has, so `levels` does not
    reach `world:persona-prompts`; files: the first `limit` records) in the order of `seed`. GSM8K
    records become few-shot raw-text prompts when `num_shots` > 0."""
    records = load_records(spec, limit=limit, num=pool_size, levels=levels, seed=seed)
    return PromptSource(prompts_from_records(records, spec, num_shots=num_shots), per_step, seed)
