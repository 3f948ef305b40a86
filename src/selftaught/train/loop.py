"""What every training run shares: a `RunConfig`, and the cadence of its loop (not a Trainer).

A recipe owns its loop and reads top to bottom; these helpers are the parts that were the same in
every loop: resume from the latest checkpoint and log the first evaluation (`start`), log /
evaluate / checkpoint every k steps (`end_of_step`), evaluate and save the final model (`finish`).

    with RunLog(cfg.out_dir, cfg, enabled=dist.is_main()) as run_log:
        state = loop.start(cfg, run_log, model, optimizer, scheduler, validate)
        for step in run_log.progress(loop.remaining_steps(cfg, state), total=cfg.num_steps):
            metrics = train_step(model, step_batches(step), loss_fn, optimizer, scheduler, ...)
            loop.end_of_step(cfg, run_log, step, metrics, validate, partial(loop.checkpoint, cfg, ...))
        final = loop.finish(cfg, run_log, model, tokenizer, validate)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from torch.distributed.fsdp import FSDPModule
from transformers import AutoModelForCausalLM

from selftaught import dist
from selftaught.config import to_dict
from selftaught.configs.train import EvalConfig as EvalConfig
from selftaught.configs.train import RunConfig as RunConfig
from selftaught.models.io import save_model
from selftaught.runlog import RunLog
from selftaught.train.checkpoint import (
    gather_model_state,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from selftaught.train.parallel import unwrap

Validate = Callable[[], dict[str, float]]
"""Evaluates the model as it is now; flat metrics for `metrics.jsonl` (e.g. `val_accuracy`)."""


def check_out_dir(out_dir: str, name: str = "out_dir") -> None:
    """A ValueError, before any work, when `out_dir` cannot be a run directory (a file, under a file,
    not writable); `name` is what the user set (the config key, or a flag such as `--out`)."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {out_dir!r} is a file; name a directory for the run")
    existing = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise ValueError(f"{name} {out_dir!r} is under {str(existing)!r}, which is a file; choose another")
    if not os.access(existing, os.W_OK):
        raise ValueError(f"{name} {out_dir!r} is not writable ({existing} denies writing); choose another")


def checkpoint_dir(cfg: RunConfig) -> Path:
    return Path(cfg.out_dir) / "checkpoints"


def resume(checkpoints: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Load the latest checkpoint when there is one; the train state (`{"step": 0}` when fresh)."""
    latest = latest_checkpoint(checkpoints)
    if latest is None:
        return {"step": 0}
    return load_checkpoint(latest, model, optimizer, scheduler)


def start(
    cfg: RunConfig,
    run_log: RunLog,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    validate: Validate | None,
    first_metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Resume from the latest checkpoint (its train state; `{"step": 0}` when fresh). A resumed run
    drops the metric records after its checkpoint; a fresh one drops any records an earlier attempt
    left (it was stopped before its first checkpoint) and logs `first_metrics` (e.g. the data stage's
    counts) with the evaluation of the starting model at step 0 (no evaluation when `eval.every` is -1)."""
    state = resume(checkpoint_dir(cfg), model, optimizer, scheduler)
    if state["step"]:
        check_resumed_config(cfg, run_log)
        dropped = run_log.rewind(state["step"])
        redo = f"; {dropped} metric records after it are redone" if dropped else ""
        run_log.info(f"resuming from step {state['step']} of {cfg.num_steps}{redo}")
        return state
    if run_log.rewind(-1):
        run_log.info("no checkpoint to resume from: the metric records of the earlier attempt are dropped")
    metrics = dict(first_metrics or {})
    if validate is not None and cfg.eval.every >= 0:
        val = validate()
        metrics.update(val)
        run_log.info(eval_line(0, val))
    if metrics:
        run_log.log(0, **metrics)
    return state


RESUME_NEUTRAL = (
    "out_dir",
    "num_steps",
    "log_every",
    "checkpoint_every",
    "keep_last",
    "eval.",
    "report_to",
    "save_rollouts",
)
"""Config keys (or key prefixes) a resumed run may change: they do not change the steps already
taken (`num_steps` extends or shortens the run)."""


def check_resumed_config(cfg: RunConfig, run_log: RunLog) -> None:
    """A ValueError naming the keys when a run resumes its checkpoints with a config that differs in
    anything that changes results (the directory's config.yaml is put back first)."""
    if run_log.previous_config_text is None:
        return
    before = _flatten(yaml.safe_load(run_log.previous_config_text) or {})
    after = _flatten(to_dict(cfg))
    changed = sorted(
        key
        for key in before.keys() | after.keys()
        if before.get(key) != after.get(key) and not key.startswith(RESUME_NEUTRAL)
    )
    if changed:
        run_log.restore_previous_config()
        details = ", ".join(f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in changed[:8])
        raise ValueError(
            f"{cfg.out_dir} holds checkpoints of a run with another config ({details}); resume it "
            "with its own config (--config <out_dir>/config.yaml), or choose a new out_dir for this one"
        )


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix.rstrip("."): data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def remaining_steps(cfg: RunConfig, state: dict[str, Any]) -> range:
    """The steps still to run (1-based) after the resumed `state`."""
    return range(state["step"] + 1, cfg.num_steps + 1)


def should_log(cfg: RunConfig, step: int) -> bool:
    return step % cfg.log_every == 0 or step == cfg.num_steps


def should_eval(cfg: RunConfig, step: int) -> bool:
    """Periodic evaluation; the last step is left to `finish`."""
    return cfg.eval.every > 0 and step % cfg.eval.every == 0 and step != cfg.num_steps


def should_checkpoint(cfg: RunConfig, step: int) -> bool:
    return cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0


def end_of_step(
    cfg: RunConfig,
    run_log: RunLog,
    step: int,
    metrics: dict[str, float],
    validate: Validate | None,
    checkpoint: Callable[[int], Any],
) -> dict[str, float] | None:
    """Log `metrics`, evaluate and checkpoint when the cadence of `cfg` says so; the validation
    metrics when this step evaluated, else None."""
    if should_log(cfg, step):
        run_log.log(step, **metrics)
    val = None
    if validate is not None and should_eval(cfg, step):
        val = validate()
        run_log.log(step, **val)
        run_log.info(eval_line(step, val))
    if should_checkpoint(cfg, step):
        checkpoint(step)
    return val


HEADLINE_METRICS = (
    "val_accuracy",
    "val_preference_accuracy",
    "val_pairwise_accuracy",
    "val_loss",
    "val_reward",
)
"""The validation metrics an evaluation's console line shows (those present; accuracy with its
standard error)."""


def eval_line(step: int, val: dict[str, Any], *, final: bool = False) -> str:
    """One line for the console and log.txt: `step 50: val_accuracy 0.612 +- 0.034`."""
    parts = []
    for key in HEADLINE_METRICS:
        if isinstance(val.get(key), int | float):
            stderr = f" +- {val['val_stderr']:.3f}" if key == "val_accuracy" and "val_stderr" in val else ""
            parts.append(f"{key} {val[key]:.3f}{stderr}")
    if not parts:  # another kind of evaluation: its first few numbers
        parts = [f"{k} {v:.3f}" for k, v in val.items() if isinstance(v, int | float)][:3]
    return f"step {step}{' (final)' if final else ''}: {', '.join(parts)}"


def checkpoint(
    cfg: RunConfig, model: Any, optimizer: Any, scheduler: Any, step: int, **train_state: Any
) -> Path:
    """A resumable checkpoint of step `step` (train state: the step plus `train_state`)."""
    return save_checkpoint(
        checkpoint_dir(cfg),
        step,
        model,
        optimizer,
        scheduler,
        {"step": step, **train_state},
        keep_last=cfg.keep_last,
    )


def finish(
    cfg: RunConfig,
    run_log: RunLog,
    model: Any,
    tokenizer: Any,
    validate: Validate | None,
    *,
    step: int | None = None,
    final: dict[str, float] | None = None,
) -> dict[str, float]:
    """Evaluate the final model (unless `eval.every` is -1; `final`: already evaluated at this step),
    log it at `step` (default: the last step), and write `<out_dir>/model`."""
    if final is None:
        final = validate() if validate is not None and cfg.eval.every >= 0 else {}
        if final:
            last = cfg.num_steps if step is None else step
            run_log.log(last, **final)
            run_log.info(eval_line(last, final, final=True))
    save_final_model(model, tokenizer, Path(cfg.out_dir) / "model")
    return final


def save_final_model(model: Any, tokenizer: Any, out_dir: Path) -> Path | None:
    """Write a plain `transformers` directory (LoRA merged, FSDP gathered) on rank 0.

    The result loads with `AutoModelForCausalLM.from_pretrained`, so it can be evaluated with
    lm-eval-harness or served with vLLM as is.
    """
    state = gather_model_state(model)  # collective under FSDP2: every rank calls it
    if not dist.is_main():
        return None
    inner = unwrap(model)
    if hasattr(inner, "merge_and_unload"):  # peft: fold the adapters into the weights
        inner = inner.merge_and_unload()
    elif isinstance(inner, FSDPModule):  # parameters are shards: save a plain copy of the full state
        plain = AutoModelForCausalLM.from_config(inner.config)
        plain.load_state_dict(state)
        inner = plain
    return save_model(inner, tokenizer, out_dir)
