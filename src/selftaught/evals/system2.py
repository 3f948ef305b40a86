"""Greedy accuracy and generated tokens of the System 2 world's two formats (`world.system2`).

`mode_accuracy` answers `num` questions of a task as `<s1>` or `<s2>` and reports accuracy (a
missing or unparseable answer is wrong, and counted), its standard error, the parse rate and the
mean number of generated tokens. For the judge task it asks every pair in both orders and also
reports `inconsistent`: the share of pairs whose verdict does not follow the swap (the same letter
in both orders, or an unparseable verdict in either).
"""

from __future__ import annotations

from typing import Any

from selftaught.engines.base import Engine, SamplingParams
from selftaught.evals.accuracy import mean_and_stderr
from selftaught.types import Prompt
from selftaught.world.system2 import Question, extract_final, questions, swapped, user_turn

MAX_NEW_TOKENS = 96
"""Longer than any scratchpad of the world (a six-word judge: about 60 tokens)."""


def answer(
    engine: Engine, items: list[Question], mode: str, sampling: SamplingParams
) -> list[list[tuple[str | None, int]]]:
    """Per question, `sampling.n` pairs `(final answer or None, generated tokens)` of the `mode` format."""
    prompts = [Prompt(q.id, [{"role": "user", "content": user_turn(q, mode)}], task=q.task) for q in items]
    samples = engine.generate(prompts, sampling)
    return [
        [(extract_final(q.task, c.text), c.num_tokens) for c in completions]
        for q, completions in zip(items, samples, strict=True)
    ]


def mode_accuracy(
    engine: Engine, task: str, mode: str, split: str, num: int, seed: int = 0
) -> dict[str, Any]:
    """Greedy accuracy, stderr, parse rate and mean tokens of `mode` on `num` questions of `task`."""
    items = questions(task, split, num, seed)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    outputs = [o[0] for o in answer(engine, items, mode, greedy)]
    correct = [float(final == q.answer) for (final, _), q in zip(outputs, items, strict=True)]
    accuracy, stderr = mean_and_stderr(correct)
    result = {
        "accuracy": accuracy,
        "stderr": stderr,
        "parsed": sum(final is not None for final, _ in outputs) / len(items),
        "tokens": sum(tokens for _, tokens in outputs) / len(items),
    }
    if task == "judge":
        flipped = [o[0] for o in answer(engine, [swapped(q) for q in items], mode, greedy)]
        result["inconsistent"] = sum(
            not _consistent(a, b) for (a, _), (b, _) in zip(outputs, flipped, strict=True)
        ) / len(items)
    return result


def _consistent(verdict: str | None, swapped_verdict: str | None) -> bool:
    return verdict is not None and swapped_verdict is not None and verdict != swapped_verdict


def world_summary(engine: Engine, split: str, num: int, seed: int = 0) -> dict[str, float]:
    """`<task>_<mode>_<metric>` for every task and mode (the pretraining's validation and summary)."""
    return {
        f"{task}_{mode}_{metric}": value
        for task in ("letters", "swaps", "judge")
        for mode in ("s1", "s2")
        for metric, value in mode_accuracy(engine, task, mode, split, num, seed).items()
    }
