"""cocomix: pretraining with continuous concepts (Tack et al. 2025, papers_B §5; the tiny run of §5.10).

Algorithm:
  1. The corpus: a sticky latent-topic process (`world/concepts.py`) sampled on the fly; step s's
     batch is a pure function of (run seed, s), the held-out set of the world seed only.
  2. The teacher (when labels or KD need one): a tiny Llama trained by NTP on the corpus, then a
     TopK SAE (`models/sae.py`, normalised MSE) on its residual stream after `teacher.layer` blocks;
     both cached in `teacher.dir` by config (`run_once`), so every arm and seed shares them. Its
     reconstruction (nmse, dead latents) and the SAE-topic mutual information go to teacher.json.
  3. The student: a Llama of `student` shape from scratch, with a `ConceptMixer` after
     `insert_layer` blocks (`mixer`: interleave = CoCoMix, add, pause), or plain (`mixer=none`: the
     NTP baseline, `match_active_params` widens it to CoCoMix's active parameters; with
     `kd_weight` the KD baseline).
  4. Each step (`train.supervised.train_supervised`, the shared loop; resume is exact): concept
     labels of the batch from the frozen teacher (`labels=attribution`: top-K_attr of
     (dL/dh @ W_dec) * activation, `torch.autograd.grad` w.r.t. the cached activation only;
     `labels=activation`: the most active latents), then L_NTP + lambda L_concept (+ lambda_KD KL)
     (`losses/concept.py`).
  5. Validation: perplexity on the held-out sequences; concept-prediction top-k accuracy against the
     held-out labels; compressor column norms; label sign shares. At the end, steering: multiply
     the logit of the most topic-pure SAE concept by alpha and measure how much of the generated
     text follows that topic's bigrams.

Deviations: labels cover the NTP positions (not the last one, whose attribution is 0); concept slots
take their token's RoPE position; generation is cache-free. See docs/results.md for the numbers.

CPU:  OMP_NUM_THREADS=1 selftaught cocomix --preset tiny-smoke     (seconds)
      OMP_NUM_THREADS=1 selftaught cocomix                         (tiny: teacher + SAE + student, minutes)
      OMP_NUM_THREADS=1 selftaught repro cocomix                   (all arms x 3 seeds)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selftaught.config import to_dict
from selftaught.configs.cocomix import CocomixConfig as CocomixConfig
from selftaught.configs.cocomix import LabelKind, MixerMode, ShapeConfig
from selftaught.configs.train import EvalConfig, RunConfig
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.data.text_blocks import TextBlocks, load_text_blocks
from selftaught.losses.concept import cocomix_loss, concept_topk_accuracy
from selftaught.models.cocomix import (
    CoCoMixLM,
    DecoderShape,
    active_parameters,
    build_decoder,
    causal_lm,
    forward_logits,
    generate,
)
from selftaught.models.concept_labels import (
    ConceptLabels,
    activation_labels,
    attribution_labels,
    label_sign_stats,
    teacher_residual,
)
from selftaught.models.sae import TopKSAE, load_sae, save_sae, train_sae
from selftaught.runlog import RunLog
from selftaught.train.batching import Batch
from selftaught.train.optim import build_optimizer, build_scheduler
from selftaught.train.supervised import sft_loss_fn, train_supervised
from selftaught.world.concepts import (
    ConceptWorld,
    build_concept_tokenizer,
    stream_batch,
    topic_mutual_information,
)

VAL_STREAM = 10**9
"""The held-out set is step `VAL_STREAM` of the world seed's stream (no training stream reaches it)."""


def run(cfg: CocomixConfig) -> dict[str, Any]:
    torch.manual_seed(cfg.seed)
    pretrained, tokenizer = load_pretrained_teacher(cfg)
    corpus = build_corpus(cfg, tokenizer, pretrained)
    val_ids, val_topics = corpus.held_out()
    teacher, sae, teacher_info = (
        prepare_teacher(cfg, corpus, pretrained) if cfg.needs_teacher else (None, None, {})
    )
    model = build_student(cfg, sae.num_latents if sae is not None else cfg.sae.num_latents, corpus.vocab_size)
    labeler = partial(concept_labels, cfg, teacher, sae) if teacher is not None and sae is not None else None
    val_labels = labeler(val_ids) if labeler is not None and cfg.mixer != MixerMode.NONE else None
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.num_steps)
    step_batches = partial(corpus_batches, corpus, cfg.seed, cfg.corpus.batch_size)
    loss_fn = partial(student_loss, cfg, labeler)
    validate = partial(validation, cfg, model, val_ids, val_labels)
    with RunLog(cfg.out_dir, cfg) as run_log:
        run_log.info(
            f"cocomix: mixer {cfg.mixer}, lambda {cfg.concept_weight}, labels {cfg.labels}, kd {cfg.kd_weight}; "
            f"{sum(p.numel() for p in model.parameters()):,} params ({active_parameters(model):,} active)"
        )
        result = train_supervised(
            cfg, run_log, model, tokenizer, optimizer, scheduler, step_batches,
            max_grad_norm=cfg.optim.max_grad_norm, loss_fn=loss_fn, validate=validate, desc="cocomix",
        )  # fmt: skip
        summary = {
            **result,
            "params": sum(p.numel() for p in model.parameters()),
            "active_params": active_parameters(model),
            "train_flops_per_token": 3 * forward_flops_per_token(cfg, model),
            "teacher": teacher_info,
        }
        if (
            isinstance(model, CoCoMixLM)
            and "steer_concept" in teacher_info  # set with the concept world's topics only
            and model.mixer.mode != "pause"
            and corpus.world is not None
            and val_topics is not None
        ):
            summary["steering"] = steering_eval(cfg, corpus.world, model, val_ids, val_topics, teacher_info)
        (Path(cfg.out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
        run_log.info(f"final val_ppl {summary.get('val_ppl', float('nan')):.3f}")
    return summary


@dataclass
class Corpus:
    """Step batches and the held-out set: of the concept world, or of a text file's token blocks."""

    vocab_size: int
    seq_len: int
    val_sequences: int
    world: ConceptWorld | None = None
    blocks: TextBlocks | None = None

    def batch(self, seed: int, step: int, num_sequences: int) -> torch.Tensor:
        """`[num_sequences, seq_len]`: a pure function of (seed, step)."""
        if self.world is not None:
            return torch.from_numpy(stream_batch(self.world, seed, step, num_sequences, self.seq_len)[0])
        assert self.blocks is not None
        return torch.from_numpy(self.blocks.batch(seed, step, num_sequences))

    def held_out(self) -> tuple[torch.Tensor, np.ndarray | None]:
        """`(ids [N, T], topics [N, T] or None)`, the same for every run seed and arm."""
        if self.world is None:
            assert self.blocks is not None
            return torch.from_numpy(self.blocks.held_out), None
        ids, topics = stream_batch(self.world, self.world.seed, VAL_STREAM, self.val_sequences, self.seq_len)
        return torch.from_numpy(ids), topics


def load_pretrained_teacher(cfg: CocomixConfig) -> tuple[Any, Any]:
    """`(teacher, its tokenizer)` for `teacher.model`, else `(None, the concept world's tokenizer)`."""
    if not cfg.teacher.model:
        return None, build_concept_tokenizer(cfg.corpus.vocab_size)
    from selftaught.models.io import load_model

    teacher, tokenizer = load_model(cfg.teacher.model)
    return teacher.float().eval().requires_grad_(False), tokenizer


def build_corpus(cfg: CocomixConfig, tokenizer: Any, pretrained: Any) -> Corpus:
    c = cfg.corpus
    if pretrained is not None:
        blocks = load_text_blocks(c.text_file, tokenizer, c.seq_len, c.val_sequences, c.text_tokens)
        vocab = pretrained.config.get_text_config().vocab_size
        return Corpus(vocab, c.seq_len, c.val_sequences, blocks=blocks)
    world = ConceptWorld(
        vocab_size=c.vocab_size, num_topics=c.num_topics, num_function=c.num_function, topic_vocab=c.topic_vocab,
        successors=c.successors, switch_prob=c.switch_prob, function_prob=c.function_prob, seed=c.world_seed,
    )  # fmt: skip
    return Corpus(c.vocab_size, c.seq_len, c.val_sequences, world=world)


def corpus_batches(corpus: Corpus, seed: int, batch_size: int, step: int) -> list[Batch]:
    """Step `step`'s one micro-batch: every token but the first of each sequence is trained."""
    ids = corpus.batch(seed, step, batch_size)
    loss_mask = torch.ones_like(ids, dtype=torch.bool)
    loss_mask[:, 0] = False
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    return [Batch(ids, torch.ones_like(ids), loss_mask, positions)]


# --- teacher and SAE -------------------------------------------------------------------------------


def teacher_dir(cfg: CocomixConfig) -> Path:
    return Path(cfg.teacher.dir or f"{cfg.out_dir}/teacher")


def prepare_teacher(
    cfg: CocomixConfig, corpus: Corpus, pretrained: Any
) -> tuple[Any, TopKSAE, dict[str, Any]]:
    """The frozen teacher (`pretrained`, or the tiny one trained once per config in `teacher_dir`),
    its SAE (trained once per config) and their metrics."""
    from transformers import AutoModelForCausalLM

    root = teacher_dir(cfg)
    lm_key = {
        "corpus": to_dict(cfg.corpus),
        "teacher": {k: v for k, v in to_dict(cfg.teacher).items() if k != "dir"},
    }
    lm_dir = root / f"lm-{compute_fingerprint(lm_key)[:10]}"
    if pretrained is None:
        lm_info = run_once(lm_dir, compute_fingerprint(lm_key), partial(train_teacher, cfg, corpus, lm_dir))
        teacher = AutoModelForCausalLM.from_pretrained(lm_dir / "model").eval().requires_grad_(False)
    else:
        teacher, lm_info = pretrained, {"teacher_params": sum(p.numel() for p in pretrained.parameters())}
    sae_key = {**lm_key, "sae": to_dict(cfg.sae)}
    sae_dir = lm_dir / f"sae-{compute_fingerprint(sae_key)[:10]}"
    sae_info = run_once(
        sae_dir, compute_fingerprint(sae_key), partial(train_teacher_sae, cfg, corpus, teacher, sae_dir)
    )
    sae, _ = load_sae(sae_dir)
    return teacher, sae.eval().requires_grad_(False), {**lm_info, **sae_info}


def train_teacher(cfg: CocomixConfig, corpus: Corpus, out_dir: Path) -> dict[str, Any]:
    """NTP on the corpus (the same loop as the students), then its held-out perplexity."""
    t = cfg.teacher
    run_cfg = RunConfig(out_dir=str(out_dir), num_steps=t.num_steps, seed=t.seed, log_every=50,
                        eval=EvalConfig(every=-1), checkpoint_every=0)  # fmt: skip
    model = build_decoder(decoder_shape(t.shape), cfg.corpus.vocab_size, seed=t.seed)
    optim = replace(cfg.optim, lr=t.lr)
    optimizer = build_optimizer(model, optim)
    scheduler = build_scheduler(optimizer, optim, t.num_steps)
    batches = partial(corpus_batches, corpus, 10_000 + t.seed, cfg.corpus.batch_size)
    with RunLog(str(out_dir), run_cfg) as run_log:
        train_supervised(run_cfg, run_log, model, build_concept_tokenizer(cfg.corpus.vocab_size), optimizer,
                         scheduler, batches, max_grad_norm=optim.max_grad_norm, loss_fn=sft_loss_fn, desc="teacher")  # fmt: skip
    val_ids, _ = corpus.held_out()
    return {
        "teacher_val_ppl": perplexity(model.eval(), val_ids),
        "teacher_params": sum(p.numel() for p in model.parameters()),
    }


def train_teacher_sae(cfg: CocomixConfig, corpus: Corpus, teacher: Any, out_dir: Path) -> dict[str, Any]:
    """The SAE on the teacher's residual stream; reconstruction, dead latents and topic alignment."""
    s = cfg.sae
    acts = residuals(cfg, teacher, corpus.batch(20_000 + cfg.teacher.seed, 0, s.num_sequences))
    val_ids, val_topics = corpus.held_out()
    val_acts = residuals(cfg, teacher, val_ids)
    torch.manual_seed(cfg.teacher.seed)
    sae = TopKSAE(acts.shape[-1], s.num_latents, s.k, s.normalize)
    fit = train_sae(
        sae,
        acts,
        num_steps=s.num_steps,
        batch_size=s.batch_size,
        lr=s.lr,
        seed=cfg.teacher.seed,
        held_out=val_acts,
    )
    save_sae(
        sae, out_dir, hook_layer=cfg.teacher.layer, hook_name=f"model.layers.{cfg.teacher.layer - 1}.output"
    )
    fit_info = {"sae_nmse": fit.nmse, "sae_dead_fraction": fit.dead_fraction, "sae_tokens": len(acts)}
    if val_topics is None:  # real text: no topics to align with
        return fit_info
    with torch.no_grad():
        c, _ = sae.encode(val_acts)
    mi = topic_mutual_information(
        c.topk(1, -1).indices.numpy(), val_topics.reshape(-1), s.num_latents, cfg.corpus.num_topics
    )
    aligned = int(np.argmax(np.where(mi["latent_count"] >= 0.002 * len(c), mi["latent_purity"], -1)))
    return {
        **fit_info,
        "sae_topic_mi_bits": mi["mi_bits"],
        "sae_topic_mi_share": mi["mi_share"],
        "steer_concept": aligned,
        "steer_topic": int(mi["latent_topic"][aligned]),
        "steer_concept_purity": float(mi["latent_purity"][aligned]),
    }


@torch.no_grad()
def residuals(cfg: CocomixConfig, teacher: Any, ids: torch.Tensor) -> torch.Tensor:
    """`[N * T, d]`: the teacher's residual stream after `teacher.layer` blocks, in chunks."""
    chunks = [
        teacher_residual(teacher, cfg.teacher.layer, part, None, grad=False)[1] for part in ids.split(64)
    ]
    return torch.cat(chunks).flatten(0, 1)


def concept_labels(cfg: CocomixConfig, teacher: Any, sae: TopKSAE, input_ids: torch.Tensor) -> ConceptLabels:
    layer = cfg.teacher.layer
    if cfg.labels == LabelKind.ACTIVATION or not cfg.concept_weight:  # KD needs the logits only: no backward
        return activation_labels(teacher, sae, layer, input_ids, k_attr=cfg.k_attr)
    return attribution_labels(
        teacher, sae, layer, input_ids, k_attr=cfg.k_attr,
        sign=str(cfg.attribution_sign), activation_source=str(cfg.activation_source),
    )  # fmt: skip


# --- the student -----------------------------------------------------------------------------------


def decoder_shape(shape: ShapeConfig) -> DecoderShape:
    return DecoderShape(
        shape.hidden_size, shape.num_layers, shape.num_heads, shape.num_kv_heads, shape.ffn_size
    )


def build_student(cfg: CocomixConfig, num_concepts: int, vocab_size: int | None = None) -> torch.nn.Module:
    """CoCoMix (or pause / add) over a fresh decoder, or the plain decoder (NTP, KD baselines);
    `vocab_size`: the corpus's (default `corpus.vocab_size`, the concept world's)."""
    vocab_size = vocab_size or cfg.corpus.vocab_size
    shape = cfg.student
    if cfg.match_active_params:
        shape = matched_shape(cfg, num_concepts, vocab_size)
    base = build_decoder(decoder_shape(shape), vocab_size, seed=cfg.seed)
    if cfg.mixer == MixerMode.NONE:
        return base
    with torch.random.fork_rng(devices=[]):  # the mixer's init depends on the seed only, not on what
        torch.manual_seed(cfg.seed)  # ran before (a teacher trained in this process or loaded)
        return CoCoMixLM(base, cfg.insert_layer, num_concepts, cfg.k_concept, str(cfg.mixer))


def matched_shape(cfg: CocomixConfig, num_concepts: int, vocab_size: int) -> ShapeConfig:
    """The plain student (hidden a multiple of 2 * heads, the ffn / hidden ratio of `student`) whose
    parameter count is closest to CoCoMix's active parameters (counted on the meta device)."""
    s = cfg.student

    def count(shape: ShapeConfig, mixer: bool) -> int:
        with torch.device("meta"):
            base = build_decoder(decoder_shape(shape), vocab_size)
            return active_parameters(
                CoCoMixLM(base, 0, num_concepts, cfg.k_concept, "interleave") if mixer else base
            )

    target = count(s, mixer=True)
    ratio, step = s.ffn_size / s.hidden_size, 2 * s.num_heads
    candidates = [
        replace(s, hidden_size=d, ffn_size=int(round(d * ratio)))
        for d in range(s.hidden_size, 4 * s.hidden_size, step)
    ]
    return min(candidates, key=lambda c: abs(count(c, mixer=False) - target))


def student_loss(
    cfg: CocomixConfig, labeler: Any, model: Any, batch: Batch, num_tokens: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """L_NTP + lambda L_concept + lambda_KD KL for one micro-batch (labels from the frozen teacher)."""
    labels = labeler(batch.input_ids) if labeler is not None else None
    logits, concept_logits = forward_logits(model, batch.input_ids, batch.attention_mask)
    loss, metrics = cocomix_loss(
        logits, batch.input_ids, batch.loss_mask, num_tokens,
        concept_logits=concept_logits, concept_labels=labels.labels if labels else None,
        concept_weight=cfg.concept_weight, teacher_logits=labels.teacher_logits if labels else None,
        kd_weight=cfg.kd_weight,
    )  # fmt: skip
    if labels is not None and cfg.concept_weight:
        metrics.update(label_sign_stats(labels))
    return loss, metrics


# --- validation, diagnostics, steering ---------------------------------------------------------------


@torch.no_grad()
def perplexity(model: Any, ids: torch.Tensor) -> float:
    """exp(mean next-token NLL) over `ids [N, T]` (all but the first token of each sequence)."""
    total, count = 0.0, 0
    for part in ids.split(32):
        logits, _ = forward_logits(model, part)
        logps = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, part[:, 1:, None])
        total, count = total - float(logps.sum()), count + logps.numel()
    return float(np.exp(total / count))


@torch.no_grad()
def validation(
    cfg: CocomixConfig, model: Any, val_ids: torch.Tensor, val_labels: ConceptLabels | None
) -> dict[str, float]:
    """`val_ppl`; for concept models the concept top-k accuracy and compressor column norms."""
    was_training = model.training
    model.eval()
    metrics = {"val_ppl": perplexity(model, val_ids)}
    if isinstance(model, CoCoMixLM):
        z = torch.cat([forward_logits(model, part)[1] for part in val_ids.split(32)])[:, :-1]
        if val_labels is not None:
            labels = val_labels.labels[:, :-1]
            for k in (1, cfg.k_concept):
                metrics[f"val_concept_top{k}_acc"] = concept_topk_accuracy(z, labels, k)
        norms = model.mixer.column_norms()
        metrics["compress_col_norm_mean"] = float(norms.mean())
        metrics["compress_col_small_share"] = float((norms < 1e-2).float().mean())
    model.train(was_training)
    return metrics


@torch.no_grad()
def steering_eval(
    cfg: CocomixConfig,
    world: ConceptWorld,
    model: CoCoMixLM,
    val_ids: torch.Tensor,
    val_topics: np.ndarray,
    info: dict[str, Any],
) -> dict[str, float]:
    """Generate from held-out prompts not on the steered topic, scaling the logit of the most
    topic-pure SAE concept by each alpha; the share of generated content bigrams that the topic's
    table can emit (`topic_bigram_share`), per alpha."""
    s, concept, topic = cfg.steering, info["steer_concept"], info["steer_topic"]
    rows = [i for i in range(len(val_ids)) if val_topics[i, s.prompt_len - 1] != topic][: s.num_prompts]
    prompts = val_ids[rows, : s.prompt_len]
    allowed = world.topic_bigrams(topic)
    model.eval()
    result: dict[str, float] = {"concept": concept, "topic": topic}
    for alpha in s.scales:
        generator = torch.Generator().manual_seed(cfg.seed)
        out = generate(
            model,
            prompts,
            s.new_tokens,
            temperature=s.temperature,
            generator=generator,
            concept_scale={concept: alpha},
        )
        pairs = [
            (int(a), int(b))
            for row in out[:, s.prompt_len - 1 :]
            for a, b in zip(row[:-1], row[1:], strict=True)
            if b >= world.num_function
        ]
        result[f"topic_bigram_share_a{alpha:g}"] = sum(p in allowed for p in pairs) / max(len(pairs), 1)
    return result


def forward_flops_per_token(cfg: CocomixConfig, model: Any) -> float:
    """Forward FLOPs per token: 2 x matmul parameters per slot (the upper layers see 2 slots per token
    when interleaving) + attention scores (4 x context x d per slot and layer) + the LM head."""
    base = model.base if isinstance(model, CoCoMixLM) else model
    lm = causal_lm(base)
    d, length = lm.config.hidden_size, cfg.corpus.seq_len
    layers = lm.model.layers
    per_layer = [sum(p.numel() for p in layer.parameters() if p.ndim == 2) for layer in layers]
    slots = [1.0] * len(layers)
    if isinstance(model, CoCoMixLM) and model.mixer.mode != "add":
        slots = [1.0 if i < model.insert_layer else 2.0 for i in range(len(layers))]
    flops = sum(2 * p * n + 4 * (n * length / 2) * d * n for p, n in zip(per_layer, slots, strict=True))
    flops += 2 * d * cfg.corpus.vocab_size
    if isinstance(model, CoCoMixLM):
        flops += 2 * d * model.mixer.predictor.out_features + 2 * d * model.mixer.k
    return float(flops)
