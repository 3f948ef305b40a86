"""online-rl: offline, semi-online and online DPO or GRPO with one sync interval `s` (papers_B §1).

Algorithm (papers_B §1.4; Lanchantin et al. 2025, "Bridging offline and online RL"):
  policy, generator, reference <- the seed model (an in-process generator is the policy itself when
    it runs in the policy's dtype, else a copy; the reference a frozen copy, or a LoRA policy's
    frozen base: the policy with its adapters off, `train.online.build_reference`)
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
cheap for small models; in bf16 under `precision=bf16-autocast` or `bf16`, see `train.precision`); sharing weights with the policy (`HFEngine(model)`) would save the memory
of one model at s = 1. Any `SyncableEngine` can take its place: vLLM in this process (`vllm`: fast
sampling for bigger models and bursts; a sync reloads the weights in place from a file), or a
remote OpenAI-compatible server whose `sync_weights` saves a checkpoint and reloads it (`remote`:
suits s = 0 and s > 1). Resume is exact: a checkpoint stores the pending rollouts of the
current window (and the reference weights when it is re-synced); prompts and sampling seeds are
functions of the step. A step whose rollouts give no pair (or no scored GRPO group) makes no update.

`save_rollouts=true` keeps what each step trained on: its scored groups (`RolloutGroup.to_record()`)
appended to `<out_dir>/rollouts/step-NNNNNNN.jsonl`, a directory `datasets.load_dataset` reads (its
README.md card names the files; or `data_files="<out_dir>/rollouts/step-*.jsonl"`). A resumed run
drops the saved steps after its checkpoint and saves them again, as it does with `metrics.jsonl`.
At s = 0 the rollouts are always there, as the offline data stage.

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
      selftaught online-rl precision=bf16-autocast   (bf16 autocast; the generator copy in bf16)
DDP:  torchrun --nproc-per-node 2 -m selftaught.cli online-rl
vLLM: selftaught online-rl model=<dir> generator.kind=vllm   (pip install 'selftaught[vllm]')
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from selftaught import dist
from selftaught.configs.recipes import OnlineRLConfig as OnlineRLConfig
from selftaught.models.policy import load_policy, policy_source
from selftaught.rewards import Rubric
from selftaught.runlog import RunLog
from selftaught.selection.rollouts import rollout_metrics
from selftaught.train import generators, loop
from selftaught.train.evaluation import eval_metrics, evaluate_policy
from selftaught.train.judge_eval import validate_judge
from selftaught.train.objectives import Objective, OnlineObjective, PairObjective, PolicyGradientObjective
from selftaught.train.online import (
    RolloutBuffer,
    build_reference,
    restore_online_state,
    save_online_checkpoint,
    update_policy,
)
from selftaught.train.optim import build_optimizer, build_scheduler
from selftaught.train.parallel import wrap_model
from selftaught.train.precision import generator_dtype
from selftaught.train.rollouts import (
    RolloutConfig,
    TaskConfig,
    build_pair_rule,
    build_rollout_source,
    generate_burst,
    offline_rollouts,
    rewind_saved_rollouts,
    save_step_rollouts,
)
from selftaught.train.sync import SyncableEngine, copy_weights, is_sync_step

__all__ = ["OnlineRLConfig", "RolloutConfig", "TaskConfig", "build_objective", "run"]


def run(cfg: OnlineRLConfig) -> dict[str, Any]:
    dist.init_distributed()
    torch.manual_seed(cfg.seed)
    policy, tokenizer = load_policy(
        cfg.model,
        cfg.lora,
        dtype=cfg.precision.weights_dtype,
        activation_checkpointing=cfg.activation_checkpointing,
    )
    generator = build_generator(cfg, policy, tokenizer)
    reference, reference_adapters = None, False
    if cfg.loss == Objective.DPO or cfg.kl_coef:
        reference, reference_adapters = build_reference(policy, resynced=cfg.ref_sync_every > 0)
    synced_reference = reference if cfg.ref_sync_every else None  # re-synced: saved with checkpoints
    model = wrap_model(policy, cfg.parallel)
    rollouts = build_rollout_source(cfg.rollouts, cfg.tasks, cfg.group_scorer, seed=cfg.seed, judge=cfg.judge)
    objective = build_objective(cfg, reference, reference_adapters)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    buffer: RolloutBuffer = {}
    if cfg.sync_every == 0:
        stage = Path(cfg.out_dir) / "rollouts"
        buffer = offline_rollouts(
            rollouts,
            generator,
            policy,
            stage,
            num_steps=cfg.num_steps,
            generator=cfg.model,
            generator_dtype=cfg.precision.generator_dtype,
        )
    validate = partial(validation_metrics, policy, tokenizer, cfg, rollouts.rubric)

    def checkpoint(step: int) -> None:  # the pending rollouts and a re-synced reference go with it
        if optimizer.state:  # before the first update there is nothing to resume
            save_online_checkpoint(
                loop.checkpoint_dir(cfg),
                step,
                model,
                optimizer,
                scheduler,
                buffer=buffer if cfg.sync_every else {},  # offline: the rollouts are a data stage
                reference=synced_reference,
                generator_version=generator.policy_version,
                keep_last=cfg.keep_last,
            )

    with RunLog(cfg.out_dir, cfg, enabled=dist.is_main()) as run_log:
        run_log.info(header(cfg))
        state = loop.start(cfg, run_log, model, optimizer, scheduler, validate)
        if state["step"]:
            restore_online_state(state, loop.checkpoint_dir(cfg), buffer, synced_reference)
        saved = Path(cfg.out_dir) / "rollouts" if cfg.save_rollouts and cfg.sync_every else None
        if saved is not None and (dropped := rewind_saved_rollouts(saved, state["step"])):
            run_log.info(f"save_rollouts: {dropped} saved steps after step {state['step']} are redone")
        for step in run_log.progress(loop.remaining_steps(cfg, state), total=cfg.num_steps):
            metrics: dict[str, float] = {}
            if cfg.sync_every and is_sync_step(step, cfg.sync_every):
                generator.sync_weights(policy, step - 1)
                metrics.update(
                    generate_burst(rollouts, generator, step, cfg.sync_every, cfg.num_steps, buffer)
                )
            if synced_reference is not None and step > 1 and is_sync_step(step, cfg.ref_sync_every):
                copy_weights(policy, synced_reference)
            groups = buffer.pop(step)
            if saved is not None:
                save_step_rollouts(saved, step, groups)
            metrics.update(rollout_metrics(groups, step))
            micro_batches, data_metrics = objective.micro_batches(groups, tokenizer)
            metrics.update(data_metrics)  # no pair / no scored group on every rank: no update (counted)
            metrics.update(
                update_policy(model, micro_batches, objective, optimizer, scheduler, cfg.optim, cfg.precision)
            )
            loop.end_of_step(cfg, run_log, step, metrics, validate, checkpoint)
        final = loop.finish(cfg, run_log, model, tokenizer, validate)
    return {"out_dir": cfg.out_dir, **final}


def header(cfg: OnlineRLConfig) -> str:
    """The run in one line, for the console and log.txt (model, objective, s, tasks, batch)."""
    mode = {0: "offline"}.get(cfg.sync_every, "online" if cfg.sync_every == 1 else "semi-online")
    dpo = cfg.loss == Objective.DPO
    objective = f"dpo (beta {cfg.beta:g})" if dpo else f"grpo (kl_coef {cfg.kl_coef:g}, clip {cfg.clip:g})"
    tasks = "; ".join(
        f"{t.name}: reward {t.reward}, weight {t.weight:g}"
        + (f", pair_rule {t.pair_rule}" if dpo else "")
        + (f", prompts {t.prompts}" if t.prompts else "")
        for t in cfg.tasks
    )
    r, judge = cfg.rollouts, cfg.judge
    source = r.prompts if cfg.tasks[0].prompts is None else "the tasks' own sources"
    evaluation = cfg.eval.data
    if judge.pairs is not None:  # J1: judge prompts built from pairs
        source = f"judge prompts of {judge.pairs} ({judge.template}, orders {judge.orders}, rewards {judge.rewards})"
        evaluation = f"judge on {judge.eval_num_pairs} pairs of {judge.eval_pairs}"
    return (
        f"online-rl: model {cfg.model}, loss {objective}, sync_every {cfg.sync_every} ({mode}), "
        f"ref_sync_every {cfg.ref_sync_every}, generator {cfg.generator.kind}; tasks [{tasks}]; "
        f"batch {r.num_prompts} prompts of {source} x {r.samples_per_prompt} samples (T {r.temperature:g}, "
        f"max {r.max_new_tokens} tokens); {cfg.num_steps} steps, lr {cfg.optim.lr:g}; "
        f"eval {evaluation} every {cfg.eval.every} steps"
    )


# --- plug points -----------------------------------------------------------------------------------


def build_objective(cfg: OnlineRLConfig, reference: Any, reference_adapters: bool = False) -> OnlineObjective:
    """The one dispatch on `cfg.loss`."""
    match cfg.loss:
        case Objective.DPO:
            rules = {task.name: build_pair_rule(task) for task in cfg.tasks}
            return PairObjective(
                reference,
                rules,
                cfg.beta,
                cfg.seed,
                cfg.micro_batch_tokens,
                precision=cfg.precision,
                reference_adapters=reference_adapters,
            )
        case Objective.GRPO:
            return PolicyGradientObjective(
                reference,
                cfg.advantage,
                cfg.grpo_normalization,
                cfg.clip,
                cfg.kl_coef,
                on_policy=cfg.sync_every == 1,
                micro_batch_tokens=cfg.micro_batch_tokens,
                reference_adapters=reference_adapters,
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
        dtype=generator_dtype(cfg.precision),
        share=shares_policy(cfg),
    )


def shares_policy(cfg: OnlineRLConfig) -> bool:
    """Whether the `hf` generator samples the policy itself rather than a copy: sampling and updates
    take turns in the process, so a copy synced at every sync point would hold the policy's weights
    whenever it samples. Not when the copy's dtype differs (bf16-autocast samples a bf16 copy) or
    under multi-process FSDP2 (the sharded policy would all-gather at every decode step, and ranks
    sample different numbers of steps)."""
    fsdp = cfg.parallel.strategy == "fsdp2" and dist.world_size() > 1
    same_dtype = cfg.precision.generator_dtype == cfg.precision.weights_dtype
    return cfg.generator.kind == "hf" and same_dtype and not fsdp


def validation_metrics(model: Any, tokenizer: Any, cfg: OnlineRLConfig, rubric: Rubric) -> dict[str, float]:
    """Validation accuracy (`eval_metrics`) and, for each task whose reward is not the answer check,
    the mean reward of the same validation samples and that reward per token (papers_B §1.4.6).
    A judge run (`judge.pairs` set, J1) validates the judge instead: `train.judge_eval`."""
    if cfg.judge.pairs is not None:
        return validate_judge(
            model, tokenizer, cfg.judge, batch_size=cfg.eval.batch_size, levels=cfg.eval.levels
        )
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
