"""Offline preference pairs as a data stage: sample N completions per prompt, score them with any
reward function, and pair them by a rule (papers_B §1.4 step 4; papers_A §0.1 DPO).

    records, counts = sample_pairs(
        run / "pairs", prompts, engine, SamplingParams(temperature=1.0, n=8, max_new_tokens=64),
        world_answer_reward, "correct_vs_incorrect",
        seed=2, generator="tiny-world", template="dpo-world-pairs@1", weights_fingerprint=digest,
    )

Per shard of `shard_size` prompts (the stage is `data.shards.run_stage`): one `engine.generate`
call with the shard's seed (`stages.shard_seed`: `seed * 1_000_003 + index of the shard's first
prompt`); one call of the reward function on all the shard's completions with TRL's signature
(`rewards.base.trl_inputs`: the prompt's answer, task and meta as columns); then, per prompt,
the pair rule (a `selection.rollouts.PairRuleFn`, or a name that `pair_rule` resolves) with
`random.Random(f"{seed}|{prompt.id}")`, so a prompt's pair depends neither on the other prompts
nor on where a run was interrupted. Each pair
is written in TRL's conversational preference format (`data.preferences.preference_record`) with
the provenance `{"generator", "seed", "template"}` in its `meta`.

A reward of None (could not score) keeps a sample out of both sides of a pair, as the pair rules
do; prompts that give no pair are counted in `pair_yield`.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

from selftaught.data.preferences import preference_record
from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.engines.base import Engine, SamplingParams
from selftaught.pipelines.stages import sample_shard
from selftaught.rewards.base import RewardFn, reward_name, trl_inputs
from selftaught.selection.rollouts import PairRuleFn, RolloutGroup, pair_rule
from selftaught.types import Completion, Prompt


def sample_pairs(
    out_dir: str | os.PathLike[str],
    prompts: Sequence[Prompt],
    engine: Engine,
    sampling: SamplingParams,
    reward_fn: RewardFn,
    rule: PairRuleFn | str,
    *,
    seed: int,
    generator: str,
    template: str,
    weights_fingerprint: str,
    shard_size: int = 256,
    desc: str = "pairs",
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Preference records sampled from `engine` on `prompts`, as a stage in `out_dir`; and counts
    `num_prompts`, `num_pairs`, `pair_yield` (pairs per prompt).

    `generator` names the model and `weights_fingerprint` identifies its weights
    (`train.reference.weights_fingerprint`); `template` is the versioned name of what else decides
    the records (the reward, the rule, the record format): change it when they change. These,
    the seed, the prompt ids and the sampling are the stage's fingerprint, so prompt ids must
    identify their content (the world's ids are hashes of the problem).
    """
    rule_fn = pair_rule(rule) if isinstance(rule, str) else rule
    provenance = {"generator": generator, "seed": seed, "template": template}

    def make_pairs(chunk: list[tuple[int, Prompt]]) -> list[dict[str, Any]]:
        shard_prompts = [prompt for _, prompt in chunk]
        samples = sample_shard(engine, shard_prompts, sampling, seed, chunk[0][0])
        rewards = score_samples(reward_fn, shard_prompts, samples)
        records: list[dict[str, Any]] = []
        for prompt, completions, prompt_rewards in zip(shard_prompts, samples, rewards, strict=True):
            group = RolloutGroup(prompt, completions, prompt_rewards)
            pairs = rule_fn(group, random.Random(f"{seed}|{prompt.id}")).pairs
            records.extend(preference_record(pair, provenance) for pair in pairs)
        return records

    fingerprint = compute_fingerprint(
        {
            **provenance,
            "weights": weights_fingerprint,
            # "problems": the key the world pair stage has always used, so its directories resume
            "problems": [prompt.id for prompt in prompts],
            "sampling": vars(sampling),
        }
    )
    records = run_stage(
        out_dir,
        list(enumerate(prompts)),
        make_pairs,
        shard_size=shard_size,
        fingerprint=fingerprint,
        meta=provenance,
        desc=desc,
    )
    num_prompts = len(prompts)
    return records, {
        "num_prompts": num_prompts,
        "num_pairs": len(records),
        "pair_yield": len(records) / max(num_prompts, 1),
    }


def score_samples(
    reward_fn: RewardFn, prompts: Sequence[Prompt], samples: Sequence[Sequence[Completion]]
) -> list[list[float | None]]:
    """`reward_fn`'s rewards of `samples[i][j]` (a completion of `prompts[i]`), in one call with
    TRL's signature; `rewards[i][j]`, None where it could not score."""
    flat_prompts = [prompt for prompt, completions in zip(prompts, samples, strict=True) for _ in completions]
    flat_completions = [completion for completions in samples for completion in completions]
    trl_prompts, trl_completions, columns = trl_inputs(flat_prompts, flat_completions)
    flat = list(reward_fn(prompts=trl_prompts, completions=trl_completions, **columns))
    if len(flat) != len(flat_completions):
        raise ValueError(
            f"reward function {reward_name(reward_fn)} returned {len(flat)} rewards for "
            f"{len(flat_completions)} completions; it must return one per completion"
        )
    rewards, start = [], 0
    for completions in samples:
        rewards.append(flat[start : start + len(completions)])
        start += len(completions)
    return rewards
