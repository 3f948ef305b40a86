"""online-rl: offline, semi-online and online DPO or GRPO with one sync interval `s` (papers_B §1).

Algorithm (papers_B §1.4; Lanchantin et al. 2025, "Bridging offline and online RL"):
  policy, generator, reference <- the seed model (the generator and reference are separate copies)
  for step k = 1 .. K:
    1. if k is a sync point of `sync_every` (s): generator <- policy (version k - 1), then sample the
       rollouts of every step up to the next sync point in one burst (`train.sync.burst_steps`).
       s = 1: online; s > 1: semi-online; s = 0: offline, all rollouts sampled from the seed
       before training, as a data stage (`<out_dir>/rollouts`) that a rerun reuses.
    2. if k is a sync point of `ref_sync_every` (0 = never): reference <- policy.
    3. rollouts of step k: `num_prompts` train problems (a task mix) x N samples at temperature 1,
       top-p 1; each completion records the policy version that sampled it (staleness = k-1-version).
       Rewards come from a `Rubric` that routes each prompt by its task (verifiable answer check or
       a reward model), so one batch mixes both reward kinds.
    4. DPO: per task, `pair_rule` builds pairs (random correct vs random incorrect, best vs worst,
       or all pairs); prompts with no valid pair are dropped and counted (pair yield). Loss
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

Deviations: one process only; Adam eps and lr are the tiny model's (TINYWORLD §3b); GRPO's NONE
normalisation divides by the sequences of the step (fairseq2: by the group size, i.e. an lr scale).

CPU:  selftaught online-rl                       (tiny: semi-online DPO, s = 10)
      selftaught online-rl --preset tiny-grpo    (GRPO, s = 1)
vLLM: selftaught online-rl model=<dir> generator.kind=vllm   (pip install 'selftaught[vllm]')
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch

from selftaught import dist
from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.engines.base import SamplingParams
from selftaught.losses.grpo import AdvantageType, LossNormalization
from selftaught.recipes.common import (
    EvalConfig,
    LoraConfig,
    batch_indices,
    eval_metrics,
    evaluate_policy,
    load_policy,
    policy_source,
    resume,
    save_final_model,
)
from selftaught.rewards import RewardModel, Rubric, num_tokens_reward, world_answer_reward
from selftaught.runlog import RunLog
from selftaught.selection.pairs import compute_pair_stats
from selftaught.selection.rollouts import PairRule, RolloutGroup, rollout_metrics, scored_groups, select_pairs
from selftaught.train import generators
from selftaught.train.generators import GeneratorConfig
from selftaught.train.online import (
    RolloutBuffer,
    add_rollouts,
    frozen_copy,
    restore_online_state,
    rollout_examples,
    sample_rollouts,
    save_online_checkpoint,
)
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.policy_gradient import build_rollout_batches, group_advantages, rollout_loss
from selftaught.train.preference import build_pair_batches, pair_loss
from selftaught.train.reference import compute_sequence_logps, weights_fingerprint
from selftaught.train.step import train_step
from selftaught.train.sync import SyncableEngine, burst_steps, check_interval, copy_weights, is_sync_step
from selftaught.types import Prompt
from selftaught.world.arith import Problem, sample_problems, to_prompt

ROLLOUTS_TEMPLATE = "online-rl-rollouts@1"
"""Version of the offline rollout stage's record format; part of its fingerprint."""


@dataclass
class TaskConfig:
    """One task of the prompt mix: tiny-world problems whose `Prompt.task` routes their reward."""

    name: str = "arith"
    reward: Literal["world_answer", "reward_model"] = "world_answer"
    """`world_answer`: 1 for the exact final answer, else 0; `reward_model`: the scalar score of
    the sequence-classification model at `reward_model` (e.g. the reward-model recipe's output)."""
    reward_model: str | None = None
    pair_rule: Literal["correct_vs_incorrect", "best_vs_worst", "all_pairs"] = "correct_vs_incorrect"
    """DPO pair builder for this task (scalar rewards need `best_vs_worst`)."""
    weight: float = 1.0
    """Share of each step's prompts (normalised over the tasks)."""
    length_bonus: float = 0.0
    """Added to the reward per completion token: a deliberately length-biased reward (papers_B
    §1.12's non-verifiable analogue). Validation then logs the reward per token, the paper's
    criterion for checkpoint selection."""


@dataclass
class RolloutConfig:
    num_prompts: int = 32
    """Prompts per optimizer step."""
    samples_per_prompt: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    pool_size: int = 4096
    """Distinct train-split problems the step batches are drawn from (reshuffled every epoch)."""
    generation_batch_size: int = 256


@dataclass
class OnlineRLConfig:
    out_dir: str = "runs/online-rl"
    model: str = "tiny-world"
    loss: Literal["dpo", "grpo"] = "dpo"
    sync_every: int = 10
    """s: refresh the generator from the policy every s steps (1 online, > 1 semi-online, 0 offline)."""
    ref_sync_every: int = 0
    """Refresh the reference from the policy every this many steps (0: the frozen seed)."""
    num_steps: int = 100
    rollouts: RolloutConfig = field(default_factory=RolloutConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    tasks: list[TaskConfig] = field(default_factory=lambda: [TaskConfig()])
    beta: float = 0.1
    """DPO inverse temperature."""
    kl_coef: float = 0.001
    """GRPO: weight of the k3 KL to the reference (0: no reference model)."""
    advantage: Literal["group_mean", "group_mean_std"] = "group_mean"
    grpo_normalization: Literal["token", "sequence", "none"] = "none"
    clip: float = 0.2
    """GRPO ratio clip (both sides); inactive at s = 1."""
    micro_batch_tokens: int = 8192
    """Padded tokens per micro-batch; 0 = one micro-batch."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-5, eps=1e-8, schedule="constant"))
    lora: LoraConfig = field(default_factory=LoraConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint_every: int = 50
    keep_last: int | None = 2
    """Checkpoints kept (None: all, e.g. to select one after the run)."""
    log_every: int = 1
    seed: int = 5
    """Seed of the prompt order, the sampling and the pair choice (TINYWORLD: RL prompts 5000+)."""

    def __post_init__(self) -> None:
        check_interval("sync_every", self.sync_every)
        check_interval("ref_sync_every", self.ref_sync_every)
        if not self.tasks:
            raise ValueError("tasks must name at least one task, e.g. tasks=[{name: arith}]")
        for task in self.tasks:
            if task.length_bonus and task.pair_rule == "correct_vs_incorrect" and self.loss == "dpo":
                raise ValueError(
                    f"task {task.name!r}: length_bonus makes rewards scalar; set its pair_rule to best_vs_worst"
                )
        if self.rollouts.samples_per_prompt < 2:
            raise ValueError("rollouts.samples_per_prompt must be >= 2 (pairs and group baselines need two)")


def run(cfg: OnlineRLConfig) -> dict[str, Any]:
    dist.init_distributed()
    if dist.world_size() > 1:
        raise ValueError("online-rl runs in one process for now; launch it without torchrun")
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_policy(cfg.model, cfg.lora)
    generator = build_generator(cfg, model, tokenizer)
    reference = frozen_copy(model) if cfg.loss == "dpo" or cfg.kl_coef else None
    synced_reference = reference if cfg.ref_sync_every else None  # re-synced: saved with checkpoints
    rubric = build_rubric(cfg.tasks)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    checkpoints = Path(cfg.out_dir) / "checkpoints"
    buffer: RolloutBuffer = offline_rollouts(cfg, generator, model, rubric) if cfg.sync_every == 0 else {}
    state = resume(checkpoints, model, optimizer, scheduler)
    if state["step"]:
        restore_online_state(state, checkpoints, buffer, synced_reference)  # pending rollouts, reference
    loss_fn = build_loss_fn(cfg, reference)
    validate = partial(validation_metrics, model, tokenizer, cfg, rubric)
    with RunLog(cfg.out_dir, cfg) as run_log:
        if state["step"] == 0 and cfg.eval.every >= 0:
            run_log.log(0, **validate())
        for step in run_log.progress(range(state["step"] + 1, cfg.num_steps + 1), total=cfg.num_steps):
            metrics: dict[str, float] = {}
            if cfg.sync_every and is_sync_step(step, cfg.sync_every):
                generator.sync_weights(model, step - 1)
                metrics.update(generate_burst(cfg, generator, rubric, step, buffer))
            if synced_reference is not None and step > 1 and is_sync_step(step, cfg.ref_sync_every):
                copy_weights(model, synced_reference)
            groups = buffer.pop(step)
            metrics.update(rollout_metrics(groups, step))
            micro_batches, data_metrics = build_micro_batches(cfg, groups, reference, tokenizer)
            metrics.update(data_metrics)
            if micro_batches:  # else no pair / no scored group: no update (counted in the metrics)
                metrics.update(update_policy(model, micro_batches, loss_fn, optimizer, scheduler, cfg))
            if step % cfg.log_every == 0 or step == cfg.num_steps:
                run_log.log(step, **metrics)
            if cfg.eval.every > 0 and step % cfg.eval.every == 0 and step != cfg.num_steps:
                run_log.log(step, **validate())
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and optimizer.state:
                save_online_checkpoint(
                    checkpoints,
                    step,
                    model,
                    optimizer,
                    scheduler,
                    buffer=buffer if cfg.sync_every else {},  # offline: the rollouts are a data stage
                    reference=synced_reference,
                    generator_version=generator.policy_version,
                    keep_last=cfg.keep_last,
                )
        final = validate() if cfg.eval.every >= 0 else {}
        if final:
            run_log.log(cfg.num_steps, **final)
        save_final_model(model, tokenizer, Path(cfg.out_dir) / "model")
    return {"out_dir": cfg.out_dir, **final}


# --- rollouts --------------------------------------------------------------------------------------


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
        if task.reward == "reward_model":
            if not task.reward_model:
                raise ValueError(
                    f"task {task.name!r} has reward=reward_model but no reward_model path; train one with "
                    "`selftaught reward-model` and set its `model` directory as the task's reward_model"
                )
            functions[task.name] = [RewardModel.from_pretrained(task.reward_model), *bonus]
        else:
            functions[task.name] = [world_answer_reward, *bonus]
    return Rubric(functions)


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


def step_prompts(cfg: OnlineRLConfig, step: int) -> list[Prompt]:
    """The prompts of optimizer step `step`: a pure function of the config and the step."""
    data = cfg.rollouts
    pool = _problem_pool(data.pool_size, tuple(data.levels), cfg.seed)
    indices = batch_indices((step - 1) * data.num_prompts, data.num_prompts, len(pool), cfg.seed)
    total = sum(task.weight for task in cfg.tasks)
    counts = [int(data.num_prompts * task.weight / total) for task in cfg.tasks]
    counts[0] += data.num_prompts - sum(counts)
    names = [task.name for task, count in zip(cfg.tasks, counts, strict=True) for _ in range(count)]
    return [replace(to_prompt(pool[i]), task=name) for i, name in zip(indices, names, strict=True)]


@functools.lru_cache(maxsize=4)
def _problem_pool(size: int, levels: tuple[int, ...], seed: int) -> list[Problem]:
    return sample_problems("train", size, list(levels), seed)


def generate_rollouts(
    cfg: OnlineRLConfig, engine: SyncableEngine, rubric: Rubric, steps: list[int]
) -> list[RolloutGroup]:
    """Sample and score the rollouts of `steps` in one `generate` call (one burst)."""
    prompts = [(step, prompt) for step in steps for prompt in step_prompts(cfg, step)]
    data = cfg.rollouts
    sampling = SamplingParams(
        temperature=data.temperature,
        top_p=data.top_p,
        n=data.samples_per_prompt,
        max_new_tokens=data.max_new_tokens,
        seed=cfg.seed * 1_000_003 + steps[0],
    )
    return sample_rollouts(engine, rubric, prompts, sampling)


def generate_burst(
    cfg: OnlineRLConfig,
    engine: SyncableEngine,
    rubric: Rubric,
    step: int,
    buffer: RolloutBuffer,
) -> dict[str, float]:
    """Fill `buffer` with the rollouts of the window starting at sync step `step`; timing metrics."""
    start = time.perf_counter()
    steps = burst_steps(step, cfg.sync_every, cfg.num_steps)
    groups = generate_rollouts(cfg, engine, rubric, steps)
    add_rollouts(buffer, groups)
    seconds = time.perf_counter() - start
    num_tokens = sum(c.num_tokens for g in groups for c in g.completions)
    return {
        "burst_steps": len(steps),
        "generation_seconds": seconds,
        "generation_tokens_per_s": num_tokens / seconds,
    }


def offline_rollouts(cfg: OnlineRLConfig, engine: SyncableEngine, seed: Any, rubric: Rubric) -> RolloutBuffer:
    """s = 0: the rollouts of every step, sampled from the `seed` model once, as a data stage."""
    data = cfg.rollouts
    fingerprint = compute_fingerprint(
        {
            "template": ROLLOUTS_TEMPLATE,
            "weights": weights_fingerprint(seed),
            "seed": cfg.seed,
            "rollouts": vars(data),
            "tasks": [vars(t) for t in cfg.tasks],
            "num_steps": cfg.num_steps,
        }
    )
    engine.sync_weights(seed, 0)  # a remote server then surely serves the seed
    records = run_stage(
        Path(cfg.out_dir) / "rollouts",
        list(range(1, cfg.num_steps + 1)),
        lambda steps: [g.to_record() for g in generate_rollouts(cfg, engine, rubric, steps)],
        shard_size=max(1, 4096 // (data.num_prompts * data.samples_per_prompt)),
        fingerprint=fingerprint,
        meta={"generator": cfg.model, "seed": cfg.seed, "template": ROLLOUTS_TEMPLATE},
        desc="offline rollouts",
    )
    buffer: RolloutBuffer = {}
    add_rollouts(buffer, [RolloutGroup.from_record(record) for record in records])
    return buffer


# --- training batches ------------------------------------------------------------------------------


def build_micro_batches(
    cfg: OnlineRLConfig, groups: list[RolloutGroup], reference: Any, tokenizer: Any
) -> tuple[list[Any], dict[str, float]]:
    """This step's micro-batches (empty when no pair or group survives) and data metrics."""
    if cfg.loss == "dpo":
        return _pair_batches(cfg, groups, reference, tokenizer)
    kept, metrics = scored_groups(groups)
    completions = [c for g in kept for c in g.completions]
    metrics["num_sequences"] = len(completions)
    if not completions:
        return [], metrics
    advantage_type = AdvantageType(cfg.advantage)
    advantages = [a for g in kept for a in group_advantages(g, advantage_type)]
    examples = [e for g in kept for e in rollout_examples(tokenizer, g.prompt, g.completions)]
    old_logprobs = [c.logprobs for c in completions] if cfg.sync_every != 1 else None  # s = 1: on-policy
    pad_id, budget = tokenizer.pad_token_id, cfg.micro_batch_tokens
    batches = build_rollout_batches(
        examples, advantages, old_logprobs, pad_id=pad_id, micro_batch_tokens=budget
    )
    return batches, metrics


def _pair_batches(
    cfg: OnlineRLConfig, groups: list[RolloutGroup], reference: Any, tokenizer: Any
) -> tuple[list[Any], dict[str, float]]:
    """DPO: each task's pairs, scored by `reference` (log-probs [2P], chosen then rejected)."""
    pairs, results = select_pairs(groups, {t.name: PairRule(t.pair_rule) for t in cfg.tasks}, cfg.seed)
    metrics = compute_pair_stats(results)
    if not pairs:
        return [], metrics
    pair_examples = [tuple(rollout_examples(tokenizer, p.prompt, [p.chosen, p.rejected])) for p in pairs]
    sequences = [chosen for chosen, _ in pair_examples] + [rejected for _, rejected in pair_examples]
    pad_id, budget = tokenizer.pad_token_id, cfg.micro_batch_tokens
    ref_logps = compute_sequence_logps(reference, sequences, pad_id=pad_id, micro_batch_tokens=budget)
    return build_pair_batches(pair_examples, ref_logps, pad_id=pad_id, micro_batch_tokens=budget), metrics


def build_loss_fn(cfg: OnlineRLConfig, reference: Any) -> Any:
    """The `train_step` loss of `cfg`: DPO on pair batches, or GRPO on rollout batches."""
    if cfg.loss == "dpo":
        return partial(pair_loss, beta=cfg.beta)
    normalization = LossNormalization(cfg.grpo_normalization)
    return partial(
        rollout_loss, reference=reference, kl_coef=cfg.kl_coef, clip=cfg.clip, normalization=normalization
    )


def update_policy(
    model: Any,
    micro_batches: list[Any],
    loss_fn: Any,
    optimizer: Any,
    scheduler: Any,
    cfg: OnlineRLConfig,
) -> dict[str, float]:
    """`train_step` with the loss denominator of `cfg`'s loss (DPO: pairs; GRPO: tokens or
    sequences), and its throughput in trained (completion) tokens per second."""
    num_units = None  # train_step counts `loss_mask`: pairs (DPO) or completion tokens (GRPO)
    if cfg.loss == "grpo" and cfg.grpo_normalization != "token":
        num_units = sum(len(mb.advantages) for mb in micro_batches)
    metrics = train_step(
        model,
        micro_batches,
        loss_fn,
        optimizer,
        scheduler,
        max_grad_norm=cfg.optim.max_grad_norm,
        num_tokens=num_units,
    )
    num_tokens = sum(int(mb.sequences.loss_mask.sum()) for mb in micro_batches)
    del metrics["tokens_per_s"]  # counts loss units (pairs for DPO)
    metrics["train_tokens_per_s"] = num_tokens / metrics["seconds"]
    metrics["train_seconds"] = metrics.pop("seconds")
    return metrics
