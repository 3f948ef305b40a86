"""dpo: offline direct preference optimisation (optionally + NLL) on a fixed set of pairs.

Algorithm (papers_A.md §0.1, fairseq2 `DpoFinetuneUnit`; papers_B.md §1.4-1.6 with sync s = inf):
    l = -log sigmoid(beta [(L_theta(y_c) - L_ref(y_c)) - (L_theta(y_r) - L_ref(y_r))]) + nll_scale * NLL(y_c)
  where L(y) = sum_t log pi(y_t | x, y_<t) is summed over the response tokens (no length
  normalisation unless `loss_type` asks for it); the batch loss is the sum over pairs / num pairs.
  1. Pairs. A prompt source (`world:prompts`, or any prompt-only file): sample
     `samples_per_prompt` completions at temperature 1 from the starting policy for `num_prompts`
     prompts, score them with `data.reward` (the answer check by default), and pair them by
     `data.pair_rule` (a random correct sample against a random incorrect one); prompts whose
     samples are all right or all wrong give no pair (the pair yield is logged). They are written
     as a data stage in `<out_dir>/pairs` (TRL preference format, `pipelines.sample_pairs`) that a
     rerun reads back. Preference files: any TRL preference file, or GSM8K, whose pairs
     `data.formats.gsm8k_preference_records` builds.
  2. Reference: the starting policy scores every chosen and rejected sequence once, before training
     (`<out_dir>/ref_logps.safetensors`, reused while weights, tokens and precision match), so no
     second model is held in memory; in the policy's `precision` (the same forward as its loss). With LoRA the reference is the base model (adapters disabled).
  3. Each optimizer step takes the next `batch_size` pairs of a seeded stream reshuffled every
     epoch. The chosen and rejected sequences of a pair share a micro-batch (one forward over both),
     and the loss is divided by the pairs of the whole step: accumulation and data parallelism equal
     one big batch. Evaluate every `eval.every` steps; checkpoint for exact resume; write
     `<out_dir>/model` (LoRA merged) at the end.

Deviations from the paper: the reference log-probs are precomputed rather than served by a frozen
copy (same numbers, half the memory); Adam eps is 1e-8 (the paper: 1e-4 on verifiable tasks) and the
lr is the tiny model's. Measured on the tiny-world student (world:valid greedy, 300 problems, +-2.8
points; 512 prompts -> 353 pairs, so 100 steps x 32 pairs reuse each about 9 times):
    lr 1e-5:            .607 -> .620 (25) -> .637 (50) -> .627 -> .613   (peaks early, drifts back)
    lr 3e-5:            .607 -> .620 -> .590 -> .557 -> .507             (collapses, as in TINYWORLD §3b)
    lr 1e-5 + NLL 1:    .607 -> .650 -> .660 -> .660 -> .667             (the NLL anchor keeps it stable)
    lr 3e-5 + NLL 1:    .607 -> .647 -> .677 -> .697 -> .703

CPU:    selftaught dpo                                  (tiny world: pairs from the student, 100 steps)
        selftaught dpo data.source=prompts.jsonl data.reward=mypkg.rewards:score   (your prompts and reward)
        selftaught dpo nll_scale=1 optim.lr=3e-5        (+ NLL anchor on the chosen response)
        selftaught dpo --preset gemma3-270m             (a few LoRA steps on GSM8K pairs)
        selftaught dpo precision=bf16-autocast          (bf16 autocast over fp32 weights)
N GPUs: torchrun --nproc-per-node 8 -m selftaught.cli dpo --preset ... parallel.strategy=fsdp2
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from selftaught import dist
from selftaught.configs.recipes import DPOConfig as DPOConfig
from selftaught.configs.recipes import DPODataConfig as DPODataConfig
from selftaught.data.catalog import load_records
from selftaught.data.formats import is_preference_records, preference_records, prompts_from_records
from selftaught.data.order import batch_indices
from selftaught.data.preferences import PairExample, build_pair_examples
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.models.policy import load_policy
from selftaught.pipelines import sample_pairs
from selftaught.rewards.registry import build_reward
from selftaught.runlog import RunLog
from selftaught.train import loop
from selftaught.train.evaluation import validate_policy
from selftaught.train.optim import build_optimizer, build_scheduler
from selftaught.train.parallel import global_num_tokens, no_sync_context, wrap_model
from selftaught.train.preference import PairBatch, build_pair_batches, pair_loss
from selftaught.train.reference import load_or_compute_ref_logps, weights_fingerprint
from selftaught.train.step import train_step

PAIRS_TEMPLATE = "dpo-world-pairs@1"
"""Version of the sampled pair stage's record format and rule; part of its fingerprint."""
PROMPTS_PER_SHARD = 256
"""Sampled pairs: prompts per stage shard (an interrupted build redoes at most one shard)."""


def run(cfg: DPOConfig) -> dict[str, Any]:
    dist.init_distributed()
    torch.manual_seed(cfg.seed)  # the LoRA initialisation
    model, tokenizer = load_policy(
        cfg.model,
        cfg.lora,
        dtype=cfg.precision.weights_dtype,
        activation_checkpointing=cfg.activation_checkpointing,
    )
    pairs, ref_logps, data_metrics = prepare_pairs(cfg, model, tokenizer)  # reference = these weights
    model = wrap_model(model, cfg.parallel)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    loss_fn = partial(
        pair_loss,
        beta=cfg.beta,
        loss_type=cfg.loss_type,
        nll_scale=cfg.nll_scale,
        nll_normalization=cfg.nll_normalization,
    )
    validate = partial(validate_policy, model, tokenizer, cfg.eval, seed=cfg.seed)
    save = partial(loop.checkpoint, cfg, model, optimizer, scheduler)
    with RunLog(cfg.out_dir, cfg, enabled=dist.is_main()) as run_log:
        run_log.info("dpo: " + ", ".join(f"{key}={value}" for key, value in data_metrics.items()))
        state = loop.start(cfg, run_log, model, optimizer, scheduler, validate, first_metrics=data_metrics)
        for step in run_log.progress(loop.remaining_steps(cfg, state), total=cfg.num_steps, desc="dpo"):
            micro_batches = step_micro_batches(pairs, ref_logps, step, cfg, tokenizer.pad_token_id)
            metrics = train_step(
                model,
                micro_batches,
                loss_fn,
                optimizer,
                scheduler,
                max_grad_norm=cfg.optim.max_grad_norm,
                num_units=global_num_tokens(sum(mb.num_units for mb in micro_batches)),
                no_sync=no_sync_context(model),
                precision=cfg.precision,
            )
            loop.end_of_step(cfg, run_log, step, metrics, validate, save)
        final = loop.finish(cfg, run_log, model, tokenizer, validate)
    return {"out_dir": cfg.out_dir, **data_metrics, **final}


def prepare_pairs(
    cfg: DPOConfig, model: Any, tokenizer: Any
) -> tuple[list[PairExample], torch.Tensor, dict[str, Any]]:
    """Tokenised pairs; their reference log-probs under `model` as it is now, [2N] (the N chosen
    sequences, then the N rejected ones); and data metrics (pair counts, yield, cache reuse)."""
    records, metrics = dist.main_first(partial(load_preference_records, cfg, model, tokenizer))
    pairs, num_dropped = build_pair_examples(records, tokenizer, cfg.data.max_length, cfg.data.source)
    sequences = [chosen for chosen, _ in pairs] + [rejected for _, rejected in pairs]
    compute = partial(
        load_or_compute_ref_logps,
        Path(cfg.out_dir) / "ref_logps.safetensors",
        model,
        sequences,
        pad_id=tokenizer.pad_token_id,
        micro_batch_tokens=cfg.micro_batch_tokens,
        precision=cfg.precision,
    )
    ref_logps, reused = dist.main_first(compute)
    metrics.update(num_train_pairs=len(pairs), num_pairs_too_long=num_dropped, ref_logps_reused=reused)
    return pairs, ref_logps, metrics


def step_micro_batches(
    pairs: list[PairExample], ref_logps: torch.Tensor, step: int, cfg: DPOConfig, pad_id: int
) -> list[PairBatch]:
    """This rank's micro-batches of optimizer step `step` (1-based): a pure function of the step.

    `ref_logps` is [2N]: the N chosen sequences, then the N rejected ones. A pair costs two rows of
    its longer sequence's length, and the micro-batches hold at most `cfg.micro_batch_tokens`.
    """
    indices = batch_indices((step - 1) * cfg.batch_size, cfg.batch_size, len(pairs), cfg.seed)
    mine = indices[dist.rank() :: dist.world_size()]
    mine_ref_logps = torch.cat([ref_logps[mine], ref_logps[[len(pairs) + i for i in mine]]])  # [2P]
    return build_pair_batches(
        [pairs[i] for i in mine], mine_ref_logps, pad_id=pad_id, micro_batch_tokens=cfg.micro_batch_tokens
    )


def pairs_template(data: DPODataConfig) -> str:
    """The sampled stage's versioned name: `PAIRS_TEMPLATE`, plus the reward and rule when not the defaults."""
    if (data.reward, data.pair_rule) == ("world_answer", "correct_vs_incorrect"):
        return PAIRS_TEMPLATE
    return f"{PAIRS_TEMPLATE}|{data.reward}|{data.pair_rule}"


def load_preference_records(
    cfg: DPOConfig, model: Any, tokenizer: Any
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """TRL preference records (`prompt`, `chosen`, `rejected`) and data metrics (sampled: pair yield)."""
    data = cfg.data
    records = load_records(
        data.source, limit=data.limit, num=data.num_prompts, levels=data.levels, seed=data.seed
    )
    if is_preference_records(records):
        return preference_records(records, data.source, data.seed), {}
    engine = HFEngine(model, tokenizer, batch_size=data.generation_batch_size)
    sampling = SamplingParams(
        temperature=data.temperature, n=data.samples_per_prompt, max_new_tokens=data.max_new_tokens
    )
    return sample_pairs(
        Path(cfg.out_dir) / "pairs",
        prompts_from_records(records, data.source),
        engine,
        sampling,
        build_reward(data.reward),
        data.pair_rule,
        seed=data.seed,
        generator=cfg.model,
        template=pairs_template(data),
        weights_fingerprint=weights_fingerprint(model),
        shard_size=PROMPTS_PER_SHARD,
        desc="dpo pairs",
    )
