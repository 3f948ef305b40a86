"""online-rl: offline, semi-online and online DPO or GRPO with one sync interval `s` (papers_B §1).

Algorithm (papers_B §1.4; Lanchantin et al. 2025, "Bridging offline and online RL"):
  policy, generator, reference <- the seed model (the generator and reference are separate copies)
  for step k = 1 .. K:
    1. if k is a sync point of `sync_every` (s): generator <- policy (version k - 1), then sample the
       rollouts of every step up to the next sync point in one burst (`train.sync.burst_steps`).
       s = 1: online; s > 1: semi-online; s = 0: offline, all rollouts sampled from the seed
       before training, as a data stage (`<out_dir>/rollouts`) that a rerun reuses.
    2. if k is a sync point of `ref_sync_every` (0 = never): reference <- policy.
    3. rollouts of step k: `num_prompts` prompts of `rollouts.prompts` (a task mix) x N samples at
       temperature 1, top-p 1; each completion records the policy version that sampled it
       (staleness = k-1-version). Rewards come from a `Rubric` that routes each prompt by its task
       (any named reward: an answer check, a reward model, an LLM judge, a user's function), so one
       batch mixes reward kinds; an optional `group_scorer` then sees every group of the burst.
    4. DPO: per task, `pair_rule` builds pairs (random correct vs random incorrect, best vs worst,
       all pairs, or a user's rule); prompts with no valid pair are dropped and counted. Loss
       -log sigmoid(beta [(l_c - ref_c) - (l_r - ref_r)]) summed over pairs / pairs of the step.
       GRPO: all N samples with advantages r - mean(r) (no std, no length normalisation), clipped
       ratio, k3 KL to the reference (kl_coef 0.001). At s = 1 old logps = policy logps detached
       (ratio 1, strictly on-policy); at s != 1 they are the generator's logprobs, so the clipped
       ratio does the off-policy correction (the paper runs GRPO at s = 1 only).
    5. one optimizer update; log rollout, pair and training metrics; validate every `eval.every`.

The generator (`generator.kind`) is an in-process copy by default, even at s = 1 (the copy is
cheap for small models); sharing weights with the policy (`HFEngine(model)`) would save the memory
of one model at s = 1. Any `SyncableEngine` can take its place: vLLM in this process (`vllm`: fast
sampling for bigger models and bursts; a sync reloads the weights in place from a file), or a
remote OpenAI-compatible server whose `sync_weights` saves a checkpoint and reloads it (`remote`:
suits s = 0 and s > 1). Resume is exact: a checkpoint stores the pending rollouts of the
current window (and the reference weights when it is re-synced); prompts and sampling seeds are
functions of the step. A step whose rollouts give no pair (or no scored GRPO group) makes no update.

Under torchrun (DDP) each rank samples, scores and trains on its share of every step's prompts,
and the loss is divided by the units (pairs, tokens or sequences) of all ranks, so 2 processes
take the step of 1 (with `rollouts.per_prompt_seeds`, set automatically, each prompt's samples come
from its own random stream and do not depend on the split).

Deviations: Adam eps and lr are the tiny model's (TINYWORLD §3b); GRPO's NONE normalisation divides
by the sequences of the step (fairseq2: by the group size, i.e. an lr scale).

CPU:  selftaught online-rl                       (tiny: semi-online DPO, s = 10)
      selftaught online-rl --preset tiny-grpo    (GRPO, s = 1)
      selftaught online-rl --preset gemma3-270m-grpo   (GRPO on GSM8K prompts, LoRA, math reward)
      selftaught online-rl rollouts.prompts=my.jsonl tasks[0].reward=mypkg.rewards:score
DDP:  torchrun --nproc-per-node 2 -m selftaught.cli online-rl
vLLM: selftaught online-rl model=<dir> generator.kind=vllm   (pip install 'selftaught[vllm]')
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from selftaught import dist
from selftaught.data.prompt_source import PromptSource, load_prompt_source
from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.engines.base import SamplingParams
from selftaught.losses.grpo import AdvantageType, LossNormalization
from selftaught.models.policy import LoraConfig, load_policy, policy_source
from selftaught.rewards import Rubric, num_tokens_reward
from selftaught.rewards.registry import build_reward, load_callable
from selftaught.runlog import RunLog
from selftaught.selection.rollouts import RolloutGroup, pair_rule, rollout_metrics
from selftaught.train import generators, loop
from selftaught.train.evaluation import eval_metrics, evaluate_policy
from selftaught.train.generators import GeneratorConfig
from selftaught.train.loop import RunConfig
from selftaught.train.objectives import Objective, OnlineObjective, PairObjective, PolicyGradientObjective
from selftaught.train.online import (
    GroupScorer,
    RolloutBuffer,
    add_rollouts,
    frozen_copy,
    restore_online_state,
    sample_rollouts,
    save_online_checkpoint,
    update_policy,
)
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.parallel import wrap_model
from selftaught.train.reference import weights_fingerprint
from selftaught.train.sync import SyncableEngine, burst_steps, check_interval, copy_weights, is_sync_step
from selftaught.types import Prompt

ROLLOUTS_TEMPLATE = "online-rl-rollouts@1"
"""Version of the offline rollout stage's record format; part of its fingerprint."""


@dataclass
class TaskConfig:
    """One task of the prompt mix: a share of each step's prompts, and the reward that scores them."""

    name: str = "arith"
    reward: str = "world_answer"
    """A named reward (`world_answer`, `math_answer`, `choice`, `exact_match`), `reward_model:<dir>`,
    `judge:<template>@<n>` (with `judge_model`), or a user's `package.module:function` with TRL's
    signature `f(prompts, completions, **columns)`; `reward_model` alone reads the `reward_model`
    field (e.g. the reward-model recipe's output). See `selftaught.rewards.registry`."""
    reward_model: str | None = None
    judge_model: str | None = None
    """`judge:` rewards: the judge's model spec."""
    pair_rule: str = "correct_vs_incorrect"
    """DPO pair builder for this task (`correct_vs_incorrect`, `best_vs_worst` for scalar rewards,
    `all_pairs`, or `package.module:function`)."""
    weight: float = 1.0
    """Share of each step's prompts (normalised over the tasks)."""
    length_bonus: float = 0.0
    """Added to the reward per completion token: a deliberately length-biased reward (papers_B
    §1.12's non-verifiable analogue). Validation then logs the reward per token, the paper's
    criterion for checkpoint selection."""


@dataclass
class RolloutConfig:
    prompts: str = "world:prompts"
    """Prompt source: `world:prompts`, or a TRL prompt-only file (`prompt` as text or messages; extra
    columns such as `answer` reach the reward functions as keyword arguments), or a GSM8K file."""
    num_prompts: int = 32
    """Prompts per optimizer step (global, over all processes)."""
    samples_per_prompt: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    stop: list[str] = field(default_factory=list)
    """Stop strings (few-shot prompts: the next "Question:")."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    """World prompts: difficulty levels."""
    pool_size: int = 4096
    """World prompts: distinct train-split problems the step batches are drawn from (files: all records,
    or the first `limit`)."""
    limit: int | None = None
    num_shots: int = 0
    """GSM8K prompt files: few-shot exemplars in a raw-text prompt (for base models); 0 = a chat turn."""
    generation_batch_size: int = 256
    per_prompt_seeds: bool = False
    """Each prompt's samples from their own random stream (seed, prompt id, sample), independent of
    the other prompts of the call; forced on under torchrun, so N processes sample what 1 does."""


@dataclass
class OnlineRLConfig(RunConfig):
    out_dir: str = "runs/online-rl"
    seed: int = 5
    """Seed of the prompt order, the sampling and the pair choice (TINYWORLD: RL prompts 5000+)."""
    log_every: int = 1
    checkpoint_every: int = 50
    loss: Objective = Objective.DPO
    sync_every: int = 10
    """s: refresh the generator from the policy every s steps (1 online, > 1 semi-online, 0 offline)."""
    ref_sync_every: int = 0
    """Refresh the reference from the policy every this many steps (0: the frozen seed)."""
    rollouts: RolloutConfig = field(default_factory=RolloutConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    tasks: list[TaskConfig] = field(default_factory=lambda: [TaskConfig()])
    group_scorer: str | None = None
    """`package.module:function` called with every scored rollout group of a burst (sibling groups
    included) and returning their rewards (J1's both-order consistency reward)."""
    beta: float = 0.1
    """DPO inverse temperature."""
    kl_coef: float = 0.001
    """GRPO: weight of the k3 KL to the reference (0: no reference model)."""
    advantage: AdvantageType = AdvantageType.GROUP_MEAN
    grpo_normalization: LossNormalization = LossNormalization.NONE
    clip: float = 0.2
    """GRPO ratio clip (both sides); inactive at s = 1."""
    micro_batch_tokens: int = 8192
    """Padded tokens per micro-batch; 0 = one micro-batch."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-5, eps=1e-8, schedule="constant"))
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self) -> None:
        check_interval("sync_every", self.sync_every)
        check_interval("ref_sync_every", self.ref_sync_every)
        if not self.tasks:
            raise ValueError("tasks must name at least one task, e.g. tasks=[{name: arith}]")
        for task in self.tasks:
            if task.length_bonus and task.pair_rule == "correct_vs_incorrect" and self.loss == Objective.DPO:
                raise ValueError(
                    f"task {task.name!r}: length_bonus makes rewards scalar; set its pair_rule to best_vs_worst"
                )
        if self.rollouts.samples_per_prompt < 2:
            raise ValueError("rollouts.samples_per_prompt must be >= 2 (pairs and group baselines need two)")


def run(cfg: OnlineRLConfig) -> dict[str, Any]:
    dist.init_distributed()
    torch.manual_seed(cfg.seed)
    policy, tokenizer = load_policy(cfg.model, cfg.lora)
    generator = build_generator(cfg, policy, tokenizer)
    reference = frozen_copy(policy) if cfg.loss == Objective.DPO or cfg.kl_coef else None
    synced_reference = reference if cfg.ref_sync_every else None  # re-synced: saved with checkpoints
    model = wrap_model(policy, cfg.parallel)
    rubric = build_rubric(cfg.tasks)
    scorer = load_callable(cfg.group_scorer, "group_scorer") if cfg.group_scorer else None
    prompts = build_prompt_source(cfg)
    objective = build_objective(cfg, reference)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    buffer: RolloutBuffer = {}
    if cfg.sync_every == 0:
        buffer = offline_rollouts(cfg, prompts, generator, policy, rubric, scorer)
    validate = partial(validation_metrics, policy, tokenizer, cfg, rubric)
    with RunLog(cfg.out_dir, cfg, enabled=dist.is_main()) as run_log:
        state = loop.start(cfg, run_log, model, optimizer, scheduler, validate)
        if state["step"]:
            restore_online_state(state, loop.checkpoint_dir(cfg), buffer, synced_reference)
        for step in run_log.progress(loop.remaining_steps(cfg, state), total=cfg.num_steps):
            metrics: dict[str, float] = {}
            if cfg.sync_every and is_sync_step(step, cfg.sync_every):
                generator.sync_weights(policy, step - 1)
                metrics.update(generate_burst(cfg, prompts, generator, rubric, scorer, step, buffer))
            if synced_reference is not None and step > 1 and is_sync_step(step, cfg.ref_sync_every):
                copy_weights(policy, synced_reference)
            groups = buffer.pop(step)
            metrics.update(rollout_metrics(groups, step))
            micro_batches, data_metrics = objective.micro_batches(groups, tokenizer)
            metrics.update(data_metrics)  # no pair / no scored group on every rank: no update (counted)
            metrics.update(update_policy(model, micro_batches, objective, optimizer, scheduler, cfg.optim))
            checkpoint = partial(
                save_online_checkpoint,
                loop.checkpoint_dir(cfg),
                model=model,
                optimizer=optimizer,
                scheduler=scheduler,
                buffer=buffer if cfg.sync_every else {},  # offline: the rollouts are a data stage
                reference=synced_reference,
                generator_version=generator.policy_version,
                keep_last=cfg.keep_last,
            )
            loop.end_of_step(cfg, run_log, step, metrics, validate, checkpoint)
        final = loop.finish(cfg, run_log, model, tokenizer, validate)
    return {"out_dir": cfg.out_dir, **final}


# --- plug points -----------------------------------------------------------------------------------


def build_objective(cfg: OnlineRLConfig, reference: Any) -> OnlineObjective:
    """The one dispatch on `cfg.loss`."""
    match cfg.loss:
        case Objective.DPO:
            rules = {task.name: pair_rule(task.pair_rule) for task in cfg.tasks}
            return PairObjective(reference, rules, cfg.beta, cfg.seed, cfg.micro_batch_tokens)
        case Objective.GRPO:
            return PolicyGradientObjective(
                reference,
                cfg.advantage,
                cfg.grpo_normalization,
                cfg.clip,
                cfg.kl_coef,
                on_policy=cfg.sync_every == 1,
                micro_batch_tokens=cfg.micro_batch_tokens,
            )
    raise AssertionError(f"unhandled objective {cfg.loss}")


def build_generator(cfg: OnlineRLConfig, model: Any, tokenizer: Any) -> SyncableEngine:
    """The rollout engine of `cfg.generator`, holding the seed weights (policy version 0)."""
    if cfg.generator.kind == "vllm" and cfg.lora.r > 0:
        raise ValueError(
            "generator.kind=vllm serves full weights, but lora.r > 0 trains an adapter; set lora.r=0 "
            "(full fine-tuning) or use generator.kind=hf"
        )
    return generators.build_generator(
        cfg.generator,
        model,
        tokenizer,
        source=policy_source(cfg.model) if cfg.generator.kind == "vllm" else None,
        run_dir=Path(cfg.out_dir),
        batch_size=cfg.rollouts.generation_batch_size,
    )


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


def build_prompt_source(cfg: OnlineRLConfig) -> PromptSource:
    data = cfg.rollouts
    return load_prompt_source(
        data.prompts,
        per_step=data.num_prompts,
        seed=cfg.seed,
        pool_size=data.pool_size,
        levels=data.levels,
        num_shots=data.num_shots,
        limit=data.limit,
    )


def validation_metrics(model: Any, tokenizer: Any, cfg: OnlineRLConfig, rubric: Rubric) -> dict[str, float]:
    """Validation accuracy (`eval_metrics`) and, for each task whose reward is not the answer check,
    the mean reward of the same validation samples and that reward per token (papers_B §1.4.6)."""
    result = evaluate_policy(model, tokenizer, cfg.eval, seed=cfg.seed)
    metrics = eval_metrics(result)
    completions = [c for cs in result.completions for c in cs]
    prompts = [p for p, cs in zip(result.prompts, result.completions, strict=True) for _ in cs]
    mean_tokens = sum(c.num_tokens for c in completions) / len(completions)
    for task in cfg.tasks:
        if task.reward == "world_answer" and not task.length_bonus:
            continue
        scores = rubric.score([replace(p, task=task.name) for p in prompts], completions).values
        values = [v for v in scores if v is not None]
        if values:
            metrics[f"val_reward_{task.name}"] = sum(values) / len(values)
            metrics[f"val_reward_per_token_{task.name}"] = metrics[f"val_reward_{task.name}"] / max(
                mean_tokens, 1
            )
    return metrics


# --- rollouts --------------------------------------------------------------------------------------


def step_prompts(cfg: OnlineRLConfig, prompts: PromptSource, step: int) -> list[Prompt]:
    """This rank's prompts of optimizer step `step`, each with its task (the mix of `cfg.tasks`)."""
    batch = prompts.at(step)
    total = sum(task.weight for task in cfg.tasks)
    counts = [int(len(batch) * task.weight / total) for task in cfg.tasks]
    counts[0] += len(batch) - sum(counts)
    names = [task.name for task, count in zip(cfg.tasks, counts, strict=True) for _ in range(count)]
    tasked = [replace(prompt, task=name) for prompt, name in zip(batch, names, strict=True)]
    return tasked[dist.rank() :: dist.world_size()]


def generate_rollouts(
    cfg: OnlineRLConfig,
    prompts: PromptSource,
    engine: SyncableEngine,
    rubric: Rubric,
    scorer: GroupScorer | None,
    steps: list[int],
) -> list[RolloutGroup]:
    """Sample and score the rollouts of `steps` in one `generate` call (one burst)."""
    batch = [(step, prompt) for step in steps for prompt in step_prompts(cfg, prompts, step)]
    data = cfg.rollouts
    sampling = SamplingParams(
        temperature=data.temperature,
        top_p=data.top_p,
        n=data.samples_per_prompt,
        max_new_tokens=data.max_new_tokens,
        stop=data.stop,
        seed=cfg.seed * 1_000_003 + steps[0],
        per_prompt_seeds=data.per_prompt_seeds or dist.world_size() > 1,
    )
    return sample_rollouts(engine, rubric, batch, sampling, group_scorer=scorer)


def generate_burst(
    cfg: OnlineRLConfig,
    prompts: PromptSource,
    engine: SyncableEngine,
    rubric: Rubric,
    scorer: GroupScorer | None,
    step: int,
    buffer: RolloutBuffer,
) -> dict[str, float]:
    """Fill `buffer` with the rollouts of the window starting at sync step `step`; timing metrics."""
    start = time.perf_counter()
    steps = burst_steps(step, cfg.sync_every, cfg.num_steps)
    groups = generate_rollouts(cfg, prompts, engine, rubric, scorer, steps)
    add_rollouts(buffer, groups)
    seconds = time.perf_counter() - start
    num_tokens = sum(c.num_tokens for g in groups for c in g.completions)
    return {
        "burst_steps": len(steps),
        "generation_seconds": seconds,
        "generation_tokens_per_s": num_tokens / seconds,
    }


def offline_rollouts(
    cfg: OnlineRLConfig,
    prompts: PromptSource,
    engine: SyncableEngine,
    seed_model: Any,
    rubric: Rubric,
    scorer: GroupScorer | None,
) -> RolloutBuffer:
    """s = 0: the rollouts of every step, sampled from the seed model once, as a data stage (one
    stage per rank under torchrun: each rank samples its own share)."""
    data = cfg.rollouts
    fingerprint = compute_fingerprint(
        {
            "template": ROLLOUTS_TEMPLATE,
            "weights": weights_fingerprint(seed_model),
            "seed": cfg.seed,
            "rollouts": _fingerprint_settings(data),
            "tasks": [vars(t) for t in cfg.tasks],
            "num_steps": cfg.num_steps,
        }
    )
    engine.sync_weights(seed_model, 0)  # a remote server then surely serves the seed
    stage = "rollouts" if dist.world_size() == 1 else f"rollouts-rank{dist.rank()}"
    records = run_stage(
        Path(cfg.out_dir) / stage,
        list(range(1, cfg.num_steps + 1)),
        lambda steps: [g.to_record() for g in generate_rollouts(cfg, prompts, engine, rubric, scorer, steps)],
        shard_size=max(1, 4096 // (data.num_prompts * data.samples_per_prompt)),
        fingerprint=fingerprint,
        meta={"generator": cfg.model, "seed": cfg.seed, "template": ROLLOUTS_TEMPLATE},
        desc="offline rollouts",
    )
    buffer: RolloutBuffer = {}
    add_rollouts(buffer, [RolloutGroup.from_record(record) for record in records])
    return buffer


def _fingerprint_settings(data: RolloutConfig) -> dict[str, Any]:
    """The rollout settings that change the offline stage; fields added after v1 enter only when set,
    so a stage written before them is still reused."""
    settings = dict(vars(data))
    new = {"prompts": "world:prompts", "stop": [], "limit": None, "num_shots": 0, "per_prompt_seeds": False}
    for key, default in new.items():
        if settings[key] == default:
            del settings[key]
    return settings
