"""adaptive-decoding: learn which sampling temperature to use, per prompt or per token, with Latent
Preference Optimization (Dhuliawala et al. 2025, papers_B §4; TINYWORLD_JUDGES_LPO §2).

Algorithm:
  1. Load the base model and freeze it; build an `AdaptiveDecoder` head over its final hidden state
     (temperature grid `head.temperatures`, last layer zero so it starts uniform).
  2. Each step: the step's prompts (`rollouts`, a pure function of (seed, step); one source that mixes
     tasks, or each task's share from its own, `tasks[i].prompts`); N samples each with
     `HFEngine(temperature_head=head)`, the head *sampling* each sample's temperature (sequence
     level: one per sample; token level: one per token), the choices recorded in the completions
     (`generator.kind` vllm / remote, sequence level: that engine samples, at the temperatures the
     head picks from one HF prefill of the prompts: `HeadTemperatureEngine`).
  3. Score the samples by task (`tasks`: e.g. the answer check on MATH, distinct words on STORY);
     pair the best against the worst sample of each prompt (ties: no pair, counted).
  4. Recompute the head's log-probabilities of the recorded choices from the frozen model's hidden
     states (one teacher-forced forward over prompt + response), and take one optimizer step on the
     head only with the LPO loss (`loss`: tokens-only (b), marginalised (c) against the initial head
     (token level only: a sequence-level marginal needs the whole response's likelihood per
     temperature), or the NLL-on-chosen baseline; `losses.lpo`). With the model frozen, the joint
     loss (a) equals (b): its text log-ratio is zero.
  5. Validate with the head's argmax temperature (`eval.data`, or `eval.per_level` held-out prompts of
     each task: `tasks[i].eval_prompts`): mean reward per task, the mean argmax
     temperature per task, its histogram, and (token level) its mean by quarter of the response
     (relative position) and, on constrained stories, at each part's first token and elsewhere;
     checkpoints (head + optimizer) for exact resume; the head is saved in `<out_dir>/head`, next
     to (not inside) the base model.

CPU:  selftaught adaptive-decoding                       (tiny world: MATH + STORY, LPO (b))
      selftaught adaptive-decoding loss=nll              (the baseline that drifts to high tau)
      selftaught adaptive-decoding --preset tiny-cstory  (token level, with constrained stories)
      selftaught adaptive-decoding --preset gemma3-270m  (Gemma 3 270M: GSM8K + story titles, ~3 min)
      selftaught adaptive-decoding --preset gemma3-270m precision=bf16-autocast  (the frozen Gemma in bf16)

Precision: the frozen model is held in bf16 under `bf16-autocast` and `bf16` (nothing of it is
trained, so there is no master to keep); the head (a few thousand weights) stays fp32, and its loss
runs under autocast for `bf16-autocast`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from selftaught.configs.adaptive import AdaptiveDecodingConfig as AdaptiveDecodingConfig
from selftaught.configs.adaptive import LPOLoss
from selftaught.data.chat import encode_prompt
from selftaught.data.padding import pad_sequences
from selftaught.engines.adaptive import HeadTemperatureEngine
from selftaught.engines.base import Engine, SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.evals.sets import load_eval_set
from selftaught.losses.lpo import (
    latent_logps,
    lpo_marginal,
    lpo_tokens_only,
    nll_chosen_latent,
    temperature_token_logps,
)
from selftaught.models.adaptive import AdaptiveDecoder, Level
from selftaught.models.io import load_model
from selftaught.models.policy import policy_source
from selftaught.runlog import RunLog
from selftaught.selection.pairs import compute_pair_stats
from selftaught.selection.rollouts import select_pairs
from selftaught.train import generators, loop
from selftaught.train.online import sample_rollouts
from selftaught.train.optim import build_optimizer, build_scheduler
from selftaught.train.precision import forward_context
from selftaught.train.rollouts import build_pair_rule, build_rollout_source, build_rubric, task_eval_prompts
from selftaught.types import Completion, Pair, Prompt
from selftaught.world.stories import CSTORY_TASK, opener_positions


def run(cfg: AdaptiveDecodingConfig) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_model(cfg.model, dtype=cfg.precision.generator_dtype)  # frozen: no master
    model.eval().requires_grad_(False)
    head = AdaptiveDecoder(
        model.config.get_text_config().hidden_size,
        cfg.head.temperatures,
        depth=cfg.head.depth,
        width=cfg.head.width or None,
        level=Level(cfg.head.level),
    )
    reference = AdaptiveDecoder.load(head.save(Path(cfg.out_dir) / "initial-head"))  # P_ref of loss (c)
    source = build_rollout_source(cfg.rollouts, cfg.tasks, None, seed=cfg.seed)
    rules = {task.name: build_pair_rule(task) for task in cfg.tasks}
    optimizer = build_optimizer(head, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    engine = rollout_engine(cfg, model, tokenizer, head)
    validate = partial(validation_metrics, model, tokenizer, head, cfg)
    save = partial(loop.checkpoint, cfg, head, optimizer, scheduler)
    with RunLog(cfg.out_dir, cfg) as run_log:
        run_log.info(
            f"adaptive-decoding: {cfg.model} frozen; {cfg.head.level} head over {cfg.head.temperatures}; "
            f"loss {cfg.loss}, beta {cfg.beta}; {cfg.rollouts.num_prompts} prompts x "
            f"{cfg.rollouts.samples_per_prompt} samples per step"
        )
        state = loop.start(cfg, run_log, head, optimizer, scheduler, validate)
        for step in run_log.progress(loop.remaining_steps(cfg, state), total=cfg.num_steps, desc="lpo"):
            sampling = SamplingParams(
                n=cfg.rollouts.samples_per_prompt,
                max_new_tokens=cfg.rollouts.max_new_tokens,
                top_p=cfg.rollouts.top_p,
                stop=cfg.rollouts.stop,
                seed=cfg.seed * 1_000_003 + step,
            )
            groups = sample_rollouts(
                engine, source.rubric, [(step, p) for p in source.step_prompts(step)], sampling
            )
            pairs, results = select_pairs(groups, rules, cfg.seed)
            metrics = {
                **compute_pair_stats(results),
                **train_step(model, tokenizer, head, reference, pairs, cfg),
            }
            metrics["reward"] = _mean([r for g in groups for r in g.rewards if r is not None])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loop.end_of_step(cfg, run_log, step, metrics, validate, save)
        final = validate() if cfg.eval.every >= 0 else {}
        if final:
            run_log.log(cfg.num_steps, **final)
        head.save(Path(cfg.out_dir) / "head")
    return {"out_dir": cfg.out_dir, **final}


def rollout_engine(cfg: AdaptiveDecodingConfig, model: Any, tokenizer: Any, head: AdaptiveDecoder) -> Engine:
    """The rollouts' engine, the head sampling the temperatures: `HFEngine` with the head inside
    (`generator.kind=hf`), else the generator of `generator.kind` under `HeadTemperatureEngine`."""
    if cfg.generator.kind == "hf":
        return HFEngine(model, tokenizer, temperature_head=head, head_sample=True)
    inner = generators.build_generator(
        cfg.generator,
        model,
        tokenizer,
        source=policy_source(cfg.model) if cfg.generator.kind == "vllm" else None,
        run_dir=Path(cfg.out_dir),
        batch_size=cfg.rollouts.generation_batch_size,
    )
    return HeadTemperatureEngine(inner, model, tokenizer, head, batch_size=cfg.rollouts.generation_batch_size)


# --- the LPO step ----------------------------------------------------------------------------------


def train_step(
    model: Any,
    tokenizer: Any,
    head: AdaptiveDecoder,
    reference: AdaptiveDecoder,
    pairs: list[Pair],
    cfg: AdaptiveDecodingConfig,
) -> dict[str, float]:
    """Accumulate the LPO gradient of `pairs` into the head (no step); the loss metrics."""
    if not pairs:  # a zero gradient: the optimizer still steps, so checkpoints and resume stay uniform
        torch.stack([param.sum() for param in head.parameters()]).sum().mul(0.0).backward()
        return {"loss": 0.0, "num_trained_pairs": 0.0}
    prompts = [p.prompt for p in pairs]
    chosen = latent_batch(model, tokenizer, prompts, [p.chosen for p in pairs], head.level)
    rejected = latent_batch(model, tokenizer, prompts, [p.rejected for p in pairs], head.level)
    with forward_context(cfg.precision, model.device):
        loss, metrics = lpo_loss(head, reference, chosen, rejected, cfg)
    loss.backward()
    return {**{k: float(v) for k, v in metrics.items()}, "num_trained_pairs": float(len(pairs))}


def lpo_loss(
    head: AdaptiveDecoder,
    reference: AdaptiveDecoder,
    chosen: tuple,
    rejected: tuple,
    cfg: AdaptiveDecodingConfig,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The LPO loss of `cfg.loss` from the `latent_batch`es of the chosen and rejected responses."""
    if cfg.loss == LPOLoss.MARGINAL:
        sides = []
        for side in (chosen, rejected):
            hidden, logits, tokens, mask, _ = side
            token_logps = temperature_token_logps(logits, tokens, head.temperatures)
            with torch.no_grad():
                ref_logps = reference(hidden)
            sides.append((token_logps, head(hidden), ref_logps, mask))
        loss, metrics = lpo_marginal(sides[0], sides[1], beta=cfg.beta)
    else:
        chosen_logps = latent_logps(head(chosen[0]), chosen[4], chosen[3])
        if cfg.loss == LPOLoss.NLL:
            loss, metrics = nll_chosen_latent(chosen_logps)
        else:
            rejected_logps = latent_logps(head(rejected[0]), rejected[4], rejected[3])
            loss, metrics = lpo_tokens_only(chosen_logps, rejected_logps, beta=cfg.beta)
    return loss, metrics


def latent_batch(
    model: Any, tokenizer: Any, prompts: list[Prompt], completions: list[Completion], level: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(hidden [B, T, d], logits [B, T, V], tokens [B, T], mask [B, T], choices [B, T])` of the latents
    of B responses: the frozen model's final hidden state where each temperature was chosen (the last
    prompt token, and at token level every later position that picked a token), one teacher-forced
    forward over prompt + response."""
    sequences, starts = [], []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_ids = encode_prompt(tokenizer, prompt)
        sequences.append(prompt_ids + completion.token_ids)
        starts.append(len(prompt_ids) - 1)  # the position whose state picks the first token
    input_ids, attention = pad_sequences(sequences, pad_id=0, side="right", device=model.device)
    with torch.no_grad():
        output = model(input_ids=input_ids, attention_mask=attention, output_hidden_states=True)
    steps = 1 if level == "sequence" else max(len(c.token_ids) for c in completions)
    positions = torch.tensor([[s + t for t in range(steps)] for s in starts], device=model.device)  # [B, T]
    lengths = [1 if level == "sequence" else len(c.token_ids) for c in completions]
    mask = torch.tensor([[t < n for t in range(steps)] for n in lengths], device=model.device)
    positions = positions.clamp(max=input_ids.shape[1] - 1)
    rows = torch.arange(len(sequences), device=model.device)[:, None]
    hidden = output.hidden_states[-1][rows, positions].float()
    logits = output.logits[rows, positions].float()
    next_positions = (positions + 1).clamp(max=input_ids.shape[1] - 1)
    tokens = input_ids[rows, next_positions]
    choices = torch.tensor(
        [(c.meta["tau_index"] + [0] * steps)[:steps] for c in completions],
        device=model.device,
        dtype=torch.long,
    )
    return hidden, logits, tokens, mask, choices


# --- validation ------------------------------------------------------------------------------------


CONSTRAINED_POSITIONS: dict[str, tuple[str, Callable[[list[str]], list[bool]]]] = {
    CSTORY_TASK: ("opener", opener_positions),
}
"""Tasks with a constraint at known tokens: a name and which tokens of a response (given as decoded
pieces) it binds; token-level validation reports the mean argmax temperature there and elsewhere."""


def validation_metrics(
    model: Any, tokenizer: Any, head: AdaptiveDecoder, cfg: AdaptiveDecodingConfig
) -> dict:
    """Argmax-temperature decoding on the eval set: mean reward per task, and the head's mean
    temperature E[tau] and argmax histogram per task (sequence level: at the last prompt token)."""
    prompts = eval_prompts(cfg)
    engine = HFEngine(
        model, tokenizer, temperature_head=head, head_sample=False, batch_size=cfg.eval.batch_size
    )
    sampling = SamplingParams(max_new_tokens=cfg.rollouts.max_new_tokens, stop=cfg.rollouts.stop, seed=0)
    completions = [cs[0] for cs in engine.generate(prompts, sampling)]
    rewards = build_rubric(cfg.tasks).score(prompts, completions).values
    grid = head.temperatures
    metrics: dict[str, float] = {}
    for task in sorted({p.task for p in prompts}):
        rows = [i for i, p in enumerate(prompts) if p.task == task]
        metrics[f"val_reward_{task}"] = _mean([rewards[i] or 0.0 for i in rows])
        taus = [grid[i] for r in rows for i in completions[r].meta["tau_index"]]
        metrics[f"val_argmax_tau_{task}"] = _mean(taus)
        for tau, count in Counter(taus).items():
            metrics[f"val_argmax_tau_{task}_share_{tau:g}"] = count / len(taus)
        if head.level == "token":  # mean temperature by relative position: quarters of each response
            quarters: list[list[float]] = [[], [], [], []]
            for r in rows:
                trace = completions[r].meta["tau_index"]
                for position, index in enumerate(trace):
                    quarters[4 * position // len(trace)].append(grid[index])
            for q, values in enumerate(quarters, start=1):
                metrics[f"val_argmax_tau_{task}_q{q}"] = _mean(values)
            if task in CONSTRAINED_POSITIONS:  # where the task's constraint bites, and elsewhere
                name, flags_of = CONSTRAINED_POSITIONS[task]
                split: dict[bool, list[float]] = {True: [], False: []}
                for r in rows:
                    pieces = [tokenizer.decode([t]) for t in completions[r].token_ids]
                    for flag, index in zip(flags_of(pieces), completions[r].meta["tau_index"], strict=False):
                        split[flag].append(grid[index])
                metrics[f"val_argmax_tau_{task}_{name}"] = _mean(split[True])
                metrics[f"val_argmax_tau_{task}_other"] = _mean(split[False])
    metrics["val_reward"] = _mean([r or 0.0 for r in rewards])
    return metrics


def eval_prompts(cfg: AdaptiveDecodingConfig) -> list[Prompt]:
    """The validation prompts: the first `eval.per_level` held-out prompts of each task when the tasks
    name their own (`tasks[i].eval_prompts`), else the set `eval.data` names."""
    if cfg.tasks[0].eval_prompts is not None:
        return task_eval_prompts(cfg.rollouts, cfg.tasks, cfg.eval.per_level)
    return load_eval_set(cfg.eval.data, per_level=cfg.eval.per_level, levels=cfg.eval.levels, seed=0).prompts


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
