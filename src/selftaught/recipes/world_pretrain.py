"""world-pretrain: train the tiny-world base student from scratch on two CPU cores.

Algorithm (TINYWORLD.md sections 2 and 6):
  1. Train a byte-level BPE tokenizer (digits are single tokens) on world text, in memory.
  2. Build a tiny Llama (`xs`: 144k parameters) from random initialisation.
  3. SFT on chain-of-thought solutions of L1-L3 arithmetic problems written by a *buggy teacher*
     (with probability `bug` an addition forgets its carry), so the student plateaus below 100% and
     a verifier reward has something to fix later (RL beats more SFT on the same data).
  4. Greedy accuracy on the valid split every `eval_every` steps; stop once it reaches
     `stop_accuracy` (the learning curve has a sharp, seed-dependent phase transition, so a fixed
     step budget does not reliably land in the 30-80% band). The cosine schedule reaches its floor
     at `optim_steps`; training may continue at the floor lr until `max_steps`.
  5. Save the model (safetensors) and tokenizer; report test-split accuracy per level.

CPU:  selftaught world pretrain                      (about 2-5 minutes)
      selftaught world pretrain seed=1 bug=0.0       (a clean teacher)
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from selftaught.config import to_dict
from selftaught.data.chat import render_conversation
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.evals.accuracy import EvalResult, evaluate_accuracy
from selftaught.evals.sets import world_is_correct
from selftaught.losses.logps import token_logps
from selftaught.losses.sft import sft_loss
from selftaught.models.io import cache_dir, save_model
from selftaught.models.tiny import build_tiny_llama
from selftaught.runlog import RunLog
from selftaught.train.batching import Batch, collate
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.step import train_step
from selftaught.world.arith import sample_eval_set, sample_sft_examples, to_prompt
from selftaught.world.tokenizer import build_tokenizer


@dataclass
class WorldPretrainConfig:
    out_dir: str = "runs/world-pretrain"
    """Run directory; the trained model goes to `<out_dir>/model`."""
    size: str = "xs"
    """Tiny Llama shape: xs (144k params), s (1M), m (3.3M), l (8M)."""
    vocab_size: int = 320
    """BPE vocabulary size of the world tokenizer."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    """Difficulty levels (number of steps) in the training mix and the evaluation."""
    bug: float = 0.6
    """Probability that the teacher forgets a units carry (0 = a clean teacher)."""
    strategy_weights: dict[str, float] = field(default_factory=lambda: {"chain": 1.0})
    """Mix of solution strategies in the SFT data."""
    num_examples: int = 50_000
    """Size of the training pool (sampled once, then shuffled every epoch)."""
    batch_size: int = 64
    max_steps: int = 6000
    """Hard cap on optimizer steps."""
    optim_steps: int = 3000
    """Length of the warmup + cosine schedule; after it the lr stays at its floor."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=3e-3,
            betas=(0.9, 0.98),
            schedule="cosine",
            warmup_steps=50,
            min_lr_ratio=0.1,
            max_grad_norm=1.0,
        )
    )
    eval_every: int = 250
    eval_per_level: int = 100
    """Valid-split problems per level for the stopping check; the final test uses `test_per_level`."""
    test_per_level: int = 200
    stop_accuracy: float = 0.6
    """Stop once greedy valid accuracy (mean over levels) reaches this."""
    seed: int = 0
    log_every: int = 50


def run(cfg: WorldPretrainConfig) -> dict[str, Any]:
    """Train, save `<out_dir>/model`, and return the final test evaluation summary."""
    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer(cfg.vocab_size)
    model = build_tiny_llama(
        cfg.size,
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        seed=cfg.seed,
    )
    raw = sample_sft_examples(cfg.num_examples, cfg.levels, cfg.seed, cfg.strategy_weights, bug=cfg.bug)
    examples = [render_conversation(tokenizer, ex["messages"]) for ex in raw]
    valid = [to_prompt(p) for p in sample_eval_set("valid", cfg.eval_per_level, cfg.levels, cfg.seed)]
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.optim_steps)
    batches = _epochs(len(examples), cfg.batch_size, random.Random(cfg.seed))
    start = time.perf_counter()
    with RunLog(cfg.out_dir, cfg) as run_log:
        run_log.info(
            f"world-pretrain: {sum(p.numel() for p in model.parameters()):,} params, {len(examples)} examples"
        )
        for step in run_log.progress(range(1, cfg.max_steps + 1), total=cfg.max_steps, desc="pretrain"):
            batch = collate([examples[i] for i in next(batches)], tokenizer.pad_token_id)
            metrics = train_step(
                model, [batch], _sft_step_loss, optimizer, scheduler, max_grad_norm=cfg.optim.max_grad_norm
            )
            if step % cfg.log_every == 0:
                run_log.log(step, **metrics)
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                result = greedy_accuracy(model, tokenizer, valid)
                run_log.log(step, val_accuracy=result.accuracy, **_level_metrics(result, "val"))
                run_log.info(
                    f"step {step}: valid accuracy {result.accuracy:.3f} ({time.perf_counter() - start:.0f}s)"
                )
                if result.accuracy >= cfg.stop_accuracy:
                    break
        train_seconds = time.perf_counter() - start
        save_model(model, tokenizer, Path(cfg.out_dir) / "model")
        test = [to_prompt(p) for p in sample_eval_set("test", cfg.test_per_level, cfg.levels, cfg.seed)]
        result = greedy_accuracy(model, tokenizer, test)
        summary = {
            "steps": step,
            "train_seconds": round(train_seconds, 1),
            "test_accuracy": result.accuracy,
            "test_stderr": result.stderr,
            "levels": _level_metrics(result, "test"),
        }
        (Path(cfg.out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
        run_log.info(
            f"test accuracy {result.accuracy:.3f} +- {result.stderr:.3f} after {step} steps\n{result.table()}"
        )
    return summary


def greedy_accuracy(model: Any, tokenizer: Any, prompts: list, max_new_tokens: int = 64) -> EvalResult:
    """Greedy accuracy of `model` on world prompts (one sample each)."""
    engine = HFEngine(model, tokenizer, batch_size=512)
    return evaluate_accuracy(
        engine, prompts, world_is_correct, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    )


def pretrained_student(cfg: WorldPretrainConfig | None = None, *, log: bool = True) -> Path:
    """Path of the cached tiny-world student for `cfg` (default preset), training it on first use.

    The cache key is a hash of the config (minus `out_dir`), so a changed config trains anew and
    never reuses a stale model. A model directory appears only when training finished.
    """
    cfg = cfg or WorldPretrainConfig()
    settings = {k: v for k, v in to_dict(cfg).items() if k != "out_dir"}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    out_dir = cache_dir() / "world" / f"student-{key}"
    if not (out_dir / "summary.json").exists():  # written last: its absence means "not finished"
        if log:
            print(f"training the tiny-world student (first use; cached in {out_dir})")
        shutil.rmtree(out_dir, ignore_errors=True)
        run(replace(cfg, out_dir=str(out_dir)))
    return out_dir / "model"


def _sft_step_loss(model: Any, batch: Batch, num_tokens: int) -> tuple[torch.Tensor, dict[str, Any]]:
    logps = token_logps(model, batch.input_ids, batch.attention_mask, position_ids=batch.position_ids)
    return sft_loss(logps, batch.loss_mask, num_tokens)


def _epochs(num_examples: int, batch_size: int, rng: random.Random):
    """Endless batches of example indices, reshuffled every epoch."""
    while True:
        order = list(range(num_examples))
        rng.shuffle(order)
        for i in range(0, num_examples - batch_size + 1, batch_size):
            yield order[i : i + batch_size]


def _level_metrics(result: EvalResult, prefix: str) -> dict[str, float]:
    return {f"{prefix}_{name.replace(' ', '')}": g.accuracy for name, g in result.groups.items()}
