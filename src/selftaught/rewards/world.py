"""The tiny world's verifiable reward: the exact final answer of an arithmetic problem."""

from __future__ import annotations

from typing import Any

from selftaught.rewards.base import TextOrChat, check_column, completion_text
from selftaught.world.arith import extract_answer


def world_answer_reward(
    prompts: list[TextOrChat], completions: list[TextOrChat], answer: list[str | int | None], **columns: Any
) -> list[float | None]:
    """1.0 when the first `Answer: N` of the completion is the reference integer, 0.0 when it differs
    or is missing (TINYWORLD.md: reward = exact answer); None when the reference is not an integer.

    >>> world_answer_reward(["33-25-7"] * 3, ["33-25=8 8-7=1 Answer: 1", "Answer: 2", "8-7=1"], ["1"] * 3)
    [1.0, 0.0, 0.0]
    """
    check_column("answer", answer, len(completions), "world_answer_reward")
    rewards: list[float | None] = []
    for completion, gold in zip(completions, answer, strict=True):
        reference = _as_int(gold)
        predicted = extract_answer(completion_text(completion))
        rewards.append(None if reference is None else float(predicted == reference))
    return rewards


def _as_int(value: str | int | None) -> int | None:
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None
