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
N GPUs: torchrun --nproc-per-node 8 -m selftaught.cli sft --preset ... parallel.strategy=fsdp2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from selftaught import dist
from selftaught.config import check, check_levels, check_limit
from selftaught.data.catalog import load_records
from selftaught.data.formats import sft_examples
from selftaught.models.policy import LoraConfig, load_policy
from selftaught.runlog import RunLog
from selftaught.train.batching import Batch, Example
from selftaught.train.evaluation import validate_policy
from selftaught.train.loop import RunConfig
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.parallel import wrap_model
from selftaught.train.supervised import micro_batches, rank_indices, train_supervised
from selftaught.world.arith import check_strategy_weights


@dataclass
class SFTDataConfig:
    source: str = "world:sft"
    """`world:sft` (generated tiny-world solutions), or a JSONL/Parquet/dataset path or `hf:` name."""
    max_length: int = 512
    """Examples are truncated to this many tokens."""
    limit: int | None = None
    """Use only the first N records."""
    num_examples: int = 20_000
    """World: size of the example pool."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    bug: float = 0.0
    """World: probability that the teacher forgets a carry (0 = a clean teacher)."""
    strategy_weights: dict[str, float] = field(default_factory=lambda: {"chain": 1.0})
    seed: int = 1
    """World: seed of the example pool (different from the pretraining pool's 0)."""


@dataclass
class SFTConfig(RunConfig):
    out_dir: str = "runs/sft"
    num_steps: int = 300
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    batch_size: int = 64
    """Examples per optimizer step (global, over all processes)."""
    micro_batch_tokens: int = 8192
    """Padded tokens per micro-batch (gradient accumulation splits a step into these); 0 = one micro-batch."""
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=3e-4, betas=(0.9, 0.98), schedule="cosine", warmup_steps=10, min_lr_ratio=0.1
        )
    )
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        check(
            self.micro_batch_tokens >= 0,
            "micro_batch_tokens",
            ">= 0 (0: one micro-batch)",
            self.micro_batch_tokens,
        )
        check(self.data.max_length >= 1, "data.max_length", ">= 1", self.data.max_length)
        check_limit(self.data.limit, "data.limit")
        check(self.data.num_examples >= 1, "data.num_examples", ">= 1", self.data.num_examples)
        check_levels(self.data.levels, "data.levels")
        check(0 <= self.data.bug <= 1, "data.bug", "a probability in [0, 1]", self.data.bug)
        check_strategy_weights(self.data.strategy_weights, "data.strategy_weights")


def run(cfg: SFTConfig) -> dict[str, Any]:
    dist.init_distributed()
    model, tokenizer = load_policy(cfg.model, cfg.lora)
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


def step_micro_batches(examples: list[Example], cfg: SFTConfig, pad_id: int, step: int) -> list[Batch]:
    """This rank's micro-batches of optimizer step `step` (1-based): a pure function of the step."""
    indices = rank_indices(step, cfg.batch_size, len(examples), cfg.seed)
    return micro_batches(examples, indices, pad_id, cfg.micro_batch_tokens)


def build_examples(data: SFTDataConfig, tokenizer: Any) -> list[Example]:
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
    return sft_examples(records, tokenizer, data.source, data.max_length)
