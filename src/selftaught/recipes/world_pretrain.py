"""world-pretrain: train the tiny-world base student from scratch on two CPU cores.

Algorithm (TINYWORLD.md sections 2 and 6):
  1. Train a byte-level BPE tokenizer (digits are single tokens) on world text, in memory.
  2. Build a tiny Llama (`xs`: 144k parameters) from random initialisation.
  3. SFT on chain-of-thought solutions of L1-L3 arithmetic problems written by a *buggy teacher*
     (with probability `bug` an addition forgets its carry), so the student plateaus below 100% and
     a verifier reward has something to fix later (RL beats more SFT on the same data).
  4. Greedy accuracy on the valid split every `eval.every` steps; stop once it reaches
     `stop_accuracy` (the learning curve has a sharp, seed-dependent phase transition, so a fixed
     step budget does not reliably land in the 30-80% band). The cosine schedule reaches its floor
     at `optim_steps`; training may continue at the floor lr until `num_steps`.
     This is the supervised loop of `sft` (`selftaught.train.supervised`) with a stop rule and a
     model built from scratch; the batches visit the pool in reshuffled epochs (last partial
     batch of an epoch dropped).
  5. Save the model (safetensors) and tokenizer; report test-split accuracy per level.

CPU:  selftaught world pretrain                      (about 2-5 minutes)
      selftaught world pretrain seed=1 bug=0.0       (a clean teacher)
"""

from __future__ import annotations

import functools
import json
import random
import shutil
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from selftaught.config import check, to_dict
from selftaught.data.chat import render_conversation
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.models.io import cache_dir
from selftaught.models.tiny import build_tiny_llama
from selftaught.runlog import RunLog
from selftaught.train.batching import Batch, Example, collate
from selftaught.train.evaluation import evaluate_policy
from selftaught.train.loop import EvalConfig, RunConfig
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.supervised import train_supervised
from selftaught.world.sources import sft_records
from selftaught.world.tokenizer import build_tokenizer


@dataclass
class WorldPretrainConfig(RunConfig):
    out_dir: str = "runs/world-pretrain"
    """Run directory; the trained model goes to `<out_dir>/model`."""
    model: str = "xs"
    """Tiny Llama shape built from scratch: xs (144k params), s (1M), m (3.3M), l (8M)."""
    num_steps: int = 6000
    """Hard cap on optimizer steps."""
    log_every: int = 50
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(every=250, per_level=100, batch_size=512))
    """Greedy valid accuracy for the stop rule (`eval.every`); the final test uses `test_per_level`."""
    checkpoint_every: int = 0
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
    test_per_level: int = 200
    stop_accuracy: float = 0.6
    """Stop once greedy valid accuracy (mean over levels) reaches this."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        check(
            self.num_examples >= self.batch_size,
            "num_examples",
            f">= batch_size ({self.batch_size})",
            self.num_examples,
        )
        check(self.optim_steps >= 1, "optim_steps", ">= 1", self.optim_steps)


def run(cfg: WorldPretrainConfig) -> dict[str, Any]:
    """Train, save `<out_dir>/model`, and return the final test evaluation summary."""
    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer(cfg.vocab_size)
    model = build_tiny_llama(
        cfg.model,
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        seed=cfg.seed,
    )
    raw = sft_records(
        num=cfg.num_examples,
        levels=cfg.levels,
        seed=cfg.seed,
        strategy_weights=cfg.strategy_weights,
        bug=cfg.bug,
    )
    examples = [render_conversation(tokenizer, ex["messages"]) for ex in raw]
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.optim_steps)
    step_batches = partial(epoch_batch, examples, cfg, tokenizer.pad_token_id)
    validate = partial(valid_accuracy, model, tokenizer, cfg)
    start = time.perf_counter()
    with RunLog(cfg.out_dir, cfg) as run_log:
        run_log.info(
            f"world-pretrain: {sum(p.numel() for p in model.parameters()):,} params, {len(examples)} examples"
        )
        result = train_supervised(
            cfg,
            run_log,
            model,
            tokenizer,
            optimizer,
            scheduler,
            step_batches,
            max_grad_norm=cfg.optim.max_grad_norm,
            validate=validate,
            stop=lambda val: val["val_accuracy"] >= cfg.stop_accuracy,
            desc="pretrain",
        )
        summary = test_summary(model, tokenizer, cfg, int(result["steps"]), time.perf_counter() - start)
        (Path(cfg.out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
        run_log.info(
            f"test accuracy {summary['test_accuracy']:.3f} +- {summary['test_stderr']:.3f} after "
            f"{summary['steps']} steps"
        )
    return summary


def valid_accuracy(model: Any, tokenizer: Any, cfg: WorldPretrainConfig) -> dict[str, float]:
    """Greedy valid accuracy (the stop rule's) and per level."""
    result = evaluate_policy(model, tokenizer, replace(cfg.eval, levels=cfg.levels), seed=cfg.seed)
    model.train()
    return {"val_accuracy": result.accuracy, **_level_metrics(result, "val")}


def test_summary(model: Any, tokenizer: Any, cfg: WorldPretrainConfig, steps: int, seconds: float) -> dict:
    """Greedy test accuracy of the trained student (`test_per_level` problems per level)."""
    test = replace(cfg.eval, data="world:test", per_level=cfg.test_per_level, levels=cfg.levels)
    result = evaluate_policy(model, tokenizer, test, seed=cfg.seed)
    return {
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "test_accuracy": result.accuracy,
        "test_stderr": result.stderr,
        "levels": _level_metrics(result, "test"),
    }


def epoch_batch(examples: list[Example], cfg: WorldPretrainConfig, pad_id: int, step: int) -> list[Batch]:
    """The batch of step `step` (1-based): epochs of the pool reshuffled by one `Random(seed)` stream,
    each cut into whole batches (a pure function of the step)."""
    per_epoch = len(examples) // cfg.batch_size
    epoch, k = divmod(step - 1, per_epoch)
    order = _epoch_order(len(examples), cfg.seed, epoch)
    return [collate([examples[i] for i in order[k * cfg.batch_size : (k + 1) * cfg.batch_size]], pad_id)]


@functools.lru_cache(maxsize=2)
def _epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The example order of `epoch`: the (epoch + 1)-th shuffle of `Random(seed)`."""
    rng = random.Random(seed)
    for _ in range(epoch + 1):
        order = list(range(num_examples))
        rng.shuffle(order)
    return order


def pretrained_student(cfg: WorldPretrainConfig | None = None, *, log: bool = True) -> Path:
    """Path of the cached tiny-world student for `cfg` (default preset), training it on first use.

    The cache directory is keyed by a fingerprint of the config (minus `out_dir`) and trained through
    `run_once`, so a changed config trains anew, a finished student is reused, and an interrupted
    training starts over (it keeps no checkpoints).
    """
    cfg = cfg or WorldPretrainConfig()
    fingerprint = compute_fingerprint({k: v for k, v in to_dict(cfg).items() if k != "out_dir"})
    out_dir = cache_dir() / "world" / f"student-{fingerprint[:12]}"
    run_once(out_dir, fingerprint, partial(_train_student, cfg, out_dir, log))
    return out_dir / "model"


def _train_student(cfg: WorldPretrainConfig, out_dir: Path, log: bool) -> dict[str, Any]:
    summary = out_dir / "summary.json"
    if summary.is_file():  # finished before run_once kept its record (summary.json is written last)
        return json.loads(summary.read_text())
    if log:
        print(f"training the tiny-world student (first use; cached in {out_dir})")
    shutil.rmtree(out_dir / "model", ignore_errors=True)  # an interrupted run starts over
    for name in ("metrics.jsonl", "log.txt"):
        (out_dir / name).unlink(missing_ok=True)
    return run(replace(cfg, out_dir=str(out_dir)))


def _level_metrics(result: Any, prefix: str) -> dict[str, float]:
    return {f"{prefix}_{name.replace(' ', '')}": g.accuracy for name, g in result.groups.items()}
