"""The rollout side of the online loop, shared by every online recipe (online-rl now; J1, DivPO and
LPO next): which prompts a step samples, with which settings, and how the samples are scored.

    source = build_rollout_source(cfg.rollouts, cfg.tasks, cfg.group_scorer, seed=cfg.seed)
    groups = source.sample(engine, steps)            # one generate call for the steps of a burst
    generate_burst(source, engine, step, sync_every, num_steps, buffer)   # + timing metrics
    offline_rollouts(source, engine, seed_model, stage_dir, num_steps=..., generator=...)  # s = 0

The prompts of step k are a pure function of (seed, k) (`data.prompt_source`), split over the tasks
by weight (from one shared source, or each task's share from its own, `TaskConfig.prompts`) and then
over data-parallel ranks; each task names its reward (`rewards.registry`), and an optional group
scorer sees every group of a burst after the per-sample rubric.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from selftaught import dist
from selftaught.config import to_dict
from selftaught.configs.judge import JudgeOrders, JudgeRLConfig
from selftaught.configs.train import RolloutConfig as RolloutConfig
from selftaught.configs.train import TaskConfig as TaskConfig
from selftaught.configs.train import check_task_prompts
from selftaught.data.catalog import load_records
from selftaught.data.formats import prompts_from_records
from selftaught.data.prompt_source import PromptSource, load_prompt_source
from selftaught.data.shards import compute_fingerprint, run_stage, write_dataset_card
from selftaught.data.sources import write_jsonl
from selftaught.engines.base import Engine, SamplingParams
from selftaught.judges.evaluate import load_judge_pairs
from selftaught.judges.rl import JudgePromptSource, JudgeScorer
from selftaught.judges.templates import get_template
from selftaught.rewards import Rubric, num_tokens_reward
from selftaught.rewards.registry import build_reward, load_callable
from selftaught.selection.diversity import (
    Criterion,
    DiversityJudge,
    divpo_pairs,
    embedding_distance,
    model_probability,
    word_frequency,
)
from selftaught.selection.rollouts import PairRuleFn, RolloutGroup, pair_rule
from selftaught.train.online import GroupScorer, RolloutBuffer, add_rollouts, sample_rollouts
from selftaught.train.reference import weights_fingerprint
from selftaught.train.sync import burst_steps
from selftaught.types import Prompt

ROLLOUTS_TEMPLATE = "online-rl-rollouts@1"
"""Version of the offline rollout stage's record format; part of its fingerprint."""
SAVED_STEP = re.compile(r"step-(\d{7})(?:-rank(\d+))?\.jsonl(?:\.tmp)?")
"""A saved step's file (`save_rollouts`), or what a killed write of one left."""


def build_pair_rule(task: TaskConfig) -> PairRuleFn:
    """The pair rule `task.pair_rule` names; `divpo` is built from `task.divpo` (loads the MiniLM
    embedder or the judge model when its criterion needs one)."""
    if task.pair_rule != "divpo":
        return pair_rule(task.pair_rule)
    config = task.divpo
    score = judge = None
    match config.criterion:
        case Criterion.PROBABILITY:
            score = model_probability
        case Criterion.FREQUENCY:
            score = word_frequency(config.units)
        case Criterion.EMBEDDING:
            from selftaught.models.embeddings import Embedder

            score = embedding_distance(Embedder().encode)
        case Criterion.JUDGE:
            judge = DiversityJudge(_greedy_generate(config.judge_model, config.judge_max_new_tokens))

    def divpo_rule(group: RolloutGroup, rng: Any) -> Any:
        return divpo_pairs(group.prompt, group.completions, group.rewards, config, rng, score, judge)

    return divpo_rule


def _greedy_generate(model: str | None, max_new_tokens: int) -> Any:
    """`prompts -> texts` with the model `model` names, greedy (the DivPO diversity judge)."""
    from selftaught.engines.hf import HFEngine
    from selftaught.models.io import load_model

    engine = HFEngine(*load_model(str(model)))
    sampling = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    return lambda prompts: [completions[0].text for completions in engine.generate(prompts, sampling)]


@dataclass
class RolloutSource:
    """Everything a step's rollouts depend on but the generator's weights."""

    prompts: PromptSource | JudgePromptSource | None
    """The shared source (None when every task has its own: `task_sources`); J1: judge prompts
    built from pairs (`judge.pairs`), siblings kept together."""
    tasks: list[TaskConfig]
    settings: RolloutConfig
    rubric: Rubric
    scorer: GroupScorer | None
    seed: int
    task_sources: list[PromptSource] | None = None
    """Each task's own source (`TaskConfig.prompts`), drawing its weight share of every step."""

    def step_prompts(self, step: int) -> list[Prompt]:
        """This rank's prompts of optimizer step `step`, each with its task: split over `tasks` by
        weight, or, with `rollouts.task_from_records`, the task its record names (a source that mixes
        tasks, e.g. `world:lpo-prompts`), or, with per-task sources, each task's share from its own
        source (tasks in order)."""
        if self.task_sources is not None:
            tasked = [
                replace(prompt, task=task.name)
                for task, source in zip(self.tasks, self.task_sources, strict=True)
                for prompt in source.at(step)
            ]
            return tasked[dist.rank() :: dist.world_size()]
        assert self.prompts is not None
        if isinstance(self.prompts, JudgePromptSource):  # whole pairs per rank: siblings stay together
            units = self.prompts.units_at(step)[dist.rank() :: dist.world_size()]
            return [replace(prompt, task=self.tasks[0].name) for unit in units for prompt in unit]
        batch = self.prompts.at(step)
        if self.settings.task_from_records:
            known = {task.name for task in self.tasks}
            for prompt in batch:
                if prompt.task not in known:
                    raise ValueError(
                        f"prompt {prompt.id!r} has task {prompt.task!r}, which is not one of tasks "
                        f"{sorted(known)} (rollouts.task_from_records is on)"
                    )
            return batch[dist.rank() :: dist.world_size()]
        counts = task_counts(self.tasks, len(batch))
        names = [task.name for task, count in zip(self.tasks, counts, strict=True) for _ in range(count)]
        tasked = [replace(prompt, task=name) for prompt, name in zip(batch, names, strict=True)]
        return tasked[dist.rank() :: dist.world_size()]

    def sample(self, engine: Engine, steps: list[int]) -> list[RolloutGroup]:
        """Sample and score the rollouts of `steps` in one `generate` call (one burst)."""
        batch = [(step, prompt) for step in steps for prompt in self.step_prompts(step)]
        data = self.settings
        sampling = SamplingParams(
            temperature=data.temperature,
            top_p=data.top_p,
            n=data.samples_per_prompt,
            max_new_tokens=data.max_new_tokens,
            stop=data.stop,
            seed=self.seed * 1_000_003 + steps[0],
            per_prompt_seeds=data.per_prompt_seeds or dist.world_size() > 1,
        )
        return sample_rollouts(engine, self.rubric, batch, sampling, group_scorer=self.scorer)


def task_counts(tasks: list[TaskConfig], num_prompts: int) -> list[int]:
    """Each task's share of `num_prompts` by weight (rounded down; the first task takes the rest)."""
    total = sum(task.weight for task in tasks)
    counts = [int(num_prompts * task.weight / total) for task in tasks]
    counts[0] += num_prompts - sum(counts)
    return counts


def build_rollout_source(
    settings: RolloutConfig,
    tasks: list[TaskConfig],
    group_scorer: str | None,
    *,
    seed: int,
    judge: JudgeRLConfig | None = None,
) -> RolloutSource:
    """The prompts, rubric and group scorer of an online run (bad names fail here, before any work):
    one shared prompt source, or each task's own (`TaskConfig.prompts`) drawing its weight share,
    or (J1, `judge.pairs` set) judge prompts built from pairs, scored by `judge.rewards` through
    `JudgeScorer` unless `group_scorer` names another scorer."""
    check_task_prompts(tasks, settings)
    if judge is not None and judge.pairs is not None:
        return _judge_rollout_source(settings, tasks, group_scorer, seed, judge)
    prompts, sources = None, None
    if tasks and tasks[0].prompts is not None:
        counts = task_counts(tasks, settings.num_prompts)
        sources = [
            _load_source(str(task.prompts), settings, count, seed)
            for task, count in zip(tasks, counts, strict=True)
        ]
    else:
        prompts = _load_source(settings.prompts, settings, settings.num_prompts, seed)
    scorer = load_callable(group_scorer, "group_scorer") if group_scorer else None
    return RolloutSource(prompts, tasks, settings, build_rubric(tasks), scorer, seed, task_sources=sources)


def _judge_rollout_source(
    settings: RolloutConfig,
    tasks: list[TaskConfig],
    group_scorer: str | None,
    seed: int,
    judge: JudgeRLConfig,
) -> RolloutSource:
    """J1: judge prompts of `judge.pairs`, the first task's reward per sample, `judge.rewards` per group."""
    if len(tasks) != 1 or tasks[0].prompts is not None or settings.task_from_records:
        raise ValueError(
            "judge.pairs makes every prompt a judge prompt: give exactly one task (its reward, e.g. "
            "judge_verdict, is logged per sample), without tasks[0].prompts or rollouts.task_from_records"
        )
    assert judge.pairs is not None
    pairs = load_judge_pairs(judge.pairs, limit=judge.num_pairs, seed=seed, levels=settings.levels)
    source = JudgePromptSource(
        pairs,
        get_template(judge.template),
        settings.num_prompts,
        seed,
        both_orders=judge.orders == JudgeOrders.BOTH,
        prompt_style=judge.prompt_style,
    )
    scorer = load_callable(group_scorer, "group_scorer") if group_scorer else JudgeScorer(judge.rewards)
    return RolloutSource(source, tasks, settings, build_rubric(tasks), scorer, seed)


def _load_source(spec: str, settings: RolloutConfig, per_step: int, seed: int) -> PromptSource:
    """The prompt source `spec` with the options of `settings`, `per_step` prompts a step."""
    return load_prompt_source(
        spec,
        per_step=per_step,
        seed=seed,
        pool_size=settings.pool_size,
        levels=settings.levels,
        num_shots=settings.num_shots,
        limit=settings.limit,
    )


def task_eval_prompts(settings: RolloutConfig, tasks: list[TaskConfig], per_task: int) -> list[Prompt]:
    """The first `per_task` prompts of each task's held-out source (`TaskConfig.eval_prompts`, read
    with the options of `settings` as the training prompts are), labelled with the task."""
    check_task_prompts(tasks, settings)
    prompts = []
    for task in tasks:
        spec = str(task.eval_prompts)
        records = load_records(spec, limit=per_task, num=per_task, levels=settings.levels, seed=0)
        batch = prompts_from_records(records, spec, num_shots=settings.num_shots)
        prompts += [replace(prompt, task=task.name) for prompt in batch]
    return prompts


def build_rubric(tasks: list[TaskConfig]) -> Rubric:
    """One reward function per task (plus the length bonus where set), routed by `Prompt.task`."""
    functions: dict[str, list[Any]] = {}
    for task in tasks:
        bonus = [(num_tokens_reward, task.length_bonus)] if task.length_bonus else []
        functions[task.name] = [build_reward(reward_spec(task), judge_model=task.judge_model), *bonus]
    return Rubric(functions)


def reward_spec(task: TaskConfig) -> str:
    """`task.reward`, with the bare `reward_model` pointing at the task's `reward_model` directory."""
    if task.reward != "reward_model":
        return task.reward
    if not task.reward_model:
        raise ValueError(
            f"task {task.name!r} has reward=reward_model but no reward_model path; train one with "
            "`selftaught reward-model` and set its `model` directory as the task's reward_model"
        )
    return f"reward_model:{task.reward_model}"


def generate_burst(
    source: RolloutSource, engine: Engine, step: int, sync_every: int, num_steps: int, buffer: RolloutBuffer
) -> dict[str, float]:
    """Fill `buffer` with the rollouts of the window starting at sync step `step`; timing metrics."""
    start = time.perf_counter()
    steps = burst_steps(step, sync_every, num_steps)
    groups = source.sample(engine, steps)
    add_rollouts(buffer, groups)
    seconds = time.perf_counter() - start
    num_tokens = sum(c.num_tokens for g in groups for c in g.completions)
    return {
        "burst_steps": len(steps),
        "generation_seconds": seconds,
        "generation_tokens_per_s": num_tokens / seconds,
    }


def offline_rollouts(
    source: RolloutSource,
    engine: Any,
    seed_model: Any,
    stage_dir: Path,
    *,
    num_steps: int,
    generator: str,
    generator_dtype: str = "float32",
) -> RolloutBuffer:
    """s = 0: the rollouts of every step, sampled from `seed_model` once, as a data stage (one stage
    per rank under torchrun: each rank samples its own share). `generator_dtype`: the dtype the
    engine holds the weights in (`RunConfig.precision.generator_dtype`), keyed when not float32."""
    data = source.settings
    settings = {
        "template": ROLLOUTS_TEMPLATE,
        "weights": weights_fingerprint(seed_model),
        "seed": source.seed,
        "rollouts": _fingerprint_settings(data),
        "tasks": [to_dict(t) for t in source.tasks],
        "num_steps": num_steps,
    }
    if generator_dtype != "float32":  # absent from the stages written before it was a choice
        settings["generator_dtype"] = generator_dtype
    fingerprint = compute_fingerprint(settings)
    engine.sync_weights(seed_model, 0)  # a remote server then surely serves the seed
    if dist.world_size() > 1:
        stage_dir = stage_dir.with_name(f"{stage_dir.name}-rank{dist.rank()}")
    records = run_stage(
        stage_dir,
        list(range(1, num_steps + 1)),
        lambda steps: [g.to_record() for g in source.sample(engine, steps)],
        shard_size=max(1, 4096 // (data.num_prompts * data.samples_per_prompt)),
        fingerprint=fingerprint,
        meta={"generator": generator, "seed": source.seed, "template": ROLLOUTS_TEMPLATE},
        desc="offline rollouts",
    )
    buffer: RolloutBuffer = {}
    add_rollouts(buffer, [RolloutGroup.from_record(record) for record in records])
    return buffer


def _fingerprint_settings(data: RolloutConfig) -> dict[str, Any]:
    """The rollout settings that change the offline stage; fields added after v1 enter only when set,
    so a stage written before them is still reused."""
    settings = dict(vars(data))
    new: dict[str, Any] = {
        "prompts": "world:prompts",
        "stop": [],
        "limit": None,
        "num_shots": 0,
        "per_prompt_seeds": False,
    }
    for key, default in new.items():
        if settings[key] == default:
            del settings[key]
    return settings


def save_step_rollouts(directory: Path, step: int, groups: list[RolloutGroup]) -> Path:
    """Write the scored groups of optimizer step `step` to `<directory>/step-NNNNNNN.jsonl` (one
    `RolloutGroup.to_record()` per line; `-rank<r>` before `.jsonl` on rank r > 0 of a torchrun job,
    each rank saving its own share), atomically; the dataset card is written with the first step."""
    if dist.is_main() and not (directory / "README.md").is_file():
        write_dataset_card(
            directory,
            "step-*.jsonl",
            "# Rollouts\n\nThe scored rollout groups of each optimizer step of an online-rl run "
            "(`save_rollouts=true`): one JSON line per prompt with `step`, `prompt`, `completions` "
            "(text, token ids, logprobs, policy version) and `rewards`.\n\n"
            "```python\nimport datasets\n\n"
            'datasets.load_dataset("rollouts", split="train")\n'
            'datasets.load_dataset("json", data_files="rollouts/step-*.jsonl", split="train")\n```\n',
        )
    suffix = f"-rank{dist.rank()}" if dist.rank() else ""
    path = directory / f"step-{step:07d}{suffix}.jsonl"
    write_jsonl(path, [group.to_record() for group in groups])
    return path


def rewind_saved_rollouts(directory: Path, step: int) -> int:
    """Delete this rank's saved steps after `step` (a resumed run redoes them) and any half-written
    file; how many steps were dropped."""
    dropped = 0
    for path in directory.glob("step-*.jsonl*") if directory.is_dir() else []:
        match = SAVED_STEP.fullmatch(path.name)
        if match is None or int(match.group(2) or 0) != dist.rank():
            continue
        if path.name.endswith(".tmp") or int(match.group(1)) > step:
            dropped += not path.name.endswith(".tmp")
            path.unlink()
    return dropped
