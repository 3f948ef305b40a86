"""The reward-function signature (TRL's) and helpers that turn TRL-style inputs into text.

A reward function scores a batch of completions:

    f(prompts, completions, **columns) -> list[float | None]

This is the signature of TRL `GRPOTrainer` reward functions, so functions move freely both ways.
`prompts[i]` and `completions[i]` are strings (TRL's standard format) or lists of chat messages
(conversational format, where a completion is `[{"role": "assistant", "content": ...}]`).
`columns` are the dataset's other columns, one entry per completion (`answer`, `task`, ...), plus
what the caller adds (TRL adds `completion_ids`, `trainer_state`, `log_extra`). A function names
the columns it needs as keyword parameters and ignores the rest through `**columns`. Callers pass
everything by keyword (`f(prompts=..., completions=..., answer=...)`), as TRL does: some TRL
functions take `completions` as their first parameter.

Entry i is the reward of completion i, or `None` when the function could not score it (a
malformed reference answer, a verifier timeout, an over-long sequence). Callers count the Nones
and never turn them into 0 silently; `selftaught.rewards.rubric.Rubric` does the counting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from selftaught.types import Completion, Message, Prompt

RewardFn = Callable[..., list[float | None]]
"""`f(prompts, completions, **columns) -> list[float | None]`, one entry per completion.

A `Callable[..., ...]` alias (as TRL's `RewardFunc`) rather than a Protocol: concrete functions
declare the columns they read as required keyword parameters (`answer`), which a Protocol with
only `**columns` would reject."""

TextOrChat = str | list[Message]
"""A prompt or completion as TRL passes it: plain text, or a list of chat messages."""


def completion_text(completion: TextOrChat) -> str:
    """The text of a completion: the string itself, or the content of its last message.

    >>> completion_text([{"role": "assistant", "content": "Answer: 4"}])
    'Answer: 4'
    """
    if isinstance(completion, str):
        return completion
    if not completion:
        raise ValueError("a conversational completion must hold at least one message, got []")
    return _content(completion[-1])


def prompt_text(prompt: TextOrChat) -> str:
    """The text of a prompt: the string itself, or the content of its last user message."""
    if isinstance(prompt, str):
        return prompt
    for message in reversed(prompt):
        if message.get("role") == "user":
            return _content(message)
    raise ValueError(
        f"a conversational prompt needs a user message, got roles {[m.get('role') for m in prompt]}"
    )


def _content(message: Message) -> str:
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        raise ValueError(f"a chat message must be a dict with a string 'content', got {message!r:.200}")
    return message["content"]


def check_column(name: str, values: Sequence[Any] | None, num: int, fn_name: str) -> Sequence[Any]:
    """`values` when it holds one entry per completion; a ValueError naming the column otherwise."""
    if values is None:
        raise ValueError(
            f"{fn_name} needs a `{name}` column (one entry per completion): add it to the dataset, "
            f"or pass {name}=[...]"
        )
    if len(values) != num:
        raise ValueError(f"{fn_name}: column `{name}` has {len(values)} entries for {num} completions")
    return values


def reward_name(fn: Callable[..., Any]) -> str:
    """The name a reward function goes by in breakdowns and metrics: `__name__`, or the class name."""
    return getattr(fn, "__name__", None) or type(fn).__name__


def trl_inputs(
    prompts: Sequence[Prompt], completions: Sequence[Completion]
) -> tuple[list[TextOrChat], list[TextOrChat], dict[str, list[Any]]]:
    """`(prompts, completions, columns)` in TRL's form for records, one prompt per completion.

    A prompt with raw `text` goes in as that string and its completion as a string; otherwise the
    prompt is its `messages` and the completion `[{"role": "assistant", "content": text}]`, as TRL
    passes conversational data. Columns: `answer`, `task`, `completion_ids`, `finish_reason`, and
    one column per key of the prompts' `meta` (None where a prompt lacks the key), so functions
    written for a dataset column can read it from `Prompt.meta`.
    """
    if len(prompts) != len(completions):
        raise ValueError(
            f"got {len(prompts)} prompts for {len(completions)} completions; pass one prompt per completion "
            "(repeat a prompt for each of its samples)"
        )
    trl_prompts: list[TextOrChat] = [p.text if p.text is not None else p.messages for p in prompts]
    trl_completions: list[TextOrChat] = [
        c.text if p.text is not None else [{"role": "assistant", "content": c.text}]
        for p, c in zip(prompts, completions, strict=True)
    ]
    columns: dict[str, list[Any]] = {
        "answer": [p.answer for p in prompts],
        "task": [p.task for p in prompts],
        "completion_ids": [c.token_ids for c in completions],
        "finish_reason": [c.finish_reason for c in completions],
    }
    for key in dict.fromkeys(key for p in prompts for key in p.meta):
        if key in columns:
            raise ValueError(
                f"Prompt.meta key {key!r} clashes with the {key!r} column filled from the records; rename it"
            )
        columns[key] = [p.meta.get(key) for p in prompts]
    return trl_prompts, trl_completions, columns
