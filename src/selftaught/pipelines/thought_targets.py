"""Mixed System-1 / System-2 distillation (papers_A.md §2.1 steps 6-7): training targets with control
instructions, the three inference modes, and an evaluator that reports accuracy and generated tokens.

Targets (`build_targets`), one SFT conversation per selected trace:
    s2               <think>THINK</think>ANSWER, the question + the think instruction
    s1               ANSWER, the question + the no-think instruction
    random_mix       s2 with probability p, else s1 (seeded per record)
    difficulty_mix   s2 where the weak model disagreed (`agree` is False), s1 elsewhere (an unknown
                     `agree` counts as agreeing, and is counted)
The instruction appended to the question always matches the example's target type.

Inference modes (`mode_prompt`):
    no_think   question + the no-think instruction
    think      question + the think instruction, the assistant turn pre-filled with `<think>`
    adaptive   question + the adaptive instruction (the think one by default), nothing pre-filled:
               the model decides whether to open a think block
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from selftaught.data.chat import apply_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.evals.accuracy import mean_and_stderr
from selftaught.pipelines.natural_thoughts import THINK_CLOSE, THINK_OPEN, AnswerFormat
from selftaught.types import Prompt, StrEnum

Record = dict[str, Any]


class TargetMode(StrEnum):
    S2 = "s2"
    S1 = "s1"
    RANDOM_MIX = "random_mix"
    DIFFICULTY_MIX = "difficulty_mix"


class InferenceMode(StrEnum):
    NO_THINK = "no_think"
    THINK = "think"
    ADAPTIVE = "adaptive"


@dataclass(frozen=True)
class Controls:
    """The control instructions appended to the question (`{k}`: `think_words`)."""

    no_think: str = " Answer directly, without thinking."
    think: str = " Think carefully, in about {k} words, then answer."
    adaptive: str | None = None
    """None: the think instruction without the `<think>` pre-fill (the paper's Adaptive-Think)."""
    think_words: int = 3500
    """K: the mean length of the System-2 training responses (3500 in the paper)."""

    def instruction(self, think: bool) -> str:
        return self.think.format(k=self.think_words) if think else self.no_think

    def mode_instruction(self, mode: InferenceMode) -> str:
        if mode == InferenceMode.ADAPTIVE and self.adaptive is not None:
            return self.adaptive.format(k=self.think_words)
        return self.instruction(mode != InferenceMode.NO_THINK)


def uses_s2(record: Record, mode: TargetMode, p: float, rng: random.Random) -> bool:
    """Whether `record` gets the System-2 target under `mode` (`rng` draws random_mix's coin)."""
    if mode == TargetMode.RANDOM_MIX:
        return rng.random() < p
    if mode == TargetMode.DIFFICULTY_MIX:
        return record.get("agree") is False
    return mode == TargetMode.S2


def build_targets(
    records: Sequence[Record], mode: TargetMode, controls: Controls, *, p: float = 0.5, seed: int = 0
) -> tuple[list[Record], dict[str, float]]:
    """SFT records `{id, messages, target}` for `records` (each with `question`, `think`, `response`),
    and counts of s1 / s2 targets (and of unknown `agree` under difficulty_mix)."""
    mode = TargetMode(mode)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p (random_mix's System-2 share) must be in [0, 1], got {p}")
    rng = random.Random(seed)
    out = []
    for record in records:
        s2 = uses_s2(record, mode, p, rng)
        reply = (
            f"{THINK_OPEN}{record['think']}{THINK_CLOSE}{record['response']}" if s2 else record["response"]
        )
        user = record["question"] + controls.instruction(s2)
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        out.append({"id": record["id"], "messages": messages, "target": "s2" if s2 else "s1"})
    counts = {
        "s2": float(sum(r["target"] == "s2" for r in out)),
        "s1": float(sum(r["target"] == "s1" for r in out)),
    }
    if mode == TargetMode.DIFFICULTY_MIX:
        counts["agree_unknown"] = float(sum(r.get("agree") is None for r in records))
    return out, counts


def mode_prompt(tokenizer: Any, record: Record, mode: InferenceMode, controls: Controls) -> Prompt:
    """The prompt of `record` under `mode`; `think` pre-fills the assistant turn with `<think>`."""
    messages = [{"role": "user", "content": record["question"] + controls.mode_instruction(mode)}]
    text = None
    if mode == InferenceMode.THINK:
        text = apply_template(tokenizer, messages, add_generation_prompt=True) + THINK_OPEN
    return Prompt(id=str(record["id"]), messages=messages, text=text, answer=str(record["answer"]))


def final_answer_text(full: str) -> str | None:
    """The part of a reply that holds the answer: after `</think>`; the whole reply when it opens no
    think block; None when a think block is left open (no answer given)."""
    stripped = full.lstrip()
    if THINK_CLOSE in stripped:
        return stripped.split(THINK_CLOSE, 1)[1]
    return None if stripped.startswith(THINK_OPEN) else stripped


def evaluate_modes(
    engine: Engine,
    tokenizer: Any,
    records: Sequence[Record],
    modes: Sequence[InferenceMode],
    controls: Controls,
    answers: AnswerFormat,
    *,
    max_new_tokens: int,
    group_field: str | None = "level",
    hard_level: int | None = None,
) -> dict[str, Any]:
    """Greedy replies to `records` (`question`, `answer`) in each mode: accuracy (+- se), mean generated
    tokens and the share of replies that think (open `<think>`: always, in think mode), overall and per
    `group_field` value; with
    `hard_level`, also `hard`: the records whose `group_field` value is >= it."""
    sampling = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    results: dict[str, Any] = {}
    for mode in map(InferenceMode, modes):
        prompts = [mode_prompt(tokenizer, r, mode, controls) for r in records]
        completions = [c[0] for c in engine.generate(prompts, sampling)]
        rows = [
            _score(r, c.text, c.num_tokens, mode, answers, group_field)
            for r, c in zip(records, completions, strict=True)
        ]
        results[str(mode)] = {"all": _summary(rows), **_by_group(rows)}
        if hard_level is not None:
            results[str(mode)]["hard"] = _summary(
                [r for r in rows if r["group"] is not None and r["group"] >= hard_level]
            )
    return results


def _score(
    record: Record,
    text: str,
    num_tokens: int,
    mode: InferenceMode,
    answers: AnswerFormat,
    group_field: str | None,
) -> Record:
    full = THINK_OPEN + text if mode == InferenceMode.THINK else text
    answer_text = final_answer_text(full)
    predicted = None if answer_text is None else answers.extract(answer_text)
    correct = predicted is not None and answers.equal(predicted, record["answer"])
    return {
        "correct": float(correct),
        "tokens": float(num_tokens),
        "thinks": float(full.lstrip().startswith(THINK_OPEN)),
        "group": None if group_field is None else record.get(group_field),
    }


def _summary(rows: list[Record]) -> dict[str, float]:
    if not rows:
        return {"n": 0.0}
    accuracy, se = mean_and_stderr([r["correct"] for r in rows])
    return {
        "n": float(len(rows)),
        "accuracy": accuracy,
        "accuracy_se": se,
        "mean_tokens": float(np.mean([r["tokens"] for r in rows])),
        "think_rate": float(np.mean([r["thinks"] for r in rows])),
    }


def _by_group(rows: list[Record]) -> dict[str, dict[str, float]]:
    groups = sorted({r["group"] for r in rows if r["group"] is not None}, key=str)
    return {f"group={g}": _summary([r for r in rows if r["group"] == g]) for g in groups}
