"""J1 on the online loop (papers_B §2): judge prompts from pairs with a known winner, the rewards of
the judgments, and the rewards that need the sibling prompt (the other order, the other half).

Prompts. A pair (chosen, rejected) gives its judge prompts side by side, with stable ids
`<pair id>|<order>` and the columns the rewards read (`Prompt.meta`):

| template kind | orders | prompts of one pair | `order` | `winner` (as shown) |
|---|---|---|---|---|
| pairwise | both | chosen as A, then chosen as B | `ab`, `ba` | `A`, `B` |
| pairwise | single | one of the two, drawn per (seed, pair, step) | `ab` or `ba` | `A` or `B` |
| pointwise | - | chosen alone, then rejected alone | `chosen`, `rejected` | None |

`JudgePromptSource` draws pairs (not prompts) as a pure function of (seed, step), so siblings always
land in the same step and, under torchrun, on the same rank (`units_at`).

Rewards (TRL signature; the columns `winner` and `judge_template` come from the prompts):

- `judge_verdict_reward`: 1 if the parsed verdict equals `winner`, else 0 (a tie or an unreadable
  judgment is wrong, as in J1); None for prompts without a `winner` (pointwise halves).
- `judge_scores_reward`: 1 if the pairwise scores rank `winner` strictly higher, else 0 (equal scores,
  or scores that cannot be read, are wrong).
- `judge_format_reward`: 1 if the template's parser reads the answer, else 0.
- `judge_thinking_reward`: 1 if the judge's own answer (`parsers.own_answer`: its recomputed
  `Answer: N`, or a list check trace's computed output) equals the pair's `reference`, else 0;
  None without a reference. Probe 2 of
  TINYWORLD_JUDGES_LPO §1.3: a verdict-only reward let the thinking decay.
- `consistency_rewards(groups)`: sample i of order `ab` and sample i of its `ba` sibling both get 1
  if both are right, else 0 (J1's verdict consistency; papers_B §2.3 pairs rollout i with rollout i);
  `consistency_partial` gives partial credit, the share of the two that is right (1, 0.5, 0).
- `pointwise_pair_rewards(groups)`: sample i of the chosen half and sample i of the rejected half
  both get 1 if chosen's score is strictly higher, else 0 (J1 PoS trained from pairwise labels).

The sibling rewards are None for a group whose sibling is not in the burst (a single-order run, a
pair cut by a data-parallel split), so a missing sibling is counted, never read as 0.
`JudgeScorer(weights)` is the online loop's `group_scorer` for J1: the weighted sum of the
components, None when a component with a non-zero weight is None.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from selftaught.data.order import batch_indices
from selftaught.judges.judge import question_text
from selftaught.judges.parsers import Parsed, own_answer, verdict_from_scores
from selftaught.judges.templates import JudgeKind, JudgeTemplate, get_template
from selftaught.types import Completion, Pair, Prompt

PAIRWISE_ORDERS = ("ab", "ba")
"""`ab`: chosen shown as A; `ba`: chosen shown as B."""
POINTWISE_HALVES = ("chosen", "rejected")
SIBLING = {"ab": "ba", "ba": "ab", "chosen": "rejected", "rejected": "chosen"}
JUDGE_TASK = "judge"


def pair_id(pair: Pair) -> str:
    """The pair's stable id: its `meta["id"]` (world pairs, files with an `id` column), else its prompt's."""
    return str(pair.meta.get("id", pair.prompt.id))


def judge_prompt(pair: Pair, template: JudgeTemplate, order: str, prompt_style: str = "chat") -> Prompt:
    """The judge prompt of `pair` in `order` (`ab`, `ba`, `chosen` or `rejected`; module doc)."""
    question = question_text(pair.prompt)
    chosen, rejected = pair.chosen.text, pair.rejected.text
    responses = {
        "ab": (chosen, rejected),
        "ba": (rejected, chosen),
        "chosen": (chosen,),
        "rejected": (rejected,),
    }[order]
    winner = {"ab": "A", "ba": "B"}.get(order)
    pid = pair_id(pair)
    meta: dict[str, Any] = {"pair_id": pid, "order": order, "winner": winner, "judge_template": template.name}
    if pair.prompt.answer is not None:
        meta["reference"] = pair.prompt.answer
    return Prompt(
        id=f"{pid}|{order}",
        messages=template.render(question, *responses),
        text=template.render_text(question, *responses) if prompt_style == "text" else None,
        task=JUDGE_TASK,
        meta=meta,
    )


@dataclass
class JudgePromptSource:
    """The judge prompts of each optimizer step, drawn pair by pair (module doc)."""

    pairs: list[Pair]
    template: JudgeTemplate
    per_step: int
    """Judge prompts per step; pairs per step = this / prompts per pair."""
    seed: int
    both_orders: bool = True
    prompt_style: str = "chat"

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ValueError("the judge prompt source has no pairs; check judge.pairs")
        if self.per_step < self.prompts_per_pair:
            raise ValueError(
                f"rollouts.num_prompts must be >= {self.prompts_per_pair} (the prompts of one pair with "
                f"template {self.template.name}), got {self.per_step}"
            )

    @property
    def prompts_per_pair(self) -> int:
        return 2 if self.template.kind == JudgeKind.POINTWISE or self.both_orders else 1

    def units_at(self, step: int) -> list[list[Prompt]]:
        """The prompts of step `step` (1-based), one list per pair (siblings together)."""
        num_pairs = self.per_step // self.prompts_per_pair
        indices = batch_indices((step - 1) * num_pairs, num_pairs, len(self.pairs), self.seed)
        return [self._orders(self.pairs[i], step) for i in indices]

    def at(self, step: int) -> list[Prompt]:
        """The prompts of step `step`, siblings side by side."""
        return [prompt for unit in self.units_at(step) for prompt in unit]

    def _orders(self, pair: Pair, step: int) -> list[Prompt]:
        if self.template.kind == JudgeKind.POINTWISE:
            orders: Sequence[str] = POINTWISE_HALVES
        elif self.both_orders:
            orders = PAIRWISE_ORDERS
        else:
            orders = [random.Random(f"{self.seed}|{pair_id(pair)}|{step}").choice(PAIRWISE_ORDERS)]
        return [judge_prompt(pair, self.template, order, self.prompt_style) for order in orders]


# --- per-sample rewards -------------------------------------------------------------------------


def parse_judgment(text: str, template_name: str) -> Parsed:
    """`text` read by the parser of the template called `template_name`."""
    return get_template(template_name).parse(text)


def judgment_correct(text: str, winner: str, template_name: str) -> bool:
    """Whether the judgment's verdict (for score templates: the higher score) names `winner`."""
    return parse_judgment(text, template_name).verdict == winner


def _texts(completions: Sequence[Any]) -> list[str]:
    return [c if isinstance(c, str) else str(c[-1]["content"]) for c in completions]


def _column(columns: Mapping[str, Any], name: str, num: int) -> list[Any]:
    values = columns.get(name)
    return list(values) if values is not None else [None] * num


def judge_verdict_reward(
    prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
) -> list[float | None]:
    """1 if the verdict names the known `winner`, 0 if not (tie, unreadable); None without a `winner`.

    >>> judge_verdict_reward(["q"], ["1+1=2 Answer: 2 [[B]]"], winner=["B"],
    ...                      judge_template=["world-pairwise-verdict@1"])
    [1.0]
    """
    texts = _texts(completions)
    winners = _column(columns, "winner", len(texts))
    templates = _column(columns, "judge_template", len(texts))
    return [
        None if winner is None or name is None else float(judgment_correct(text, winner, name))
        for text, winner, name in zip(texts, winners, templates, strict=True)
    ]


def judge_scores_reward(
    prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
) -> list[float | None]:
    """1 if both scores parse and rank `winner` strictly higher, else 0; None without a `winner`."""
    texts = _texts(completions)
    winners = _column(columns, "winner", len(texts))
    templates = _column(columns, "judge_template", len(texts))
    rewards: list[float | None] = []
    for text, winner, name in zip(texts, winners, templates, strict=True):
        if winner is None or name is None:
            rewards.append(None)
            continue
        scores = parse_judgment(text, name).scores
        ok = scores is not None and len(scores) == 2 and verdict_from_scores(*scores) == winner
        rewards.append(float(ok))
    return rewards


def judge_format_reward(
    prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
) -> list[float | None]:
    """1 if the template's parser reads the judgment (no parse error), else 0; None for non-judge prompts."""
    texts = _texts(completions)
    templates = _column(columns, "judge_template", len(texts))
    return [
        None if name is None else float(parse_judgment(text, name).error is None)
        for text, name in zip(texts, templates, strict=True)
    ]


def judge_thinking_reward(
    prompts: Sequence[Any], completions: Sequence[Any], **columns: Any
) -> list[float | None]:
    """1 if the judgment's own answer (`parsers.own_answer`: its first `Answer: N`, or a list check
    trace's computed output) equals the `reference` column, else 0; None without one.

    >>> judge_thinking_reward(["q", "q"], ["2+3=5 Answer: 5 [[A]]", "[[A]]"], reference=["5", "5"])
    [1.0, 0.0]
    """
    texts = _texts(completions)
    references = _column(columns, "reference", len(texts))
    return [
        None if reference is None else float(own_answer(text) == str(reference).strip())
        for text, reference in zip(texts, references, strict=True)
    ]


# --- sibling rewards (the online loop's group scorer) -------------------------------------------


class JudgeGroup(Protocol):
    """What the sibling rewards read of a rollout group (`selection.rollouts.RolloutGroup`)."""

    prompt: Prompt
    completions: list[Completion]
    rewards: list[float | None]


def siblings(groups: Sequence[JudgeGroup]) -> list[JudgeGroup | None]:
    """For each group, the group of the same pair in the sibling order (same step), or None."""
    step_of = [getattr(g, "step", 0) for g in groups]
    index = {
        (s, g.prompt.meta.get("pair_id"), g.prompt.meta.get("order")): g
        for s, g in zip(step_of, groups, strict=True)
    }
    return [
        index.get((s, g.prompt.meta.get("pair_id"), SIBLING.get(g.prompt.meta.get("order", ""), "")))
        for s, g in zip(step_of, groups, strict=True)
    ]


def _correct(group: JudgeGroup, i: int) -> bool:
    meta = group.prompt.meta
    return judgment_correct(group.completions[i].text, meta["winner"], meta["judge_template"])


def consistency_rewards(groups: Sequence[JudgeGroup], partial: bool = False) -> list[list[float | None]]:
    """Per group: 1 for sample i when it and sample i of the other order are both right, else 0
    (`partial`: the share of the two that is right, so 0.5 when one order is); None without a
    sibling (or past the sibling's last sample)."""
    rewards: list[list[float | None]] = []
    for group, sibling in zip(groups, siblings(groups), strict=True):
        if sibling is None or group.prompt.meta.get("winner") is None:
            rewards.append([None] * len(group.completions))
            continue
        rewards.append(
            [
                _both_orders(_correct(group, i), _correct(sibling, i), partial)
                if i < len(sibling.completions)
                else None
                for i in range(len(group.completions))
            ]
        )
    return rewards


def _both_orders(right: bool, sibling_right: bool, partial: bool) -> float:
    return (right + sibling_right) / 2 if partial else float(right and sibling_right)


def _score(group: JudgeGroup, i: int) -> float | None:
    scores = parse_judgment(group.completions[i].text, group.prompt.meta["judge_template"]).scores
    return scores[0] if scores else None


def pointwise_pair_rewards(groups: Sequence[JudgeGroup]) -> list[list[float | None]]:
    """Per pointwise group: 1 for sample i of both halves when chosen's score i is strictly above
    rejected's score i, else 0 (an unreadable score loses); None without the other half."""
    rewards: list[list[float | None]] = []
    for group, sibling in zip(groups, siblings(groups), strict=True):
        order = group.prompt.meta.get("order")
        if sibling is None or order not in POINTWISE_HALVES:
            rewards.append([None] * len(group.completions))
            continue
        chosen, rejected = (group, sibling) if order == "chosen" else (sibling, group)
        row: list[float | None] = []
        for i in range(len(group.completions)):
            if i >= len(sibling.completions):
                row.append(None)
                continue
            c, r = _score(chosen, i), _score(rejected, i)
            row.append(float(c is not None and r is not None and c > r))
        rewards.append(row)
    return rewards


def _per_sample(fn: Any, groups: Sequence[JudgeGroup]) -> list[list[float | None]]:
    rows = []
    for group in groups:
        meta = group.prompt.meta
        n = len(group.completions)
        rows.append(
            fn(
                [None] * n,
                [c.text for c in group.completions],
                winner=[meta.get("winner")] * n,
                judge_template=[meta.get("judge_template")] * n,
                reference=[meta.get("reference")] * n,
            )
        )
    return rows


COMPONENTS = {
    "verdict": lambda groups: _per_sample(judge_verdict_reward, groups),
    "scores": lambda groups: _per_sample(judge_scores_reward, groups),
    "format": lambda groups: _per_sample(judge_format_reward, groups),
    "thinking": lambda groups: _per_sample(judge_thinking_reward, groups),
    "consistency": consistency_rewards,
    "consistency_partial": lambda groups: consistency_rewards(groups, partial=True),
    "pointwise_pair": pointwise_pair_rewards,
}
"""Reward components by the names of `configs.judge.JUDGE_REWARDS`."""


class JudgeScorer:
    """J1's group scorer: the weighted sum of reward components over a burst's groups (module doc)."""

    def __init__(self, weights: Mapping[str, float]):
        unknown = sorted(set(weights) - set(COMPONENTS))
        if unknown:
            raise ValueError(f"unknown judge reward(s) {unknown}; use {sorted(COMPONENTS)}")
        self.weights = {name: float(w) for name, w in weights.items() if w}

    def __call__(self, groups: Sequence[JudgeGroup]) -> list[list[float | None]]:
        parts = {name: COMPONENTS[name](groups) for name in self.weights}
        totals: list[list[float | None]] = []
        for g, group in enumerate(groups):
            row: list[float | None] = []
            for i in range(len(group.completions)):
                values = [parts[name][g][i] for name in self.weights]
                present = [v for v in values if v is not None]
                if len(present) < len(values):
                    row.append(None)
                else:
                    row.append(sum(w * v for w, v in zip(self.weights.values(), present, strict=True)))
            totals.append(row)
        return totals
