"""Named evaluation sets: `world:<split>` (tiny-world arithmetic), `world:persona(-json)` and
`world:keywords` (DivPO's tasks: sampled outputs, validity as accuracy, diversity metrics),
`world:lpo` (adaptive decoding's MATH + STORY mix: mean reward as accuracy, per-type rewards),
`world:lpo-cstory` (the same with constrained stories) or a
GSM8K-format file. `fixed_temperature_sweep` measures a model's MATH accuracy and STORY quality at
fixed temperatures (the baselines of a learned temperature head).

`load_eval_set` gives the prompts, the checker and the decoding defaults that `selftaught eval` and
every recipe's periodic validation use, so both measure the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from selftaught.data.sources import read_records
from selftaught.engines.base import Engine, SamplingParams
from selftaught.evals import gsm8k
from selftaught.evals.accuracy import Checker, evaluate_accuracy
from selftaught.evals.diversity import compression_ratio, mean_token_nll
from selftaught.types import Completion, Prompt
from selftaught.world.arith import SPLITS, is_correct, sample_eval_set, sample_problems, to_prompt
from selftaught.world.keywords import keywords_prompts, keywords_stats, largest_pool, parse_keywords
from selftaught.world.persona import (
    JSON_KEYS,
    parse_persona,
    parse_persona_json,
    persona_json_prompts,
    persona_prompts,
    persona_stats,
)
from selftaught.world.sources import MATH_TASK
from selftaught.world.stories import (
    CSTORY_TASK,
    constrained_prompts,
    constrained_story_score,
    constraint_kept,
    story_prompts,
    story_score,
    story_stats,
)
from selftaught.world.stories import TASK as STORY_TASK


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


LPO = "world:lpo"
"""Adaptive decoding's mix (papers_B.md §4.7): `per_level` held-out MATH problems (test split, the
levels mixed evenly) and `per_level` STORY prompts (the places in turn), in turn; accuracy is the mean
reward (MATH exact answer 0/1, STORY quality), and `diversity` holds the per-type mean rewards
(`math_reward`, `story_reward`, logged as `val_math_reward`, `val_story_reward`) and STORY statistics."""
LPO_CSTORY = "world:lpo-cstory"
"""The same with `per_level` CSTORY prompts too (MATH, STORY, CSTORY in turn; the openers and places
in turn): `cstory_reward` and `cstory_kept` (the share of parts that keep the designated digit)."""
LPO_MAX_NEW_TOKENS = 64
"""The arithmetic sets' budget (a STORY answer is at most 13 tokens, a CSTORY one 23)."""


def lpo_prompts(
    per_level: int, levels: Sequence[int] | None = None, seed: int = 0, *, constrained: bool = False
) -> list[Prompt]:
    """The prompts of `world:lpo`: MATH (task `math`, an answer, a `level`) and STORY (task `story`, a
    `place`) in turn, `per_level` of each; `constrained`: CSTORY ones too (task `cstory`, a `place` and
    an `opener`), the prompts of `world:lpo-cstory`."""
    maths = [to_prompt(p) for p in sample_problems("test", per_level, list(levels or [1, 2, 3]), seed)]
    for prompt in maths:
        prompt.task = MATH_TASK
    columns = [maths]
    columns.append(
        [
            Prompt(r["id"], r["prompt"], task=STORY_TASK, meta={"place": r["place"]})
            for r in story_prompts(per_level)
        ]
    )
    if constrained:
        columns.append(
            [
                Prompt(
                    r["id"], r["prompt"], task=CSTORY_TASK, meta={"place": r["place"], "opener": r["opener"]}
                )
                for r in constrained_prompts(per_level)
            ]
        )
    return [prompt for row in zip(*columns, strict=True) for prompt in row]


def lpo_reward(prompt: Prompt, completion: Completion) -> float:
    """A `world:lpo(-cstory)` sample's reward: 1.0 / 0.0 for a MATH answer, the quality of a STORY or a
    CSTORY (graded scores: the accuracy of the set is a mean reward)."""
    if prompt.task == STORY_TASK:
        return story_score(completion.text, prompt.meta["place"])
    if prompt.task == CSTORY_TASK:
        return constrained_story_score(completion.text, prompt.meta["place"], prompt.meta["opener"])
    return float(world_is_correct(prompt, completion))


def lpo_diversity(completions: list[Completion], prompts: dict[str, Prompt]) -> dict[str, float]:
    """Per-type mean rewards of `world:lpo(-cstory)`'s samples (`math_reward`, `story_reward`,
    `cstory_reward`; `prompts` maps prompt ids to prompts), `cstory_kept` (the share of CSTORY parts
    that start with the designated digit) and `world.stories.story_stats` of the STORY samples as
    `story_<name>`."""
    rewards: dict[str, list[float]] = {MATH_TASK: [], STORY_TASK: [], CSTORY_TASK: []}
    texts, places, kept = [], [], []
    for completion in completions:
        prompt = prompts[completion.prompt_id]
        rewards[prompt.task].append(lpo_reward(prompt, completion))
        if prompt.task == STORY_TASK:
            texts.append(completion.text)
            places.append(prompt.meta["place"])
        if prompt.task == CSTORY_TASK:
            kept.append(constraint_kept(completion.text, prompt.meta["opener"]))
    metrics = {f"{task}_reward": sum(v) / len(v) for task, v in rewards.items() if v}
    if kept:
        metrics["cstory_kept"] = sum(kept) / len(kept)
    if texts:
        stats = story_stats(texts, places)
        metrics.update({f"story_{k}": v for k, v in stats.items() if k not in ("num_samples", "quality")})
    return metrics


SWEEP_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
"""The temperature grid of adaptive decoding's head (TINYWORLD_JUDGES_LPO.md §2.2)."""


def temperature_sweep(
    engine: Engine,
    temperatures: Sequence[float] = SWEEP_TEMPERATURES,
    num_prompts: int = 400,
    seed: int = 0,
    *,
    n: int = 2,
    levels: Sequence[int] | None = None,
    constrained: bool = False,
) -> list[dict[str, float]]:
    """One row per fixed temperature of `engine` on `world:lpo` (`num_prompts` // 2 MATH and as many
    STORY prompts, `n` samples each, sampling seeded by `seed`): `temperature`, `math_accuracy`,
    `story_quality` and `all` (the mean reward over the types, the set's accuracy); `constrained`:
    on `world:lpo-cstory` (`num_prompts` // 3 of each type), with `cstory_quality` and `cstory_kept`."""
    types = 3 if constrained else 2
    if num_prompts < types:
        raise ValueError(f"num_prompts must be >= {types} (one of each type), got {num_prompts}")
    prompts = lpo_prompts(num_prompts // types, levels, seed, constrained=constrained)
    by_id = {p.id: p for p in prompts}
    rows = []
    for temperature in temperatures:
        sampling = SamplingParams(temperature=temperature, n=n, max_new_tokens=LPO_MAX_NEW_TOKENS, seed=seed)
        result = evaluate_accuracy(engine, prompts, lpo_reward, sampling, group_by=None)  # type: ignore[arg-type]
        per_type = lpo_diversity([c for cs in result.completions for c in cs], by_id)
        row = {
            "temperature": temperature,
            "math_accuracy": per_type["math_reward"],
            "story_quality": per_type["story_reward"],
        }
        if constrained:
            row |= {"cstory_quality": per_type["cstory_reward"], "cstory_kept": per_type["cstory_kept"]}
        rows.append(row | {"all": result.accuracy})
    return rows


def fixed_temperature_sweep(
    model_dir: str | Path,
    temperatures: Sequence[float] = SWEEP_TEMPERATURES,
    num_prompts: int = 400,
    seed: int = 0,
) -> list[dict[str, float]]:
    """`temperature_sweep` of the model at `model_dir` (a directory or model spec, e.g.
    `tiny-world-lpo`), 2 samples per prompt: MATH accuracy and STORY quality at each fixed temperature
    (TINYWORLD_JUDGES_LPO.md §2.2: 400 prompts, tau in {0, .2, ..., 1})."""
    from selftaught.engines.hf import HFEngine
    from selftaught.models.io import load_model

    model, tokenizer = load_model(str(model_dir))
    return temperature_sweep(HFEngine(model, tokenizer, batch_size=512), temperatures, num_prompts, seed)


def format_sweep(rows: list[dict[str, Any]]) -> str:
    """A markdown table of `temperature_sweep` rows, one column per temperature."""
    head = "| tau | " + " | ".join(f"{r['temperature']:g}" for r in rows) + " |"
    lines = [head, "|---|" + "---|" * len(rows)]
    names = {
        "math_accuracy": "MATH acc",
        "story_quality": "STORY q",
        "cstory_quality": "CSTORY q",
        "cstory_kept": "CSTORY kept",
        "all": "all (mix)",
    }
    for key, name in ((k, v) for k, v in names.items() if k in rows[0]):
        lines.append(f"| {name} | " + " | ".join(f"{r[key]:.3f}" for r in rows) + " |")
    return "\n".join(lines)


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
    if data == LPO:
        prompts = lpo_prompts(per_level, levels, seed)
        by_id = {p.id: p for p in prompts}
        diversity = partial(lpo_diversity, prompts=by_id)
        return EvalSet(prompts, lpo_reward, [], LPO_MAX_NEW_TOKENS, diversity)  # type: ignore[arg-type]
    if data == LPO_CSTORY:
        prompts = lpo_prompts(per_level, levels, seed, constrained=True)
        diversity = partial(lpo_diversity, prompts={p.id: p for p in prompts})
        return EvalSet(prompts, lpo_reward, [], LPO_MAX_NEW_TOKENS, diversity)  # type: ignore[arg-type]
    if data.startswith("world:"):
        problems = sample_eval_set(world_split(data), per_level, levels or [1, 2, 3], seed)
        return EvalSet([to_prompt(p) for p in problems], world_is_correct, [], 64)
    records = read_records(data, limit=limit)
    return EvalSet(
        gsm8k.gsm8k_prompts(records, num_shots=num_shots, source=data), gsm8k.is_correct, gsm8k.STOP, 256
    )
