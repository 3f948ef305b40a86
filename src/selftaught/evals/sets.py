"""Named evaluation sets: `world:<split>` (tiny-world arithmetic), `world:persona(-json)` and
`world:keywords` (DivPO's tasks: sampled outputs, validity as accuracy, diversity metrics) or a
GSM8K-format file.

`load_eval_set` gives the prompts, the checker and the decoding defaults that `selftaught eval` and
every recipe's periodic validation use, so both measure the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from selftaught.data.sources import read_records
from selftaught.evals import gsm8k
from selftaught.evals.accuracy import Checker
from selftaught.evals.diversity import compression_ratio, mean_token_nll
from selftaught.types import Completion, Prompt
from selftaught.world.arith import SPLITS, is_correct, sample_eval_set, to_prompt
from selftaught.world.keywords import keywords_prompts, keywords_stats, largest_pool, parse_keywords
from selftaught.world.persona import (
    JSON_KEYS,
    parse_persona,
    parse_persona_json,
    persona_json_prompts,
    persona_prompts,
    persona_stats,
)


@dataclass
class EvalSet:
    prompts: list[Prompt]
    is_correct: Checker
    stop: list[str] = field(default_factory=list)
    """Stop strings the format needs (few-shot prompts end at the next 'Question:')."""
    max_new_tokens: int = 64
    diversity: Callable[[list[Completion]], dict[str, float]] | None = None
    """Diversity metrics of all the samples (sets whose task asks for varied outputs)."""


def world_is_correct(prompt: Prompt, completion: Completion) -> bool:
    return prompt.answer is not None and is_correct(completion.text, int(prompt.answer))


def world_split(data: str) -> str:
    """The split of `world:<split>`; a ValueError naming `data` when it is not train, valid or test."""
    split = data.removeprefix("world:")
    if split not in SPLITS:
        raise ValueError(f"{data!r} is not a world split; use {', '.join('world:' + s for s in SPLITS)}")
    return split


PERSONA = "world:persona"
"""The persona task (DivPO): `per_level` samples of the instruction; accuracy is validity."""
PERSONA_MAX_NEW_TOKENS = 24
PERSONA_POOL = 16
"""Unique ratios are the mean over consecutive pools of this many samples (DivPO's pool size)."""


PERSONA_JSON = "world:persona-json"
"""The persona task's JSON form for real models (a raw-text prompt, one line of JSON)."""


def persona_is_valid(prompt: Prompt, completion: Completion) -> bool:
    return parse_persona(completion.text) is not None


def persona_json_is_valid(prompt: Prompt, completion: Completion) -> bool:
    return parse_persona_json(completion.text) is not None


def persona_diversity(completions: list[Completion], json_form: bool = False) -> dict[str, float]:
    """`world.persona.persona_stats` over pools of `PERSONA_POOL`, and the samples' mean token NLL."""
    parse, slots = (parse_persona_json, JSON_KEYS) if json_form else (parse_persona, None)
    pool = min(PERSONA_POOL, len(completions))
    texts = [c.text for c in completions]
    metrics = persona_stats(texts, pool_size=pool, parse=parse, **({"slots": slots} if slots else {}))
    if all(c.logprobs for c in completions):
        metrics["mean_token_nll"] = mean_token_nll([c.logprobs or [] for c in completions])
    return metrics


KEYWORDS = "world:keywords"
"""The keywords task (DivPO's graded variant): `per_level` samples, the topics in turn; accuracy is
validity, and quality and per-topic diversity are in `diversity`."""
KEYWORDS_MAX_NEW_TOKENS = 40
"""Longer than any valid output (five words of at most 7 tokens with their space)."""


def keywords_is_valid(prompt: Prompt, completion: Completion) -> bool:
    return parse_keywords(completion.text) is not None


def keywords_diversity(completions: list[Completion], topics: dict[str, str]) -> dict[str, float]:
    """`world.keywords.keywords_stats` (unique words in pools of up to 16 samples of a topic; `topics`
    maps prompt ids to topics), the mean per-topic gzip `compression_ratio` of the valid outputs
    (compressed / original: higher = more diverse) and the samples' mean token NLL."""
    texts = [c.text for c in completions]
    sample_topics = [topics[c.prompt_id] for c in completions]
    metrics = keywords_stats(texts, sample_topics, pool_size=largest_pool(sample_topics))
    ratios = []
    for topic in dict.fromkeys(sample_topics):
        valid = [
            t.strip() for t, s in zip(texts, sample_topics, strict=True) if s == topic and parse_keywords(t)
        ]
        ratios.extend([compression_ratio(valid)] if valid else [])
    metrics["compression_ratio"] = sum(ratios) / len(ratios) if ratios else 0.0
    if all(c.logprobs for c in completions):
        metrics["mean_token_nll"] = mean_token_nll([c.logprobs or [] for c in completions])
    return metrics


def load_eval_set(
    data: str,
    *,
    per_level: int = 200,
    levels: list[int] | None = None,
    limit: int | None = None,
    num_shots: int = 8,
    seed: int = 0,
) -> EvalSet:
    """`world:train|valid|test` (`per_level` problems of each of `levels`) or a GSM8K-format file."""
    if data == PERSONA:
        prompts = [
            Prompt(id=r["id"], messages=r["prompt"], task=r["task"]) for r in persona_prompts(per_level)
        ]
        return EvalSet(prompts, persona_is_valid, [], PERSONA_MAX_NEW_TOKENS, persona_diversity)
    if data == PERSONA_JSON:
        prompts = [
            Prompt(id=r["id"], messages=[], text=r["prompt"], task=r["task"])
            for r in persona_json_prompts(per_level)
        ]
        return EvalSet(prompts, persona_json_is_valid, ["\n"], 48, partial(persona_diversity, json_form=True))
    if data == KEYWORDS:
        records = keywords_prompts(per_level)
        prompts = [Prompt(r["id"], r["prompt"], task=r["task"], meta={"topic": r["topic"]}) for r in records]
        topics = {r["id"]: r["topic"] for r in records}
        return EvalSet(
            prompts,
            keywords_is_valid,
            [],
            KEYWORDS_MAX_NEW_TOKENS,
            partial(keywords_diversity, topics=topics),
        )
    if data.startswith("world:"):
        problems = sample_eval_set(world_split(data), per_level, levels or [1, 2, 3], seed)
        return EvalSet([to_prompt(p) for p in problems], world_is_correct, [], 64)
    records = read_records(data, limit=limit)
    return EvalSet(
        gsm8k.gsm8k_prompts(records, num_shots=num_shots, source=data), gsm8k.is_correct, gsm8k.STOP, 256
    )
