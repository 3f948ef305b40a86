"""The records that flow between stages: prompts, completions, scores, pairs, judgments.

Plain dataclasses with no torch inside, so they serialise to JSON lines and back without loss
(`to_dict` / `from_dict`). On disk, datasets use the TRL vocabulary (`messages`, `prompt`,
`chosen`, `rejected`); these records are what the library passes around in memory and what its
own stages write.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # Python 3.10

    class StrEnum(str, Enum):
        """Enum whose members are strings (`enum.StrEnum` of Python 3.11+)."""

        def __str__(self) -> str:
            return str(self.value)


Message = dict[str, str]
"""One chat turn: `{"role": "system" | "user" | "assistant", "content": str}`."""

R = TypeVar("R", bound="Record")


class Record:
    """Mixin: JSON round-trip for the dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any]) -> R:
        """Build the record from a dict; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; expected some of {sorted(names)}")
        kwargs = dict(data)
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            nested = _NESTED.get((cls.__name__, f.name))
            if nested is not None and kwargs.get(f.name) is not None:
                value = kwargs[f.name]
                kwargs[f.name] = (
                    [nested.from_dict(v) for v in value]
                    if isinstance(value, list)
                    else nested.from_dict(value)
                )
        return cls(**kwargs)

    @classmethod
    def from_json(cls: type[R], line: str) -> R:
        return cls.from_dict(json.loads(line))


@dataclass
class Prompt(Record):
    """A task put to a model."""

    id: str
    """Stable identifier; completions, scores and pairs refer to it."""
    messages: list[Message]
    """The conversation so far, ending with the user turn the model must answer."""
    text: str | None = None
    """Raw prompt text for completion-style use of base models (few-shot prompts). When set,
    engines prompt with it as is (BOS added) instead of rendering `messages` with a chat template."""
    answer: str | None = None
    """Reference answer when one is known (verifiable tasks); `None` for open-ended ones."""
    task: str = "default"
    """Task name; a `Rubric` routes rewards by it in mixed batches."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Provenance and anything else: source id, difficulty level, generator, seed."""


@dataclass
class Completion(Record):
    """One sampled answer to a prompt."""

    prompt_id: str
    """`Prompt.id` this answers."""
    text: str
    """Decoded completion (without the prompt, stop string removed)."""
    token_ids: list[int] = field(default_factory=list)
    """Generated token ids, including the end-of-sequence token when one was produced."""
    logprobs: list[float] | None = None
    """Per-token log-probabilities of `token_ids` under the generator (temperature 1, unprocessed
    logits), or `None` when the engine cannot provide them."""
    finish_reason: str = "stop"
    """`"stop"` (end-of-sequence token or stop string) or `"length"` (hit `max_new_tokens`)."""
    policy_version: int = 0
    """Optimizer step of the weights that generated this (on-policy bookkeeping, staleness)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Sample index, seed, engine name, and similar provenance."""

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@dataclass
class Score(Record):
    """The result of a verifier, reward model or judge for one completion.

    `value` is `None` when the scorer could not score (parse failure, task not applicable):
    callers count these and never replace them with 0 silently.
    """

    value: float | None
    """The scalar reward, or `None` = could not score."""
    breakdown: dict[str, float | None] = field(default_factory=dict)
    """Per-component values when the score combines several functions (a `Rubric`)."""
    rationale: str | None = None
    """Free text behind the score (a judge's reasoning, a parser's complaint)."""


@dataclass
class Pair(Record):
    """A preference pair for DPO-style training (TRL's `prompt` / `chosen` / `rejected`)."""

    prompt: Prompt
    chosen: Completion
    rejected: Completion
    meta: dict[str, Any] = field(default_factory=dict)
    """How the pair was built: rule (`correct_vs_incorrect`, `best_vs_worst`, ...), rewards."""


@dataclass
class Judgment(Record):
    """An LLM judge's verdict on one or two responses.

    Pairwise: `verdict` is `"A"`, `"B"` or `"tie"` (as presented, i.e. after any order swap);
    pointwise: `scores` holds one number. Anything the parser could not read is `None`,
    with the `raw` text kept for inspection.
    """

    prompt_id: str
    raw: str
    """The judge's full output."""
    verdict: str | None = None
    scores: list[float] | None = None
    swapped: bool = False
    """True when the responses were shown in reversed order (position-bias evaluation)."""
    template: str = ""
    """Versioned name of the judge template, e.g. `j1-pairwise-verdict@1`."""
    meta: dict[str, Any] = field(default_factory=dict)


_NESTED: dict[tuple[str, str], type[Record]] = {
    ("Pair", "prompt"): Prompt,
    ("Pair", "chosen"): Completion,
    ("Pair", "rejected"): Completion,
}
