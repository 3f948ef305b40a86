"""dpo: offline direct preference optimisation (optionally + NLL) on a fixed set of pairs.

Algorithm (papers_A.md §0.1, fairseq2 `DpoFinetuneUnit`; papers_B.md §1.4-1.6 with sync s = inf):
    l = -log sigmoid(beta [(L_theta(y_c) - L_ref(y_c)) - (L_theta(y_r) - L_ref(y_r))]) + nll_scale * NLL(y_c)
  where L(y) = sum_t log pi(y_t | x, y_<t) is summed over the response tokens (no length
  normalisation unless `loss_type` asks for it); the batch loss is the sum over pairs / num pairs.
  1. Pairs. `world`: sample `samples_per_prompt` completions at temperature 1 from the starting
     policy for `num_prompts` train-split problems, check every answer, and pair a random correct
     sample (chosen) with a random incorrect one (rejected); prompts whose samples are all right or
     all wrong give no pair (the pair yield is logged). They are written as a data stage in
     `<out_dir>/pairs` (TRL preference format) that a rerun reads back. Files: any TRL preference
     file, or GSM8K, whose pairs `gsm8k_preference_records` builds.
  2. Reference: the starting policy scores every chosen and rejected sequence once, before training
     (`<out_dir>/ref_logps.safetensors`, reused while weights and tokens match), so no second model
     is held in memory. With LoRA the reference is the base model (adapters disabled).
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
        selftaught dpo nll_scale=1 optim.lr=3e-5        (+ NLL anchor on the chosen response)
        selftaught dpo --preset gemma3-270m             (a few LoRA steps on GSM8K pairs)
N GPUs: torchrun --nproc-per-node 8 -m selftaught.cli dpo --preset ... parallel.strategy=fsdp2
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch

from selftaught import dist
from selftaught.data.preferences import PairExample, build_pair_examples, preference_record
from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.data.sources import read_records, require_columns
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.evals.gsm8k import reference_answer
from selftaught.losses.dpo import DPOLossType, NLLNormalization
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
from selftaught.selection.pairs import correct_vs_incorrect
from selftaught.train.checkpoint import save_checkpoint
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.parallel import ParallelConfig, global_num_tokens, no_sync_context, wrap_model
from selftaught.train.preference import PairBatch, build_pair_batches, pair_loss, pair_units
from selftaught.train.reference import load_or_compute_ref_logps, weights_fingerprint
from selftaught.train.step import train_step
from selftaught.world.arith import Problem, is_correct, sample_problems, to_prompt

PAIRS_TEMPLATE = "dpo-world-pairs@1"
"""Version of the world pair stage's record format and rule; part of its fingerprint."""
PROMPTS_PER_SHARD = 256
"""World pairs: prompts per stage shard (an interrupted build redoes at most one shard)."""


@dataclass
class DPODataConfig:
    source: str = "world"
    """`world` (pairs sampled from the starting policy), a TRL preference file (`prompt`, `chosen`,
    `rejected`; conversational or plain text), or a GSM8K-format file (`question`, `answer`)."""
    max_length: int = 512
    """Each sequence (prompt + response) is truncated to this many tokens."""
    limit: int | None = None
    """Files: use only the first N records."""
    num_prompts: int = 512
    """World: train-split problems to sample from."""
    samples_per_prompt: int = 8
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    temperature: float = 1.0
    """World: sampling temperature of the pair pool (the paper samples at 1.0)."""
    max_new_tokens: int = 64
    generation_batch_size: int = 256
    """World: sequences decoded together."""
    seed: int = 2
    """World: seed of the problems, the samples and the pair choice; GSM8K: of the wrong answers."""


@dataclass
class DPOConfig:
    out_dir: str = "runs/dpo"
    model: str = "tiny-world"
    """Policy and reference: `tiny-world`, `gemma-3-270m`, a directory, a GGUF file or a hub id."""
    data: DPODataConfig = field(default_factory=DPODataConfig)
    num_steps: int = 100
    batch_size: int = 32
    """Pairs per optimizer step (global, over all processes)."""
    micro_batch_tokens: int = 8192
    """Padded tokens per micro-batch, chosen and rejected rows together; 0 = one micro-batch."""
    beta: float = 0.1
    """Inverse temperature of the implicit reward (tau for IPO)."""
    loss_type: Literal["sigmoid", "length_normalized", "ipo"] = "sigmoid"
    """See `selftaught.losses.dpo.DPOLossType`."""
    nll_scale: float = 0.0
    """Weight of the NLL term on the chosen response (fairseq2 `nll_scale`; 0 = plain DPO)."""
    nll_normalization: Literal["sum", "token_mean"] = "sum"
    """NLL per pair summed over tokens (fairseq2 2024) or averaged per token (RPO)."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-5, eps=1e-8, schedule="constant"))
    lora: LoraConfig = field(default_factory=LoraConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint_every: int = 50
    """Save a resumable checkpoint every this many steps (0: never)."""
    keep_last: int = 2
    log_every: int = 5
    seed: int = 0
    """Seed of the pair order and of the LoRA initialisation."""

    def __post_init__(self) -> None:
        if self.loss_type not in tuple(DPOLossType):
            raise ValueError(
                f"loss_type must be one of {[t.value for t in DPOLossType]}, got {self.loss_type!r}"
            )
        if self.nll_normalization not in tuple(NLLNormalization):
            raise ValueError(
                f"nll_normalization must be 'sum' or 'token_mean', got {self.nll_normalization!r}"
            )


def run(cfg: DPOConfig) -> dict[str, Any]:
    dist.init_distributed()
    torch.manual_seed(cfg.seed)  # the LoRA initialisation
    model, tokenizer = load_policy(cfg.model, cfg.lora)
    pairs, ref_logps, data_metrics = prepare_pairs(cfg, model, tokenizer)  # reference = these weights
    model = wrap_model(model, cfg.parallel)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    checkpoints = Path(cfg.out_dir) / "checkpoints"
    state = resume(checkpoints, model, optimizer, scheduler)
    loss_fn = partial(
        pair_loss,
        beta=cfg.beta,
        loss_type=DPOLossType(cfg.loss_type),
        nll_scale=cfg.nll_scale,
        nll_normalization=NLLNormalization(cfg.nll_normalization),
    )
    validate = partial(evaluate_policy, model, tokenizer, cfg.eval, seed=cfg.seed)
    with RunLog(cfg.out_dir, cfg, enabled=dist.is_main()) as run_log:
        run_log.info("dpo: " + ", ".join(f"{key}={value}" for key, value in data_metrics.items()))
        if state["step"]:
            run_log.info(f"resuming at step {state['step']} of {cfg.num_steps}")
        if state["step"] == 0:
            run_log.log(0, **data_metrics)
            if cfg.eval.every >= 0:
                run_log.log(0, **eval_metrics(validate()))
        steps = range(state["step"] + 1, cfg.num_steps + 1)
        for step in run_log.progress(steps, total=cfg.num_steps, desc="dpo"):
            micro_batches = step_micro_batches(pairs, ref_logps, step, cfg, tokenizer.pad_token_id)
            local_pairs = sum(mb.num_pairs for mb in micro_batches)
            metrics = train_step(
                model,
                micro_batches,
                loss_fn,
                optimizer,
                scheduler,
                max_grad_norm=cfg.optim.max_grad_norm,
                num_tokens=global_num_tokens(local_pairs),
                no_sync=no_sync_context(model),
            )
            if step % cfg.log_every == 0 or step == cfg.num_steps:
                run_log.log(step, **pair_units(metrics))
            if cfg.eval.every > 0 and step % cfg.eval.every == 0 and step != cfg.num_steps:
                run_log.log(step, **eval_metrics(validate()))
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                train_state = {"step": step}
                save_checkpoint(
                    checkpoints, step, model, optimizer, scheduler, train_state, keep_last=cfg.keep_last
                )
        final: dict[str, Any] = {}
        if cfg.eval.every >= 0:
            final = eval_metrics(validate())
            run_log.log(cfg.num_steps, **final)
            run_log.info(
                f"final {cfg.eval.data} accuracy {final['val_accuracy']:.3f} +- {final['val_stderr']:.3f}"
            )
        save_final_model(model, tokenizer, Path(cfg.out_dir) / "model")
    return {"out_dir": cfg.out_dir, **data_metrics, **final}


def prepare_pairs(
    cfg: DPOConfig, model: Any, tokenizer: Any
) -> tuple[list[PairExample], torch.Tensor, dict[str, Any]]:
    """Tokenised pairs; their reference log-probs under `model` as it is now, [2N] (the N chosen
    sequences, then the N rejected ones); and data metrics (pair counts, yield, cache reuse)."""
    records, metrics = dist.main_first(partial(load_preference_records, cfg, model, tokenizer))
    pairs, num_dropped = build_pair_examples(records, tokenizer, cfg.data.max_length)
    sequences = [chosen for chosen, _ in pairs] + [rejected for _, rejected in pairs]
    compute = partial(
        load_or_compute_ref_logps,
        Path(cfg.out_dir) / "ref_logps.safetensors",
        model,
        sequences,
        pad_id=tokenizer.pad_token_id,
        micro_batch_tokens=cfg.micro_batch_tokens,
    )
    ref_logps, reused = dist.main_first(compute)
    metrics.update(num_train_pairs=len(pairs), num_pairs_too_long=num_dropped, ref_logps_reused=reused)
    return pairs, ref_logps, metrics


# --- training --------------------------------------------------------------------------------------


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


# --- data ------------------------------------------------------------------------------------------


def load_preference_records(
    cfg: DPOConfig, model: Any, tokenizer: Any
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """TRL preference records (`prompt`, `chosen`, `rejected`) and data metrics (world: pair yield)."""
    data = cfg.data
    if data.source == "world":
        return build_world_pairs(data, model, tokenizer, Path(cfg.out_dir) / "pairs", generator=cfg.model)
    records = read_records(data.source, limit=data.limit)
    if records and {"question", "answer"} <= records[0].keys() and "prompt" not in records[0]:
        return gsm8k_preference_records(records, data.seed), {}
    require_columns(records, ["prompt", "chosen", "rejected"], data.source)
    return records, {}


def build_world_pairs(
    data: DPODataConfig, model: Any, tokenizer: Any, stage_dir: Path, *, generator: str
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Correct-vs-incorrect pairs sampled from `model` on train-split problems, as a data stage.

    Shard k samples its prompts with seed `data.seed * 1_000_003 + k * PROMPTS_PER_SHARD`, and
    each prompt's pair is drawn with `random.Random(f"{data.seed}|{prompt.id}")`: the stage is a
    function of the model, the config and the seed, however it is interrupted and resumed.
    """
    problems = sample_problems("train", data.num_prompts, data.levels, data.seed)
    engine = HFEngine(model, tokenizer, batch_size=data.generation_batch_size)
    sampling = SamplingParams(
        temperature=data.temperature, n=data.samples_per_prompt, max_new_tokens=data.max_new_tokens
    )
    provenance = {"generator": generator, "seed": data.seed, "template": PAIRS_TEMPLATE}

    def make_pairs(chunk: list[tuple[int, Problem]]) -> list[dict[str, Any]]:
        prompts = [to_prompt(problem) for _, problem in chunk]
        samples = engine.generate(prompts, replace(sampling, seed=data.seed * 1_000_003 + chunk[0][0]))
        records: list[dict[str, Any]] = []
        for (_, problem), prompt, completions in zip(chunk, prompts, samples, strict=True):
            scored = [(c, float(is_correct(c.text, problem.answer))) for c in completions]
            group = correct_vs_incorrect(prompt, scored, random.Random(f"{data.seed}|{prompt.id}"))
            records.extend(preference_record(pair, provenance) for pair in group.pairs)
        return records

    fingerprint = compute_fingerprint(
        {
            **provenance,
            "weights": weights_fingerprint(model),
            "problems": [p.id for p in problems],
            "sampling": vars(sampling),
        }
    )
    records = run_stage(
        stage_dir,
        list(enumerate(problems)),
        make_pairs,
        shard_size=PROMPTS_PER_SHARD,
        fingerprint=fingerprint,
        meta=provenance,
        desc="dpo pairs",
    )
    return records, {
        "num_prompts": len(problems),
        "num_pairs": len(records),
        "pair_yield": len(records) / max(len(problems), 1),
    }


def gsm8k_preference_records(records: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Pairs from GSM8K (`question`, `answer`): the same worked solution with the right final number
    (chosen) and with a wrong one (rejected).

    Both responses are the reference reasoning followed by "The answer is N." (the SFT recipe's
    rendering); the rejected N is the true one plus a seeded nonzero offset in [-10, 10]. Only the
    final number differs, so the preference is unambiguous and verifiable: a small, cheap set for
    checking DPO on a real model, not a training set of interest.
    """
    rng = random.Random(seed)
    pairs = []
    for index, record in enumerate(records):
        reasoning = record["answer"].rsplit("####", 1)[0].strip()
        answer = reference_answer(record["answer"])
        if not answer.lstrip("-").isdigit():
            raise ValueError(f"GSM8K record {index}: final answer {answer!r} is not an integer")
        wrong = int(answer) + rng.choice([d for d in range(-10, 11) if d])
        pairs.append(
            {
                "prompt": [{"role": "user", "content": record["question"]}],
                "chosen": [{"role": "assistant", "content": f"{reasoning}\nThe answer is {answer}."}],
                "rejected": [{"role": "assistant", "content": f"{reasoning}\nThe answer is {wrong}."}],
                "meta": {
                    "source_index": index,
                    "answer": answer,
                    "rule": "gsm8k_wrong_final_number",
                    "seed": seed,
                },
            }
        )
    return pairs
