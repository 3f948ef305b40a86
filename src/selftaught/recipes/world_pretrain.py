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

`task=persona` trains DivPO's seed model instead (papers_B.md §3.7, `selftaught.world.persona`): the
same tokenizer and model, SFT on `Make a persona.` -> `name city job` conversations (Zipf-skewed slot
values, 10% malformed) for a fixed `num_steps` (no stop rule: the goal is to reproduce the skewed data,
not to reach an accuracy); validation and the final summary sample the instruction at T=1 and report
validity and per-slot diversity (`persona_stats`; the summary over `persona_samples` samples).
`task=keywords` trains the seed model of DivPO's graded variant the same way (`selftaught.world.keywords`:
`Keywords for a story about the <topic>.` -> five words, Zipf-skewed, 10% malformed); validation and the
summary (`keywords_samples` samples, the four topics in turn) report validity, quality and per-topic word
diversity (`keywords_stats`).
`task=lpo` trains adaptive decoding's frozen base model (papers_B.md §4.7, TINYWORLD_JUDGES_LPO.md §2.1):
SFT on a 50/50 mix of clean chain-of-thought arithmetic (MATH) and `Tell a story about the <place>.` ->
six Zipf words drawn with replacement (STORY, `selftaught.world.stories`), for a fixed `num_steps`;
validation samples `eval.per_level` MATH and STORY prompts at T=0 and T=1 (`val_math_reward_t0`, ...),
and the summary is the fixed-temperature sweep (MATH accuracy, STORY quality at tau 0, .2, ..., 1 on
`test_per_level` prompts of each type, 2 samples each; `selftaught.evals.sets.temperature_sweep`).
`task=lpo-cstory` trains the token-level head's base the same way on a third each of MATH, STORY and
CSTORY (`Tell a story about the <place>. Start each part with <digit>.`, `world.stories`).

CPU:  selftaught world pretrain                      (about 2-5 minutes)
      selftaught world pretrain seed=1 bug=0.0       (a clean teacher)
      selftaught world pretrain --preset tiny-persona  (the persona seed model, about 1-2 minutes)
      selftaught world pretrain --preset tiny-keywords (the keywords seed model, about 1-2 minutes)
      OMP_NUM_THREADS=1 selftaught world pretrain --preset tiny-lpo  (adaptive decoding's base, 3-5 minutes)
      OMP_NUM_THREADS=1 selftaught world pretrain --preset tiny-lpo-cstory  (with constrained stories)
"""

from __future__ import annotations

import functools
import json
import random
import shutil
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from selftaught.config import to_dict
from selftaught.configs.recipes import PretrainTask as PretrainTask
from selftaught.configs.recipes import WorldPretrainConfig as WorldPretrainConfig
from selftaught.configs.recipes import facts_student_config as facts_student_config
from selftaught.configs.recipes import keywords_student_config as keywords_student_config
from selftaught.configs.recipes import lpo_cstory_student_config as lpo_cstory_student_config
from selftaught.configs.recipes import lpo_student_config as lpo_student_config
from selftaught.configs.recipes import persona_student_config as persona_student_config
from selftaught.configs.recipes import system2_student_config as system2_student_config
from selftaught.data.chat import render_conversation
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.evals.rag import format_cells, label_rates
from selftaught.evals.sets import SWEEP_TEMPERATURES, format_sweep, temperature_sweep
from selftaught.evals.system2 import world_summary as system2_world_summary
from selftaught.models.io import cache_dir
from selftaught.models.policy import enable_activation_checkpointing
from selftaught.models.tiny import build_tiny_llama
from selftaught.runlog import RunLog
from selftaught.train.batching import Batch, Example, collate
from selftaught.train.evaluation import evaluate_policy
from selftaught.train.optim import build_optimizer, build_scheduler
from selftaught.train.precision import cast_for_training
from selftaught.train.supervised import train_supervised
from selftaught.types import Prompt
from selftaught.world.facts import label, user_turn
from selftaught.world.facts import questions as facts_questions
from selftaught.world.keywords import keywords_prompts, keywords_stats, largest_pool
from selftaught.world.persona import INSTRUCTION, TASK, persona_stats
from selftaught.world.sources import (
    facts_sft_records,
    keywords_sft_records,
    lpo_cstory_sft_records,
    lpo_sft_records,
    persona_sft_records,
    sft_records,
)
from selftaught.world.system2 import sft_records as system2_sft_records
from selftaught.world.tokenizer import build_tokenizer


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
    model = cast_for_training(model, cfg.precision)
    if cfg.activation_checkpointing:
        enable_activation_checkpointing(model, cfg.activation_checkpointing)
    examples = [render_conversation(tokenizer, ex["messages"]) for ex in training_records(cfg)]
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.optim_steps)
    step_batches = partial(epoch_batch, examples, cfg, tokenizer.pad_token_id)
    validate = partial(VALIDATE[cfg.task], model, tokenizer, cfg)
    arith = cfg.task == PretrainTask.ARITH
    stop = (lambda val: val["val_accuracy"] >= cfg.stop_accuracy) if arith else None
    summarize = SUMMARIZE[cfg.task]
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
            stop=stop,
            desc="pretrain",
        )
        summary = summarize(model, tokenizer, cfg, int(result["steps"]), time.perf_counter() - start)
        (Path(cfg.out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
        run_log.info(summary_line(summary))
    return summary


def training_records(cfg: WorldPretrainConfig) -> list[dict[str, Any]]:
    """The SFT conversations of the pool: the buggy teacher's solutions, sampled personas or keywords,
    or the MATH + STORY mix."""
    if cfg.task == PretrainTask.LPO:
        return lpo_sft_records(num=cfg.num_examples, seed=cfg.seed)
    if cfg.task == PretrainTask.LPO_CSTORY:
        return lpo_cstory_sft_records(num=cfg.num_examples, seed=cfg.seed)
    if cfg.task == PretrainTask.FACTS:
        return facts_sft_records(num=cfg.num_examples, seed=cfg.seed)
    if cfg.task == PretrainTask.PERSONA:
        return persona_sft_records(num=cfg.num_examples, seed=cfg.seed)
    if cfg.task == PretrainTask.KEYWORDS:
        return keywords_sft_records(num=cfg.num_examples, seed=cfg.seed)
    if cfg.task == PretrainTask.SYSTEM2:
        return system2_sft_records(num=cfg.num_examples, seed=cfg.seed, s2_noise=cfg.bug)
    return sft_records(
        num=cfg.num_examples,
        levels=cfg.levels,
        seed=cfg.seed,
        strategy_weights=cfg.strategy_weights,
        bug=cfg.bug,
    )


def summary_line(summary: dict[str, Any]) -> str:
    if summary.get("task") == PretrainTask.PERSONA:
        slots = ", ".join(
            f"{slot} top-1 {summary[f'{slot}_top1_share']:.2f} / {summary[f'{slot}_distinct']} distinct"
            for slot in ("name", "city", "job")
        )
        return f"persona validity {summary['validity']:.3f} at T=1 ({slots}) after {summary['steps']} steps"
    if summary.get("task") == PretrainTask.KEYWORDS:
        return (
            f"keywords validity {summary['validity']:.3f}, quality {summary['quality']:.3f} at T=1 (head word "
            f"share {summary['head_word_share']:.2f}, 1-gram entropy {summary['entropy_1gram_bits']:.2f} bits, "
            f"{summary['unique_1grams']:.1f} unique words per pool of {summary['pool_size']}) after "
            f"{summary['steps']} steps"
        )
    if summary.get("task") == PretrainTask.FACTS:
        return "answers to the test questions by mode:\n" + format_cells(summary["rates"])
    if summary.get("task") == PretrainTask.SYSTEM2:
        return "greedy test accuracy (tokens) by task and mode: " + ", ".join(
            f"{key[: -len('_accuracy')]} {value:.3f} ({summary[key.replace('accuracy', 'tokens')]:.1f})"
            for key, value in summary.items()
            if key.endswith("_accuracy")
        )
    if summary.get("task") in (PretrainTask.LPO, PretrainTask.LPO_CSTORY):
        return f"fixed-temperature sweep after {summary['steps']} steps:\n{format_sweep(summary['sweep'])}"
    return (
        f"test accuracy {summary['test_accuracy']:.3f} +- {summary['test_stderr']:.3f} after "
        f"{summary['steps']} steps"
    )


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


PERSONA_VALID_SAMPLES = 256
PERSONA_MAX_NEW_TOKENS = 48
"""Longer than any persona the data holds (at most 4 words of 3-8 tokens each)."""


def sample_personas_from(
    model: Any, tokenizer: Any, num: int, *, temperature: float = 1.0, seed: int = 0
) -> list[str]:
    """`num` samples of the persona instruction from `model` at `temperature`."""
    engine = HFEngine(model, tokenizer, batch_size=512)
    prompt = Prompt(id=TASK, messages=[{"role": "user", "content": INSTRUCTION}], task=TASK)
    sampling = SamplingParams(
        temperature=temperature, n=num, max_new_tokens=PERSONA_MAX_NEW_TOKENS, seed=seed
    )
    return [c.text for c in engine.generate([prompt], sampling)[0]]


def valid_persona_stats(model: Any, tokenizer: Any, cfg: WorldPretrainConfig) -> dict[str, float]:
    """Validity and slot diversity of `PERSONA_VALID_SAMPLES` samples at T=1 (`val_*` metrics)."""
    texts = sample_personas_from(model, tokenizer, PERSONA_VALID_SAMPLES, seed=cfg.seed)
    model.train()
    return {f"val_{key}": value for key, value in persona_stats(texts).items() if key != "num_samples"}


def persona_summary(model: Any, tokenizer: Any, cfg: WorldPretrainConfig, steps: int, seconds: float) -> dict:
    """`persona_stats` of `persona_samples` samples at T=1, and the same unique ratios in pools of 16
    (DivPO's samples per prompt) as `<slot>_unique_ratio_pool16`."""
    texts = sample_personas_from(model, tokenizer, cfg.persona_samples, seed=cfg.seed + 1)
    pooled = persona_stats(texts, pool_size=min(16, len(texts)))
    return {
        "task": str(PretrainTask.PERSONA),
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "temperature": 1.0,
        **persona_stats(texts),
        **{f"{key}_pool16": value for key, value in pooled.items() if key.endswith("unique_ratio")},
    }


KEYWORDS_MAX_NEW_TOKENS = 48
"""Longer than any keywords output the data holds (six words of at most 7 tokens with their space)."""


def sample_keywords_from(
    model: Any, tokenizer: Any, num: int, *, temperature: float = 1.0, seed: int = 0
) -> tuple[list[str], list[str]]:
    """`num` samples of the keywords prompts (the topics in turn) from `model`, and their topics."""
    engine = HFEngine(model, tokenizer, batch_size=512)
    records = keywords_prompts(num)
    prompts = [Prompt(id=r["id"], messages=r["prompt"], task=r["task"]) for r in records]
    sampling = SamplingParams(temperature=temperature, max_new_tokens=KEYWORDS_MAX_NEW_TOKENS, seed=seed)
    return [cs[0].text for cs in engine.generate(prompts, sampling)], [r["topic"] for r in records]


def valid_keywords_stats(model: Any, tokenizer: Any, cfg: WorldPretrainConfig) -> dict[str, float]:
    """Validity, quality and word diversity of `PERSONA_VALID_SAMPLES` samples at T=1 (`val_*` metrics)."""
    texts, topics = sample_keywords_from(model, tokenizer, PERSONA_VALID_SAMPLES, seed=cfg.seed)
    model.train()
    stats = keywords_stats(texts, topics, pool_size=largest_pool(topics))
    return {f"val_{key}": value for key, value in stats.items() if key != "num_samples"}


def keywords_summary(
    model: Any, tokenizer: Any, cfg: WorldPretrainConfig, steps: int, seconds: float
) -> dict:
    """`keywords_stats` of `keywords_samples` samples at T=1, unique words in pools of up to 16."""
    texts, topics = sample_keywords_from(model, tokenizer, cfg.keywords_samples, seed=cfg.seed + 1)
    pool_size = largest_pool(topics)
    return {
        "task": str(PretrainTask.KEYWORDS),
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "temperature": 1.0,
        "pool_size": pool_size,
        **keywords_stats(texts, topics, pool_size=pool_size),
    }


def valid_lpo_rewards(model: Any, tokenizer: Any, cfg: WorldPretrainConfig) -> dict[str, float]:
    """MATH accuracy and STORY quality of `eval.per_level` prompts of each type (one sample) at T=0 and
    T=1: `val_math_reward_t0`, `val_story_reward_t0`, `val_math_reward_t1`, `val_story_reward_t1`;
    for `lpo-cstory`, CSTORY's quality and kept constraint too (`val_cstory_reward_t0`, ...)."""
    engine = HFEngine(model, tokenizer, batch_size=cfg.eval.batch_size)
    types = 3 if cfg.task == PretrainTask.LPO_CSTORY else 2
    rows = temperature_sweep(
        engine, (0.0, 1.0), types * cfg.eval.per_level, seed=cfg.seed, n=1, constrained=types == 3
    )
    model.train()
    names = {
        "math_accuracy": "math_reward",
        "story_quality": "story_reward",
        "cstory_quality": "cstory_reward",
        "cstory_kept": "cstory_kept",
    }
    return {
        f"val_{name}_t{row['temperature']:g}": row[key]
        for row in rows
        for key, name in names.items()
        if key in row
    }


def lpo_summary(model: Any, tokenizer: Any, cfg: WorldPretrainConfig, steps: int, seconds: float) -> dict:
    """The fixed-temperature sweep (tau 0, .2, ..., 1) on `test_per_level` MATH test problems and as many
    STORY prompts, 2 samples each: `sweep` (rows) and flat `math_accuracy_t<tau>` / `story_quality_t<tau>`."""
    engine = HFEngine(model, tokenizer, batch_size=512)
    types = 3 if cfg.task == PretrainTask.LPO_CSTORY else 2
    rows = temperature_sweep(
        engine, SWEEP_TEMPERATURES, types * cfg.test_per_level, seed=cfg.seed, constrained=types == 3
    )
    flat = {
        f"{key}_t{row['temperature']:g}": value
        for row in rows
        for key, value in row.items()
        if key != "temperature"
    }
    return {
        "task": str(cfg.task),
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "num_prompts": types * cfg.test_per_level,
        "samples_per_prompt": 2,
        "sweep": rows,
        **flat,
    }


def facts_rates(model: Any, tokenizer: Any, cfg: WorldPretrainConfig, num: int | None) -> dict:
    """Greedy answers to the first `num` test questions of the knowledge base in each prompt mode
    (`closed`, `rag`, `refuse`), labelled by the programmatic judge: `label_rates` per mode."""
    engine = HFEngine(model, tokenizer, batch_size=512)
    questions = facts_questions("test", cfg.seed)[:num]
    records = [{"known": q.fact.known, "present": q.present} for q in questions]
    sampling = SamplingParams(temperature=0.0, max_new_tokens=FACTS_MAX_NEW_TOKENS)
    rates = {}
    for mode in ("closed", "rag", "refuse"):
        prompts = [Prompt(q.id, [{"role": "user", "content": user_turn(q, mode)}]) for q in questions]
        texts = [cs[0].text for cs in engine.generate(prompts, sampling)]
        rates[mode] = label_rates(
            [label(t, q.answer) for t, q in zip(texts, questions, strict=True)], records
        )
    return rates


FACTS_MAX_NEW_TOKENS = 32
"""An answer is a statement (`Rilune likes the color jade.`: at most 28 tokens of the world tokenizer)
or `unknown`."""


def valid_facts(model: Any, tokenizer: Any, cfg: WorldPretrainConfig) -> dict[str, float]:
    """`val_<mode>_correct` etc. over the first `eval.per_level` test questions, and the closed-book
    accuracy on known facts (`val_closed_known_correct`), the memorisation the recipe relies on."""
    rates = facts_rates(model, tokenizer, cfg, cfg.eval.per_level)
    model.train()
    metrics = {f"val_{mode}_{k}": v for mode, r in rates.items() for k, v in r["all"].items() if k != "n"}
    known = [r for cell, r in rates["closed"].items() if cell.endswith("/known")]
    metrics["val_closed_known_correct"] = sum(r["correct"] * r["n"] for r in known) / max(
        1, sum(r["n"] for r in known)
    )
    return metrics


def facts_summary(model: Any, tokenizer: Any, cfg: WorldPretrainConfig, steps: int, seconds: float) -> dict:
    """`facts_rates` on every test question: per mode, the label rates overall and per cell."""
    return {
        "task": str(PretrainTask.FACTS),
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "rates": facts_rates(model, tokenizer, cfg, None),
    }


def valid_system2(model: Any, tokenizer: Any, cfg: WorldPretrainConfig) -> dict[str, float]:
    """Greedy accuracy and tokens of `<s1>` and `<s2>` on `eval.per_level` valid questions per task."""
    engine = HFEngine(model, tokenizer, batch_size=cfg.eval.batch_size)
    metrics = system2_world_summary(engine, "valid", cfg.eval.per_level, cfg.seed)
    model.train()
    return {
        f"val_{key}": value for key, value in metrics.items() if key.endswith(("accuracy", "inconsistent"))
    }


def system2_summary(model: Any, tokenizer: Any, cfg: WorldPretrainConfig, steps: int, seconds: float) -> dict:
    """Greedy test accuracy, parse rate and tokens per task and mode (`test_per_level` questions each)."""
    engine = HFEngine(model, tokenizer, batch_size=512)
    return {
        "task": str(PretrainTask.SYSTEM2),
        "steps": steps,
        "train_seconds": round(seconds, 1),
        **system2_world_summary(engine, "test", cfg.test_per_level, cfg.seed),
    }


VALIDATE = {
    PretrainTask.ARITH: valid_accuracy,
    PretrainTask.PERSONA: valid_persona_stats,
    PretrainTask.KEYWORDS: valid_keywords_stats,
    PretrainTask.LPO: valid_lpo_rewards,
    PretrainTask.LPO_CSTORY: valid_lpo_rewards,
    PretrainTask.FACTS: valid_facts,
    PretrainTask.SYSTEM2: valid_system2,
}
SUMMARIZE = {
    PretrainTask.ARITH: test_summary,
    PretrainTask.PERSONA: persona_summary,
    PretrainTask.KEYWORDS: keywords_summary,
    PretrainTask.LPO: lpo_summary,
    PretrainTask.LPO_CSTORY: lpo_summary,
    PretrainTask.FACTS: facts_summary,
    PretrainTask.SYSTEM2: system2_summary,
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
    fingerprint = student_fingerprint(cfg)
    kind = "student" if cfg.task == PretrainTask.ARITH else f"{cfg.task}-student"
    out_dir = cache_dir() / "world" / f"{kind}-{fingerprint[:12]}"
    run_once(out_dir, fingerprint, partial(_train_student, cfg, out_dir, log))
    return out_dir / "model"


FINGERPRINT_DEFAULTS: dict[str, Any] = {"task": "arith", "persona_samples": 1000, "keywords_samples": 1000}
"""Fields added after the first students were cached: they enter the fingerprint only when set to
something else, so the default student keeps its cache directory (`student-8d58bb1e05f0`), and the
persona student its own (`persona-student-501dcbbb7bd7`)."""
NOT_FINGERPRINTED = ("out_dir", "report_to")
"""Settings that do not change the trained student."""


def student_fingerprint(cfg: WorldPretrainConfig) -> str:
    """The cache key of the student `cfg` trains: its config but `NOT_FINGERPRINTED`, and the fields of
    `FINGERPRINT_DEFAULTS` only where they differ from those defaults. `eval.seed` equal to `seed`
    is keyed as None (the run's seed, the default when the first students were cached): both
    evaluate the same problems, so the stop rule and the student are the same."""
    settings = {k: v for k, v in to_dict(cfg).items() if k not in NOT_FINGERPRINTED}
    for key, default in FINGERPRINT_DEFAULTS.items():
        if settings[key] == default:
            del settings[key]
    if settings["eval"]["seed"] == cfg.seed:  # the same evaluation as `None` (the run's seed), the
        settings["eval"]["seed"] = None  # default the first students were keyed with
    return compute_fingerprint(settings)


def pretrained_persona_student(*, log: bool = True) -> Path:
    """Path of the cached persona seed model (`persona_student_config`), trained on first use."""
    return pretrained_student(persona_student_config(), log=log)


def pretrained_keywords_student(*, log: bool = True) -> Path:
    """Path of the cached keywords seed model (`keywords_student_config`), trained on first use."""
    return pretrained_student(keywords_student_config(), log=log)


def pretrained_lpo_student(*, log: bool = True) -> Path:
    """Path of the cached base model of adaptive decoding (`lpo_student_config`), trained on first use."""
    return pretrained_student(lpo_student_config(), log=log)


def pretrained_facts_student(*, log: bool = True) -> Path:
    """Path of the cached base model of the RAG self-demos (`facts_student_config`), trained on first use."""
    return pretrained_student(facts_student_config(), log=log)


def pretrained_system2_student(*, log: bool = True) -> Path:
    """Path of the cached base model of System 2 distillation (`system2_student_config`), trained on first use."""
    return pretrained_student(system2_student_config(), log=log)


def pretrained_lpo_cstory_student(*, log: bool = True) -> Path:
    """Path of the cached base model of the constrained-story token-level head, trained on first use."""
    return pretrained_student(lpo_cstory_student_config(), log=log)


def _train_student(cfg: WorldPretrainConfig, out_dir: Path, log: bool) -> dict[str, Any]:
    summary = out_dir / "summary.json"
    if summary.is_file():  # finished before run_once kept its record (summary.json is written last)
        return json.loads(summary.read_text())
    if log:
        print(f"training the tiny-world {cfg.task} student (first use; cached in {out_dir})")
    shutil.rmtree(out_dir / "model", ignore_errors=True)  # an interrupted run starts over
    for name in ("metrics.jsonl", "log.txt"):
        (out_dir / name).unlink(missing_ok=True)
    return run(replace(cfg, out_dir=str(out_dir)))


def _level_metrics(result: Any, prefix: str) -> dict[str, float]:
    return {f"{prefix}_{name.replace(' ', '')}": g.accuracy for name, g in result.groups.items()}
