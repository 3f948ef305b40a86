"""Scored rollouts -> training data for online RL: DPO pairs per task rule, GRPO groups, staleness.

A `RolloutGroup` is one prompt with its N sampled completions (each stamped with the policy
version that produced it) and their rewards (`None` = could not score). It is JSON-serialisable,
so a stage of offline rollouts and the pending rollout buffer of a checkpoint are plain JSON.

DPO (papers_B §1.4 step 4): each task names its pair rule, a function `(group, rng) -> GroupPairs`
(`PAIR_RULES`, or a user's `module:function`: DivPO's rule is one more function); prompts with no
valid pair are dropped and counted (`compute_pair_stats`). GRPO: all scored samples of a group, with
group-relative advantages (the recipe computes them); unscored samples are left out of their group (never read as 0), and a
group with fewer than 2 scored samples is dropped and counted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from selftaught.rewards.registry import load_callable
from selftaught.selection.pairs import GroupPairs, all_pairs, best_vs_worst, correct_vs_incorrect
from selftaught.types import Completion, Pair, Prompt


@dataclass
class RolloutGroup:
    """One prompt, its sampled completions and their rewards."""

    prompt: Prompt
    completions: list[Completion]
    """The N samples, each with token ids, generator logprobs and `policy_version`."""
    rewards: list[float | None]
    """One per completion; None = could not score."""
    step: int = 0
    """The optimizer step (1-based) this group is for."""

    def to_record(self) -> dict:
        return {
            "step": self.step,
            "prompt": self.prompt.to_dict(),
            "completions": [c.to_dict() for c in self.completions],
            "rewards": self.rewards,
        }

    @classmethod
    def from_record(cls, record: Mapping) -> RolloutGroup:
        return cls(
            prompt=Prompt.from_dict(record["prompt"]),
            completions=[Completion.from_dict(c) for c in record["completions"]],
            rewards=list(record["rewards"]),
            step=record["step"],
        )


PairRuleFn = Callable[["RolloutGroup", random.Random], GroupPairs]
"""`rule(group, rng) -> GroupPairs`: one prompt's pairs, or none with the reason (counted)."""


def correct_vs_incorrect_rule(group: RolloutGroup, rng: random.Random) -> GroupPairs:
    """Verifiable 0/1 rewards: a random correct sample against a random incorrect one."""
    return correct_vs_incorrect(group.prompt, _scored(group), rng)


def best_vs_worst_rule(group: RolloutGroup, rng: random.Random) -> GroupPairs:
    """Scalar rewards (a reward model): the highest against the lowest."""
    return best_vs_worst(group.prompt, _scored(group))


def all_pairs_rule(group: RolloutGroup, rng: random.Random) -> GroupPairs:
    """GroupDPO: every correct x incorrect pair."""
    return all_pairs(group.prompt, _scored(group))


PAIR_RULES: dict[str, PairRuleFn] = {
    "correct_vs_incorrect": correct_vs_incorrect_rule,
    "best_vs_worst": best_vs_worst_rule,
    "all_pairs": all_pairs_rule,
}
"""Built-in pair rules by name."""


def pair_rule(spec: str) -> PairRuleFn:
    """The pair rule `spec` names: a key of `PAIR_RULES` or a user's `package.module:function`."""
    if spec in PAIR_RULES:
        return PAIR_RULES[spec]
    if ":" in spec:
        return load_callable(spec, "pair rule")
    raise ValueError(
        f"unknown pair rule {spec!r}; use one of {sorted(PAIR_RULES)} or package.module:function"
    )


def _scored(group: RolloutGroup) -> list[tuple[Completion, float | None]]:
    return list(zip(group.completions, group.rewards, strict=True))


def select_pairs(
    groups: Sequence[RolloutGroup], rules: Mapping[str, PairRuleFn], seed: int
) -> tuple[list[Pair], list[GroupPairs]]:
    """Pairs of every group, the rule chosen by the prompt's task; also each group's `GroupPairs`
    (for `compute_pair_stats`). The random choice of group g uses `Random(f"{seed}|{step}|{id}")`,
    so it does not depend on the other groups or on a resume."""
    results = []
    for group in groups:
        if group.prompt.task not in rules:
            raise ValueError(
                f"no pair rule for task {group.prompt.task!r}; set one for it (rules: {sorted(rules)})"
            )
        rng = random.Random(f"{seed}|{group.step}|{group.prompt.id}")
        results.append(rules[group.prompt.task](group, rng))
    return [pair for result in results for pair in result.pairs], results


def scored_groups(groups: Sequence[RolloutGroup]) -> tuple[list[RolloutGroup], dict[str, float]]:
    """GRPO groups: each group restricted to its scored samples, and counts: `num_groups_dropped`
    (fewer than 2 scored samples: no group baseline) and `num_unscored` samples left out.

    Advantages are computed from these by `selftaught.losses.grpo.compute_advantages` per group
    (groups may differ in size once unscored samples are removed).
    """
    kept: list[RolloutGroup] = []
    num_dropped = num_unscored = 0
    for group in groups:
        scored = [(c, r) for c, r in zip(group.completions, group.rewards, strict=True) if r is not None]
        num_unscored += len(group.completions) - len(scored)
        if len(scored) < 2:
            num_dropped += 1
            continue
        kept.append(RolloutGroup(group.prompt, [c for c, _ in scored], [r for _, r in scored], group.step))
    return kept, {"num_groups_dropped": num_dropped, "num_unscored": num_unscored}


def rollout_metrics(groups: Sequence[RolloutGroup], step: int) -> dict[str, float]:
    """Per-step rollout diagnostics (papers_B §1.8, §1.11): reward (overall and per task), unscored
    count, mean length, mean entropy estimate, staleness (mean and max).

    `rollout_entropy` is the mean of -log p of the sampled tokens under the generator (temperature-1
    logprobs): at temperature 1 an unbiased estimate of the mean next-token entropy.
    """
    completions = [c for g in groups for c in g.completions]
    if not completions:
        raise ValueError(f"step {step} has no rollouts; set num_prompts and samples_per_prompt >= 1")
    rewards = [r for g in groups for r in g.rewards if r is not None]
    logps = [lp for c in completions for lp in (c.logprobs or [])]
    stalenesses = [step - 1 - c.policy_version for c in completions]
    metrics = {
        "reward_num_none": float(sum(r is None for g in groups for r in g.rewards)),
        "rollout_length": sum(c.num_tokens for c in completions) / len(completions),
        "staleness": sum(stalenesses) / len(stalenesses),
        "staleness_max": float(max(stalenesses)),
    }
    if rewards:
        metrics["reward"] = sum(rewards) / len(rewards)
    if logps:
        metrics["rollout_entropy"] = -sum(logps) / len(logps)
    for task in sorted({g.prompt.task for g in groups}):
        values = [r for g in groups if g.prompt.task == task for r in g.rewards if r is not None]
        if values:
            metrics[f"reward_{task}"] = sum(values) / len(values)
    return metrics
