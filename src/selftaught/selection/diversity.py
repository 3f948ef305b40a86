"""DivPO's pair rule (Lanchantin et al. 2025, papers_B §3): the most diverse good sample against the
least diverse bad one.

Reward maximisation with a KL anchor sends all mass to the top-reward responses even when many
are equally good, so online DPO collapses onto a few of them. DivPO changes only which pair of a
prompt's pool is trained on; the loss stays DPO's:

1. Split the pool by quality (`quality_pools`). The paper's `range` rule, with `r_max`, `r_min` the
   pool's best and worst rewards: good = `r >= r_max - rho (r_max - r_min)`, bad =
   `r <= r_min + rho (r_max - r_min)`, `rho` in [0, 0.5]. `quantile`: good = rewards at or above the
   pool's `1 - rho` quantile, bad = at or below its `rho` quantile. `absolute`: good = `r >= threshold`,
   bad = below it. Unscored samples (reward None) are in neither pool; a pool whose rewards are all
   equal gives no pair (`tied`).
2. Score diversity (higher = more diverse) with a criterion, over the whole scored pool:
   - `probability`: `-log pi(y|x)`, the sum of the sample's own token logprobs (the generating
     policy's, at temperature 1): the rarer under the model, the more diverse;
   - `frequency`: minus the mean, over the sample's distinct units, of the fraction of the pool's
     samples that contain the unit; units are lowercased words, or the values of a JSON object
     (`units="json_values"`, for structured outputs such as personas; a sample that is not a JSON
     object falls back to its words);
   - `embedding`: the mean cosine distance to the pool's other samples (all-MiniLM-L6-v2);
   - `judge`: an LLM is shown the numbered candidates and names the most diverse good one and the
     least diverse bad one (`DIVERSITY_JUDGE_PROMPT`); its answer must be exactly one candidate
     number (`parse_choice`), else the prompt gives no pair (`judge_unparsed`, counted).
3. Chosen = the good sample with the highest diversity, rejected = the bad one with the lowest. Ties
   go to the higher (chosen) or lower (rejected) reward, then to a seeded random choice. A chosen
   and rejected with the same text give no pair (`same_response`, counted).

With `rho = 0` and a constant criterion this is best-vs-worst (a random one among tied rewards).
The rule is one more pair rule of the online loop (`pair_rule=divpo`), so it runs offline,
semi-online and online through the same sync knob.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from selftaught.config import check
from selftaught.selection.pairs import GroupPairs, SkipReason
from selftaught.types import Completion, Pair, Prompt, StrEnum


class PoolRule(StrEnum):
    RANGE = "range"
    """The paper's rule: within `rho` of the reward range from the best (good) or the worst (bad)."""
    QUANTILE = "quantile"
    """At or above the `1 - rho` quantile (good), at or below the `rho` quantile (bad)."""
    ABSOLUTE = "absolute"
    """At or above `threshold` (good), below it (bad)."""


class Criterion(StrEnum):
    PROBABILITY = "probability"
    FREQUENCY = "frequency"
    EMBEDDING = "embedding"
    JUDGE = "judge"


class Units(StrEnum):
    WORDS = "words"
    JSON_VALUES = "json_values"


@dataclass
class DivPOConfig:
    """DivPO's pair selection (`pair_rule=divpo`; see `selftaught.selection.diversity`)."""

    criterion: Criterion = Criterion.PROBABILITY
    """How diversity is scored: `probability` (-log pi(y|x)), `frequency` (rarity of the sample's
    words or JSON values within the pool), `embedding` (MiniLM distance to the pool) or `judge`
    (an LLM names the most / least diverse sample; needs `judge_model`)."""
    pools: PoolRule = PoolRule.RANGE
    rho: float = 0.3
    """Pool width for `range` and `quantile`, in [0, 0.5]; 0 = only the best and the worst rewards."""
    threshold: float = 0.5
    """`absolute` pools: the reward a good sample reaches."""
    units: Units = Units.WORDS
    """`frequency`: count words, or the values of a JSON object (structured outputs)."""
    judge_model: str | None = None
    """`judge`: the judge's model spec."""
    judge_max_new_tokens: int = 8

    def __post_init__(self) -> None:
        check(0 <= self.rho <= 0.5, "divpo.rho", "in [0, 0.5]", self.rho)
        check(self.judge_max_new_tokens >= 1, "divpo.judge_max_new_tokens", ">= 1", self.judge_max_new_tokens)
        if self.criterion == Criterion.JUDGE:
            check(
                self.judge_model is not None, "divpo.judge_model", "a model spec with criterion=judge", None
            )


def quality_pools(
    rewards: Sequence[float | None], rule: PoolRule, rho: float = 0.0, threshold: float = 0.5
) -> tuple[list[int], list[int]]:
    """Indices of the good and the bad samples (see the module doc); both empty when the scored
    rewards are all equal, or none is scored."""
    scored = [(i, r) for i, r in enumerate(rewards) if r is not None]
    values = [r for _, r in scored]
    if not values or min(values) == max(values):
        return [], []
    if rule == PoolRule.RANGE:
        low, high = min(values), max(values)
        good_from, bad_to = high - rho * (high - low), low + rho * (high - low)
    elif rule == PoolRule.QUANTILE:
        good_from, bad_to = _quantile(values, 1 - rho), _quantile(values, rho)
    else:
        good = [i for i, r in scored if r >= threshold]
        return good, [i for i, r in scored if r < threshold]
    return [i for i, r in scored if r >= good_from], [i for i, r in scored if r <= bad_to]


def _quantile(values: Sequence[float], q: float) -> float:
    """The `q` quantile with linear interpolation (numpy's default)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


# --- criteria ----------------------------------------------------------------------------------


class ScoreCriterion(Protocol):
    """Scores every sample of a pool; higher = more diverse."""

    def __call__(self, prompt: Prompt, completions: Sequence[Completion]) -> list[float]: ...


def model_probability(prompt: Prompt, completions: Sequence[Completion]) -> list[float]:
    """`-log pi(y|x)` from each sample's own token logprobs (ValueError when they are missing)."""
    for index, completion in enumerate(completions):
        if completion.logprobs is None:
            raise ValueError(
                f"divpo criterion 'probability' needs token logprobs, and sample {index} of prompt "
                f"{prompt.id!r} has none (use an engine that returns them, or criterion=frequency)"
            )
    return [-sum(completion.logprobs or []) for completion in completions]


_WORD = re.compile(r"\w+")


def completion_units(text: str, units: Units = Units.WORDS) -> set[str]:
    """The distinct units `frequency` counts: lowercased words, or a JSON object's values."""
    if units == Units.JSON_VALUES:
        try:
            value = json.loads(text.strip())
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return {f"{key}={str(item).strip().lower()}" for key, item in value.items()}
    return set(_WORD.findall(text.lower()))


def word_frequency(units: Units = Units.WORDS) -> ScoreCriterion:
    """Minus the mean pool frequency of a sample's units (see the module doc); a sample with no
    unit scores as the most frequent possible (-1)."""

    def score(prompt: Prompt, completions: Sequence[Completion]) -> list[float]:
        sets = [completion_units(completion.text, units) for completion in completions]
        counts: dict[str, int] = {}
        for unit_set in sets:
            for unit in unit_set:
                counts[unit] = counts.get(unit, 0) + 1
        pool = len(sets)
        return [-sum(counts[u] for u in s) / (len(s) * pool) if s else -1.0 for s in sets]

    return score


def embedding_distance(encode: Callable[[list[str]], Any]) -> ScoreCriterion:
    """Mean cosine distance of a sample to the pool's other samples; `encode` gives unit-norm
    vectors (`selftaught.models.embeddings.Embedder.encode`). A pool of one scores 0."""

    def score(prompt: Prompt, completions: Sequence[Completion]) -> list[float]:
        if len(completions) < 2:
            return [0.0] * len(completions)
        vectors = encode([completion.text for completion in completions])  # [N, D]
        similarity = vectors @ vectors.T
        n = len(completions)
        return [float((n - 1 - (similarity[i].sum() - similarity[i, i])) / (n - 1)) for i in range(n)]

    return score


DIVERSITY_JUDGE_PROMPT = """Here are {num} responses to the same request.

Request: {request}

{candidates}

Which response is the {which}: the one whose ideas, words and phrasing are {how} compared with the
others? Answer with its number only."""
"""The diversity judge's prompt (DivPO's LLM-as-diversity-judge); `which` / `how` say most or least."""

_CHOICE = re.compile(r"\s*\[?(\d+)\]?\s*\.?\s*")


def parse_choice(text: str, num_candidates: int) -> int | None:
    """The 0-based candidate the judge named: the answer must be one number in 1..num (optionally
    `[k]` or `k.`), nothing else; None otherwise."""
    match = _CHOICE.fullmatch(text)
    if match is None:
        return None
    choice = int(match.group(1))
    return choice - 1 if 1 <= choice <= num_candidates else None


class DiversityJudge:
    """Asks an engine for the most diverse of the good samples and the least diverse of the bad."""

    def __init__(self, generate: Callable[[list[Prompt]], list[str]]) -> None:
        """`generate(prompts)`: one greedy answer per prompt (an `Engine` wrapped by the caller)."""
        self.generate = generate

    def pick(self, prompt: Prompt, completions: Sequence[Completion], good: list[int], bad: list[int]):
        """`(chosen, rejected)` pool indices, None where the judge's answer did not parse."""
        request = prompt.text if prompt.text is not None else prompt.messages[-1]["content"]
        asks = [
            self._ask(prompt, request, completions, good, "most diverse", "the most unusual"),
            self._ask(prompt, request, completions, bad, "least diverse", "the most typical"),
        ]
        answers = self.generate(asks)
        chosen = parse_choice(answers[0], len(good))
        rejected = parse_choice(answers[1], len(bad))
        return (None if chosen is None else good[chosen]), (None if rejected is None else bad[rejected])

    @staticmethod
    def _ask(prompt, request, completions, indices, which, how) -> Prompt:
        candidates = "\n".join(f"[{k + 1}] {completions[i].text.strip()}" for k, i in enumerate(indices))
        text = DIVERSITY_JUDGE_PROMPT.format(
            num=len(indices), request=request, candidates=candidates, which=which, how=how
        )
        return Prompt(id=f"{prompt.id}|diversity|{which}", messages=[{"role": "user", "content": text}])


# --- the pair rule -----------------------------------------------------------------------------


def divpo_pairs(
    prompt: Prompt,
    completions: Sequence[Completion],
    rewards: Sequence[float | None],
    config: DivPOConfig,
    rng: random.Random,
    score: ScoreCriterion | None = None,
    judge: DiversityJudge | None = None,
) -> GroupPairs:
    """DivPO's pair for one prompt's pool (module doc): `score` for score criteria, `judge` for the LLM."""
    num_unscored = sum(r is None for r in rewards)
    if num_unscored == len(rewards):
        return GroupPairs(num_unscored=num_unscored, skip_reason=SkipReason.UNSCORED)
    good, bad = quality_pools(rewards, config.pools, config.rho, config.threshold)
    if not good or not bad:
        return GroupPairs(num_unscored=num_unscored, skip_reason=SkipReason.TIED)
    scored = [i for i, r in enumerate(rewards) if r is not None]
    diversity: dict[int, float] = {}
    if judge is not None:
        chosen, rejected = judge.pick(prompt, completions, good, bad)
        if chosen is None or rejected is None:
            return GroupPairs(num_unscored=num_unscored, skip_reason=SkipReason.JUDGE_UNPARSED)
    else:
        if score is None:
            raise ValueError("divpo_pairs needs a score criterion or a judge")
        values = score(prompt, [completions[i] for i in scored])
        diversity = dict(zip(scored, values, strict=True))
        reward = {i: float(rewards[i] or 0.0) for i in scored}  # pools hold scored samples only
        chosen = _pick(good, lambda i: (diversity[i], reward[i]), rng)
        rejected = _pick(bad, lambda i: (-diversity[i], -reward[i]), rng)
    if chosen == rejected or completions[chosen].text == completions[rejected].text:
        return GroupPairs(num_unscored=num_unscored, skip_reason=SkipReason.SAME_RESPONSE)
    meta = {
        "rule": "divpo",
        "criterion": str(config.criterion),
        "rho": config.rho,
        "chosen_reward": rewards[chosen],
        "rejected_reward": rewards[rejected],
        "chosen_diversity": diversity.get(chosen),
        "rejected_diversity": diversity.get(rejected),
        "num_good": len(good),
        "num_bad": len(bad),
        "num_samples": len(completions),
        "num_scored": len(scored),
    }
    return GroupPairs([Pair(prompt, completions[chosen], completions[rejected], meta)], num_unscored)


def _pick(indices: list[int], key: Callable[[int], tuple[float, ...]], rng: random.Random) -> int:
    """The index with the largest key; ties broken by a seeded random choice."""
    best = max(key(i) for i in indices)
    return rng.choice([i for i in indices if key(i) == best])
