"""sft: supervised fine-tuning on conversations, loss on assistant tokens only.

Algorithm (papers_A.md §0.1, "Trainers: SFT"):
    L_SFT = - (1 / sum |y|) * sum_(x, y) sum_t log p_theta(y_t | x, y_<t)
  1. Render every conversation once to (input_ids, loss_mask) with the tokenizer's chat template
     (`data.chat.render_conversation`); truncate to `data.max_length`.
  2. Each optimizer step takes the next `batch_size` examples of a seeded, reshuffled-every-epoch
     stream; under torchrun each rank takes its slice. The slice is cut into micro-batches by a
     token budget (sorted by length, so little padding), and the loss is normalised by the trained
     tokens of the whole global batch, so accumulation and data parallelism equal one big batch.
  3. Evaluate every `eval.every` steps; checkpoint every `checkpoint_every` steps (exact resume:
     rerunning the same command continues from the latest checkpoint).
  4. Write `<out_dir>/model`, a plain transformers directory (LoRA merged).

Data: `world` (tiny-world solutions from a clean or buggy teacher), or a file/dataset with
`messages` (TRL conversational), `prompt` + `completion`, or GSM8K `question` + `answer`.

CPU:    selftaught sft                                  (tiny world: clean-teacher SFT of the student)
        selftaught sft --preset gemma3-270m             (a few LoRA steps on GSM8K train)
N GPUs: torchrun --nproc-per-node 8 -m selftaught.cli sft --preset ... parallel.strategy=fsdp2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selftaught import dist
from selftaught.data.chat import render_conversation, render_prompt_completion
from selftaught.data.sources import read_records
from selftaught.evals.gsm8k import reference_answer
from selftaught.losses.logps import token_logps
from selftaught.losses.sft import sft_loss
from selftaught.recipes.common import (
    EvalConfig,
    LoraConfig,
    batch_indices,
    eval_metrics,
    evaluate_policy,
    load_policy,
    resume,
    save_final_model,
)
from selftaught.runlog import RunLog
from selftaught.train.batching import Batch, Example, collate, token_budget_batches
from selftaught.train.checkpoint import save_checkpoint
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.parallel import ParallelConfig, global_num_tokens, no_sync_context, wrap_model
from selftaught.train.step import train_step
from selftaught.world.arith import sample_sft_examples


@dataclass
class SFTDataConfig:
    source: str = "world"
    """`world` (generated tiny-world solutions) or a JSONL/Parquet/dataset path."""
    max_length: int = 512
    """Examples are truncated to this many tokens."""
    limit: int | None = None
    """Files: use only the first N records."""
    num_examples: int = 20_000
    """World: size of the example pool."""
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    bug: float = 0.0
    """World: probability that the teacher forgets a carry (0 = a clean teacher)."""
    strategy_weights: dict[str, float] = field(default_factory=lambda: {"chain": 1.0})
    seed: int = 1
    """World: seed of the example pool (different from the pretraining pool's 0)."""


@dataclass
class SFTConfig:
    out_dir: str = "runs/sft"
    model: str = "tiny-world"
    """Model to fine-tune: `tiny-world`, `gemma-3-270m`, a directory, a GGUF file or a hub id."""
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    num_steps: int = 300
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
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint_every: int = 100
    """Save a resumable checkpoint every this many steps (0: never)."""
    keep_last: int = 2
    log_every: int = 10
    seed: int = 0


def run(cfg: SFTConfig) -> dict[str, Any]:
    dist.init_distributed()
    model, tokenizer = load_policy(cfg.model, cfg.lora)
    examples = build_examples(cfg.data, tokenizer)
    model = wrap_model(model, cfg.parallel)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    checkpoints = Path(cfg.out_dir) / "checkpoints"
    state = resume(checkpoints, model, optimizer, scheduler)
    with RunLog(cfg.out_dir, cfg, enabled=dist.is_main()) as run_log:
        run_log.info(
            f"sft: {len(examples)} examples, resuming at step {state['step']}"
            if state["step"]
            else f"sft: {len(examples)} examples, {cfg.num_steps} steps"
        )
        if state["step"] == 0 and cfg.eval.every >= 0:
            run_log.log(0, **eval_metrics(evaluate_policy(model, tokenizer, cfg.eval, seed=cfg.seed)))
        for step in run_log.progress(
            range(state["step"] + 1, cfg.num_steps + 1), total=cfg.num_steps, desc="sft"
        ):
            micro_batches = step_micro_batches(examples, step, cfg, tokenizer.pad_token_id)
            local_tokens = sum(mb.num_tokens for mb in micro_batches)
            metrics = train_step(
                model,
                micro_batches,
                _loss,
                optimizer,
                scheduler,
                max_grad_norm=cfg.optim.max_grad_norm,
                num_tokens=global_num_tokens(local_tokens),
                no_sync=no_sync_context(model),
            )
            if step % cfg.log_every == 0 or step == cfg.num_steps:
                run_log.log(step, **metrics)
            if cfg.eval.every > 0 and step % cfg.eval.every == 0 and step != cfg.num_steps:
                run_log.log(step, **eval_metrics(evaluate_policy(model, tokenizer, cfg.eval, seed=cfg.seed)))
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                save_checkpoint(
                    checkpoints, step, model, optimizer, scheduler, {"step": step}, keep_last=cfg.keep_last
                )
        final: dict[str, Any] = {}
        if cfg.eval.every >= 0:
            final = eval_metrics(evaluate_policy(model, tokenizer, cfg.eval, seed=cfg.seed))
            run_log.log(cfg.num_steps, **final)
            run_log.info(
                f"final {cfg.eval.data} accuracy {final['val_accuracy']:.3f} +- {final['val_stderr']:.3f}"
            )
        save_final_model(model, tokenizer, Path(cfg.out_dir) / "model")
    return {"out_dir": cfg.out_dir, **final}


def step_micro_batches(examples: list[Example], step: int, cfg: SFTConfig, pad_id: int) -> list[Batch]:
    """This rank's micro-batches of optimizer step `step` (1-based): a pure function of the step."""
    indices = batch_indices((step - 1) * cfg.batch_size, cfg.batch_size, len(examples), cfg.seed)
    mine = indices[dist.rank() :: dist.world_size()]
    lengths = [len(examples[i][0]) for i in mine]
    budget = cfg.micro_batch_tokens or max(lengths) * len(mine)
    groups = token_budget_batches(lengths, budget)
    return [collate([examples[mine[j]] for j in group], pad_id) for group in groups]


def _loss(model: Any, batch: Batch, num_tokens: float) -> tuple[Any, dict[str, Any]]:
    logps = token_logps(
        model, batch.input_ids, batch.attention_mask, position_ids=batch.position_ids
    )  # [B, T]
    return sft_loss(logps, batch.loss_mask, num_tokens)


def build_examples(cfg: SFTDataConfig, tokenizer: Any) -> list[Example]:
    """Tokenised `(input_ids, loss_mask)` examples, truncated to `cfg.max_length`."""
    if cfg.source == "world":
        records = sample_sft_examples(
            cfg.num_examples, cfg.levels, cfg.seed, cfg.strategy_weights, bug=cfg.bug
        )
    else:
        records = read_records(cfg.source, limit=cfg.limit)
    examples = []
    for i, record in enumerate(records):
        ids, mask = render_record(record, tokenizer, f"{cfg.source} record {i}")
        ids, mask = ids[: cfg.max_length], mask[: cfg.max_length]
        if any(mask):
            examples.append((ids, mask))
    if not examples:
        raise ValueError(
            f"data.source {cfg.source!r} gave no example with trained tokens (max_length {cfg.max_length})"
        )
    dropped = len(records) - len(examples)
    if dropped:
        print(
            f"sft: {dropped} of {len(records)} examples had no assistant tokens within max_length and were dropped"
        )
    return examples


def render_record(record: dict[str, Any], tokenizer: Any, where: str) -> Example:
    """One training example from a TRL-style record (`messages`, `prompt`/`completion`) or GSM8K."""
    if "messages" in record:
        return render_conversation(tokenizer, record["messages"])
    if "prompt" in record and "completion" in record:
        return render_prompt_completion(tokenizer, record["prompt"], record["completion"], where=where)
    if "question" in record and "answer" in record:
        reasoning = record["answer"].rsplit("####", 1)[0].strip()
        answer = f"{reasoning}\nThe answer is {reference_answer(record['answer'])}."
        return render_conversation(
            tokenizer,
            [{"role": "user", "content": record["question"]}, {"role": "assistant", "content": answer}],
        )
    raise ValueError(
        f"{where}: expected `messages`, `prompt` + `completion`, or `question` + `answer` columns, "
        f"got {sorted(record)}"
    )
