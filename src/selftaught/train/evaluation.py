"""Validation of a policy during training, on whatever `EvalConfig.data` names.

- `world:<split>` or a GSM8K-format file: accuracy of sampled (greedy by default) answers, with its
  standard error and per-level accuracy (`selftaught.evals`).
- `world:persona`: validity of `per_level` samples as the accuracy, and their diversity (per-slot
  unique ratios, entropies, head shares, mean token NLL) as `val_<name>`.
- `world:keywords`: validity as the accuracy, and quality and per-topic word diversity (unique 1-grams
  per pool of 16, 1-gram entropy, head word share, compression ratio, mean token NLL) as `val_<name>`.
- a preference file (`prompt` / `chosen` / `rejected`): preference accuracy, the share of pairs whose
  chosen response has the higher summed log-probability under the policy, and the mean margin.
- a conversation file (`messages`, or `prompt` + `completion`): held-out loss per trained token.
"""

from __future__ import annotations

from typing import Any

import torch

from selftaught.data import gsm8k
from selftaught.data.catalog import load_records
from selftaught.data.formats import is_preference_records, preference_records, sft_examples
from selftaught.data.preferences import build_pair_examples
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.evals.accuracy import EvalResult, evaluate_accuracy
from selftaught.evals.sets import load_eval_set
from selftaught.losses.logps import token_logps
from selftaught.train.batching import collate, token_budget_batches
from selftaught.train.loop import EvalConfig
from selftaught.train.parallel import unwrap

MAX_LENGTH = 1024
"""File evaluations: sequences are truncated to this many tokens."""


def validate_policy(model: Any, tokenizer: Any, cfg: EvalConfig, *, seed: int = 0) -> dict[str, float]:
    """Flat `val_*` metrics of the policy on `cfg.data` (kind of metric: module doc), seeded by
    `cfg.seed`, else (None) by `seed`."""
    seed = seed if cfg.seed is None else cfg.seed
    if cfg.data.startswith("world:") or _is_gsm8k_file(cfg):
        return eval_metrics(evaluate_policy(model, tokenizer, cfg, seed=seed))
    records = load_records(cfg.data, limit=cfg.limit)
    if is_preference_records(records):
        return preference_accuracy(model, tokenizer, preference_records(records, cfg.data, seed))
    return held_out_loss(model, tokenizer, records, cfg.data)


def evaluate_policy(model: Any, tokenizer: Any, cfg: EvalConfig, *, seed: int = 0) -> EvalResult:
    """Accuracy of the current policy on `cfg.data` (seeded by `cfg.seed`, else `seed`)."""
    seed = seed if cfg.seed is None else cfg.seed
    eval_set = load_eval_set(
        cfg.data,
        per_level=cfg.per_level,
        levels=cfg.levels,
        limit=cfg.limit,
        num_shots=cfg.num_shots,
        seed=seed,
    )
    engine = HFEngine(unwrap(model), tokenizer, batch_size=cfg.batch_size)
    sampling = SamplingParams(
        temperature=cfg.temperature,
        n=cfg.n,
        max_new_tokens=eval_set.max_new_tokens,
        stop=eval_set.stop,
        seed=seed,
    )
    result = evaluate_accuracy(engine, eval_set.prompts, eval_set.is_correct, sampling)
    if eval_set.diversity is not None:
        result.diversity = eval_set.diversity([c for cs in result.completions for c in cs])
    return result


def eval_metrics(result: EvalResult, prefix: str = "val") -> dict[str, float]:
    """Flat metrics for `metrics.jsonl`: accuracy, stderr, mean completion length, accuracy per group."""
    metrics = {
        f"{prefix}_accuracy": result.accuracy,
        f"{prefix}_stderr": result.stderr,
        f"{prefix}_mean_tokens": result.mean_completion_tokens,
    }
    metrics.update({f"{prefix}_{name.replace(' ', '')}": g.accuracy for name, g in result.groups.items()})
    metrics.update({f"{prefix}_{name}": value for name, value in result.diversity.items()})
    return metrics


def preference_accuracy(model: Any, tokenizer: Any, records: list[dict[str, Any]]) -> dict[str, float]:
    """Share of pairs whose chosen response the policy gives the higher summed log-probability."""
    pairs, _ = build_pair_examples(records, tokenizer, MAX_LENGTH)
    sequences = [chosen for chosen, _ in pairs] + [rejected for _, rejected in pairs]
    logps = _sequence_logps(model, tokenizer, sequences)
    chosen, rejected = logps.chunk(2)  # [P], [P]
    return {
        "val_preference_accuracy": float((chosen > rejected).float().mean()),
        "val_logp_margin": float((chosen - rejected).mean()),
        "val_num_pairs": float(len(pairs)),
    }


def held_out_loss(model: Any, tokenizer: Any, records: list[dict[str, Any]], source: str) -> dict[str, float]:
    """Mean negative log-likelihood per trained token of held-out SFT records."""
    examples = sft_examples(records, tokenizer, source, MAX_LENGTH)
    total = _sequence_logps(model, tokenizer, examples).sum()
    num_tokens = sum(sum(example[1]) for example in examples)
    return {"val_loss": float(-total / num_tokens), "val_num_tokens": float(num_tokens)}


def _sequence_logps(model: Any, tokenizer: Any, sequences: list[Any]) -> torch.Tensor:
    """[N] summed log-probs of the trained tokens under the policy as it is (adapters on), no grad."""
    groups = token_budget_batches([len(ids) for ids, _ in sequences], 8192)
    device = next(model.parameters()).device
    logps = torch.zeros(len(sequences))  # [N]
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for group in groups:
            batch = collate([sequences[i] for i in group], tokenizer.pad_token_id).to(device)
            token = token_logps(
                model,
                batch.input_ids,
                batch.attention_mask,
                position_ids=batch.position_ids,
                loss_mask=batch.loss_mask,
            )  # [b, T], 0 outside the loss mask
            logps[group] = (token * batch.loss_mask).sum(-1).float().cpu()  # [b]
    model.train(was_training)
    return logps


def _is_gsm8k_file(cfg: EvalConfig) -> bool:
    first = load_records(cfg.data, limit=1)
    return bool(first) and gsm8k.is_gsm8k_record(first[0])
