"""sft: supervised fine-tuning on conversations, loss on assistant tokens only.

Algorithm (papers_A.md §0.1, "Trainers: SFT"):
    L_SFT = - (1 / sum |y|) * sum_(x, y) sum_t log p_theta(y_t | x, y_<t)
  1. Render every conversation once to (input_ids, loss_mask) with the tokenizer's chat template
     (`data.formats.sft_examples`); truncate to `data.max_length`.
  2. Each optimizer step takes the next `batch_size` examples of a seeded, reshuffled-every-epoch
     stream; under torchrun each rank takes its slice. The slice is cut into micro-batches by a
     token budget (sorted by length, so little padding), and the loss is normalised by the trained
     tokens of the whole global batch, so accumulation and data parallelism equal one big batch.
  3. Evaluate every `eval.every` steps; checkpoint every `checkpoint_every` steps (exact resume:
     rerunning the same command continues from the latest checkpoint).
  4. Write `<out_dir>/model`, a plain transformers directory (LoRA merged).

Data: any source (`selftaught.data.catalog`): `world:sft` (tiny-world solutions from a clean or
buggy teacher), or a file/dataset with `messages` (TRL conversational), `prompt` + `completion`, or
GSM8K `question` + `answer`.

CPU:    selftaught sft                                  (tiny world: clean-teacher SFT of the student)
        selftaught sft --preset gemma3-270m             (a few LoRA steps on GSM8K train)
        selftaught sft precision=bf16-autocast          (bf16 autocast, fp32 weights; or precision=bf16)
N GPUs: torchrun --nproc-per-node 8 -m selftaught.cli sft --preset ... parallel.strategy=fsdp2
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from selftaught import dist
from selftaught.config import to_dict
from selftaught.configs.recipes import SFTConfig as SFTConfig
from selftaught.configs.recipes import SFTDataConfig as SFTDataConfig
from selftaught.configs.recipes import judge_seed_config
from selftaught.data.catalog import load_records
from selftaught.data.formats import sft_examples
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.models.io import cache_dir
from selftaught.models.policy import load_policy
from selftaught.runlog import RunLog
from selftaught.train.batching import Batch, Example, WeightedExample
from selftaught.train.evaluation import validate_policy
from selftaught.train.optim import build_optimizer, build_scheduler
from selftaught.train.parallel import wrap_model
from selftaught.train.supervised import micro_batches, rank_indices, train_supervised


def run(cfg: SFTConfig) -> dict[str, Any]:
    dist.init_distributed()
    model, tokenizer = load_policy(
        cfg.model,
        cfg.lora,
        dtype=cfg.precision.weights_dtype,
        activation_checkpointing=cfg.activation_checkpointing,
    )
    examples = build_examples(cfg.data, tokenizer)
    model = wrap_model(model, cfg.parallel)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    step_batches = partial(step_micro_batches, examples, cfg, tokenizer.pad_token_id)
    validate = partial(validate_policy, model, tokenizer, cfg.eval, seed=cfg.seed)
    with RunLog(cfg.out_dir, cfg, enabled=dist.is_main()) as run_log:
        run_log.info(f"sft: {len(examples)} examples, {cfg.num_steps} steps")
        final = train_supervised(
            cfg,
            run_log,
            model,
            tokenizer,
            optimizer,
            scheduler,
            step_batches,
            max_grad_norm=cfg.optim.max_grad_norm,
            validate=validate,
        )
    return {"out_dir": cfg.out_dir, **final}


def step_micro_batches(
    examples: list[Example | WeightedExample], cfg: SFTConfig, pad_id: int, step: int
) -> list[Batch]:
    """This rank's micro-batches of optimizer step `step` (1-based): a pure function of the step."""
    indices = rank_indices(step, cfg.batch_size, len(examples), cfg.seed)
    return micro_batches(examples, indices, pad_id, cfg.micro_batch_tokens)


def build_examples(data: SFTDataConfig, tokenizer: Any) -> list[Example | WeightedExample]:
    """Tokenised `(input_ids, loss_mask)` examples of `data.source`, truncated to `data.max_length`."""
    records = load_records(
        data.source,
        limit=data.limit,
        num=data.num_examples,
        levels=data.levels,
        seed=data.seed,
        strategy_weights=data.strategy_weights,
        bug=data.bug,
    )
    return sft_examples(records, tokenizer, data.source, data.max_length, data.emphasis)


def pretrained_judge(cfg: SFTConfig | None = None) -> Path:
    """Path of the cached tiny-world seed judge (`judge_seed_config`, the `tiny-world-judge` alias),
    trained on first use: keyed by the config minus `out_dir` and trained through `run_once`, as the
    world-pretrain students are (a changed config trains anew; an interrupted one starts over)."""
    cfg = cfg or judge_seed_config()
    fingerprint = compute_fingerprint({k: v for k, v in to_dict(cfg).items() if k != "out_dir"})
    out_dir = cache_dir() / "world" / f"judge-{fingerprint[:12]}"
    run_once(out_dir, fingerprint, partial(run, replace(cfg, out_dir=str(out_dir / "run"))))
    return out_dir / "run" / "model"
