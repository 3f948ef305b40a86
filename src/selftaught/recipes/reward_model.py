"""reward-model: train a Bradley-Terry reward model on preference pairs; report held-out pairwise accuracy.

Algorithm (Bradley & Terry 1952; InstructGPT, Ouyang et al. 2022, Eq. 1):
    l = -log sigmoid(r(x, y_c) - r(x, y_r)),   r = a linear head on the last token's hidden state
  1. Model: `AutoModelForSequenceClassification` with one label, built from a causal LM (the
     tiny-world student, a directory, a GGUF file): the backbone weights are loaded, the head
     `score` is new (seeded). Its pad token id is set, so the last non-pad token is scored.
  2. Pairs. `world:pairs` (`selftaught.world.sources.pair_records`): one pair per distinct problem. Chosen is the correct chain solution, rejected
     the buggy teacher's (every units carry of an addition forgotten, TINYWORLD §1), so only
     problems with a carry give a pair. `off_by_one` also pairs the others, against the chain
     solution with its last result off by 1 or 10. With `length_bias` p, a share p of the pairs
     instead prefers the longer correct solution (grouped strategy) over the chain one: a reward
     model that likes length, for reward-hacking demos. Train pairs use train-split problems,
     held-out pairs valid-split ones (`world:pairs:valid`). Files: any `prompt`/`chosen`/`rejected`
     records (TRL preference format, text or conversational); held out: `data.valid_source`, or,
     when it is empty, a hash of the prompt holds out `valid_fraction` of the prompts with all
     their pairs.
  3. Each optimizer step takes the next `batch_size` pairs of a seeded stream reshuffled every
     epoch; a pair's two sequences share a forward pass, and the loss is divided by the pairs of
     the whole step (accumulation = one big batch). Held-out pairwise accuracy (r_c > r_r) before
     training, every `eval.every` steps and at the end; checkpoints for exact resume.
  4. Write `<out_dir>/model`, a plain transformers directory that `RewardModel.from_pretrained`
     (and TRL, as a reward model) loads.

Measured (2 CPU cores): from the cached xs student, 32 carry pairs per step, lr 1e-3 cosine,
held-out pairwise accuracy goes .50 -> .84 (step 50) -> .95 (100) -> .97 (150) in 150 steps
(about 8 s of training unshared); the tiny preset's 300 steps end at .977. Off-by-one pairs are
much harder for this model: with `off_by_one`, 800 steps gave .98 on carry pairs and .58 on
off-by-one ones. Length pairs are learnt within 10 steps, even from a random model; with
`length_bias=0.5`, 300 steps give 1.0 on length pairs and .90 on carry pairs.

Deviations: no reward centering term and no margin; single process (no DDP/FSDP wrapping yet).

CPU:  selftaught reward-model                                (tiny world: correct vs buggy carry)
      selftaught reward-model data.length_bias=0.5           (a reward model that also prefers longer solutions)
      selftaught reward-model data.source=pairs.jsonl model=DIR
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from selftaught.configs.recipes import RewardModelConfig as RewardModelConfig
from selftaught.configs.recipes import RewardModelDataConfig as RewardModelDataConfig
from selftaught.data.catalog import load_records
from selftaught.data.formats import check_preference_records
from selftaught.data.order import batch_indices
from selftaught.models.io import resolve_model_source, save_model
from selftaught.models.policy import enable_activation_checkpointing
from selftaught.rewards.reward_model import (
    RewardModel,
    bradley_terry_loss,
    ensure_pad_token_id,
    render_for_reward,
    sequence_rewards,
)
from selftaught.runlog import RunLog
from selftaught.train import loop
from selftaught.train.batching import collate
from selftaught.train.optim import build_optimizer, build_scheduler
from selftaught.train.precision import cast_for_training
from selftaught.train.preference import PairBatch
from selftaught.train.step import train_step


@dataclass
class TokenPair:
    """A preference pair as token ids, each sequence prompt + response (`render_for_reward`)."""

    chosen_ids: list[int]
    rejected_ids: list[int]
    kind: str = ""
    """World pairs: `carry` (buggy teacher), `off_by_one`, or `length`; empty for files."""


def run(cfg: RewardModelConfig) -> dict[str, Any]:
    model, tokenizer = build_reward_model(cfg.model, cfg.seed)
    model = cast_for_training(model, cfg.precision)
    if cfg.activation_checkpointing:
        enable_activation_checkpointing(model, cfg.activation_checkpointing)
    train_records, valid_records = load_pair_records(cfg.data)
    train, num_dropped = render_pairs(train_records, tokenizer, cfg.data.max_length)
    valid, num_valid_dropped = render_pairs(valid_records, tokenizer, cfg.data.max_length)
    if not train or not valid:
        raise ValueError(
            f"data.source {cfg.data.source!r} gave {len(train)} train and {len(valid)} held-out pairs "
            f"within max_length {cfg.data.max_length}; both must be non-empty"
        )
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    scorer = RewardModel(model, tokenizer, batch_size=cfg.eval.batch_size, max_length=cfg.data.max_length)
    validate = partial(pairwise_metrics, scorer, valid)
    save = partial(loop.checkpoint, cfg, model, optimizer, scheduler)
    with RunLog(cfg.out_dir, cfg) as run_log:
        run_log.info(
            f"reward-model: {len(train)} train and {len(valid)} held-out pairs, "
            f"{num_dropped + num_valid_dropped} dropped as longer than {cfg.data.max_length} tokens"
        )
        state = loop.start(cfg, run_log, model, optimizer, scheduler, validate)
        for step in run_log.progress(loop.remaining_steps(cfg, state), total=cfg.num_steps, desc="rm"):
            micro_batches = step_micro_batches(train, step, cfg, scorer.pad_id)
            metrics = train_step(
                model,
                micro_batches,
                _loss,
                optimizer,
                scheduler,
                max_grad_norm=cfg.optim.max_grad_norm,
                precision=cfg.precision,
            )
            loop.end_of_step(cfg, run_log, step, metrics, validate, save)
        final = validate()
        run_log.log(cfg.num_steps, **final)
        run_log.info(f"held-out pairwise accuracy {final['val_pairwise_accuracy']:.3f} on {len(valid)} pairs")
        save_model(model, tokenizer, Path(cfg.out_dir) / "model")
    return {"out_dir": cfg.out_dir, **final}


def build_reward_model(spec: str, seed: int) -> tuple[Any, Any]:
    """A one-label sequence-classification model from a causal LM (or reward model) and its tokenizer.

    The backbone weights come from `spec`; a new head is initialised under `seed` without touching
    the caller's random state. The pad token id is set (tokenizer pad, else EOS).
    """
    source = resolve_model_source(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(source)
    ensure_pad_token_id(model, tokenizer)
    return model.train(), tokenizer


# --- training --------------------------------------------------------------------------------------


def step_micro_batches(
    pairs: list[TokenPair], step: int, cfg: RewardModelConfig, pad_id: int
) -> list[PairBatch]:
    """The micro-batches of optimizer step `step` (1-based): a pure function of the step."""
    indices = batch_indices((step - 1) * cfg.batch_size, cfg.batch_size, len(pairs), cfg.seed)
    size = cfg.micro_batch_pairs or len(indices)
    batches = []
    for start in range(0, len(indices), size):
        chunk = [pairs[i] for i in indices[start : start + size]]
        rows = [p.chosen_ids for p in chunk] + [p.rejected_ids for p in chunk]
        batches.append(PairBatch(collate([(ids, [True] * len(ids)) for ids in rows], pad_id)))
    return batches


def _loss(model: Any, batch: PairBatch, num_pairs: float) -> tuple[torch.Tensor, dict[str, Any]]:
    sequences = batch.sequences.to(next(model.parameters()).device)
    rewards = sequence_rewards(model, sequences.input_ids, sequences.attention_mask)  # [2P]
    chosen_rewards, rejected_rewards = rewards.chunk(2)  # [P], [P]
    return bradley_terry_loss(chosen_rewards, rejected_rewards, num_pairs=int(num_pairs))


def pairwise_metrics(scorer: RewardModel, pairs: list[TokenPair], prefix: str = "val") -> dict[str, float]:
    """Held-out pairwise accuracy (share with r_c > r_r), mean margin and loss; accuracy per pair kind."""
    chosen_rewards = _scores(scorer, [p.chosen_ids for p in pairs])  # [N]
    rejected_rewards = _scores(scorer, [p.rejected_ids for p in pairs])  # [N]
    loss, metrics = bradley_terry_loss(chosen_rewards, rejected_rewards)
    out = {
        f"{prefix}_pairwise_accuracy": float(metrics["accuracy"]),
        f"{prefix}_margin": float(metrics["margin"]),
        f"{prefix}_loss": float(loss),
    }
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for pair, win in zip(pairs, (chosen_rewards > rejected_rewards).tolist(), strict=True):
        if pair.kind:
            by_kind[pair.kind].append(win)
    for kind, wins in sorted(by_kind.items()):
        out[f"{prefix}_pairwise_accuracy_{kind}"] = sum(wins) / len(wins)
    return out


def _scores(scorer: RewardModel, sequences: list[list[int]]) -> torch.Tensor:
    values = scorer.score_ids(sequences)
    assert all(v is not None for v in values), "render_pairs keeps only pairs within max_length"
    return torch.tensor(values)


# --- data ------------------------------------------------------------------------------------------


def load_pair_records(cfg: RewardModelDataConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`(train, held_out)` preference records: `prompt`, `chosen`, `rejected` (world pairs add `kind`, `answer`)."""
    world = {
        "levels": cfg.levels,
        "seed": cfg.seed,
        "length_bias": cfg.length_bias,
        "off_by_one": cfg.off_by_one,
    }
    records = load_records(cfg.source, limit=cfg.limit, num=cfg.num_pairs, **world)
    check_preference_records(records, cfg.source)
    if cfg.valid_source:
        held_out = load_records(cfg.valid_source, limit=cfg.limit, num=cfg.num_valid_pairs, **world)
        check_preference_records(held_out, cfg.valid_source)
        return records, held_out
    is_held_out = [_held_out(record["prompt"], cfg.valid_fraction) for record in records]
    return (
        [r for r, h in zip(records, is_held_out, strict=True) if not h],
        [r for r, h in zip(records, is_held_out, strict=True) if h],
    )


def _held_out(prompt: Any, fraction: float) -> bool:
    digest = hashlib.sha1(json.dumps(prompt, sort_keys=True).encode()).hexdigest()
    return int(digest[:8], 16) % 10_000 < fraction * 10_000


def render_pairs(
    records: list[dict[str, Any]], tokenizer: Any, max_length: int
) -> tuple[list[TokenPair], int]:
    """Token pairs of preference records, and how many were dropped for a sequence over `max_length`."""
    pairs = []
    for record in records:
        chosen = render_for_reward(tokenizer, record["prompt"], record["chosen"])
        rejected = render_for_reward(tokenizer, record["prompt"], record["rejected"])
        if max(len(chosen), len(rejected)) <= max_length:
            pairs.append(TokenPair(chosen, rejected, record.get("kind", "")))
    return pairs, len(records) - len(pairs)
