"""natural-thoughts: distil a teacher's reasoning traces, chosen by what they contain (Li et al. 2025,
papers_A.md §2), with System-1 / System-2 targets and inference-time control of thinking.

Algorithm (every step a resumable stage; a rerun reuses what is finished):
  1. traces       the teacher answers each question once: `<think>THINK</think>ANSWER`, parsed strictly
                  (a reply without `</think>` is counted by status and left out); think / answer tokens
                  counted with the student's tokenizer            -> <pool_dir>/traces
  2. annotate     domain (from `taxonomy`), the set of strategies, verbosity 0-10, number of steps; one
                  template and strict parser each, unparsed replies None and counted -> <pool_dir>/annotate
  3. difficulty   the weak model answers each question; `agree`: the exact check of the two final
                  answers, or a judge over `nt-agree@1`           -> <pool_dir>/difficulty
  4. select       `budget` traces with `selection` (`selection.traces`)
  5. targets      s2 / s1 / random_mix(p) / difficulty_mix, the control instruction appended to each
                  question (`pipelines.thought_targets`)          -> <out_dir>/data/sft.jsonl
  6. train        SFT of the student on them, through the `sft` recipe (run once) -> <out_dir>/sft
  7. evaluate     greedy answers to held-out questions in each inference mode: accuracy, mean generated
                  tokens, think rate, per level and on hard items (level >= hard_level) -> <out_dir>/eval
Writes `<out_dir>/summary.json` (every count, the selection's statistics and the evaluation) and
`table.md`. This is a flow (layer L7): it runs the sft recipe.

CPU:  selftaught natural-thoughts --preset tiny        (oracle teacher and annotator, tiny-world student)
      selftaught natural-thoughts --preset gemma3-270m (Gemma 3 270M teacher on GSM8K train questions)
1 GPU: selftaught natural-thoughts --preset r1-distill-qwen-7b  (R1-distilled teacher over vLLM)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from selftaught.config import to_dict
from selftaught.configs.natural_thoughts import WORLD, Selection
from selftaught.configs.recipes import NaturalThoughtsConfig as NaturalThoughtsConfig
from selftaught.configs.recipes import SFTConfig, SFTDataConfig
from selftaught.configs.train import EvalConfig, OptimConfig
from selftaught.data.catalog import load_records
from selftaught.data.gsm8k import reference_answer
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.data.sources import write_jsonl
from selftaught.data.templates import get_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.program import ProgramEngine, prompt_text
from selftaught.models.io import load_model
from selftaught.models.policy import LoraConfig
from selftaught.pipelines.natural_thoughts import (
    ANSWER_FORMATS,
    PREFILLED_TEMPLATES,
    annotate,
    difficulty,
    teacher_traces,
)
from selftaught.pipelines.thought_targets import (
    Controls,
    InferenceMode,
    TargetMode,
    build_targets,
    evaluate_modes,
)
from selftaught.recipes import sft
from selftaught.selection import traces as selectors
from selftaught.world import traces as world


def run(cfg: NaturalThoughtsConfig) -> dict[str, Any]:
    out = Path(cfg.out_dir)
    pool_dir = Path(cfg.pool_dir or out / "pool")
    _, tokenizer = load_model(cfg.model)
    questions = with_ids(
        load_records(cfg.questions, limit=cfg.num_questions, num=cfg.num_questions, levels=cfg.levels)
    )
    traces, trace_counts = teacher_traces(
        pool_dir / "traces",
        questions,
        build_teacher(cfg, tokenizer),
        SamplingParams(
            temperature=cfg.teacher_temperature,
            max_new_tokens=cfg.teacher_max_new_tokens,
            stop=list(cfg.teacher_stop),
        ),
        lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
        generator=cfg.teacher,
        seed=cfg.seed,
        template=get_template(cfg.teacher_template),
        raw=cfg.teacher_template in PREFILLED_TEMPLATES,
        prefilled=cfg.teacher_template in PREFILLED_TEMPLATES,
        counter=f"tokenizer of {cfg.model}",
    )
    print(f"traces: {trace_counts}", flush=True)
    annotator_sampling = SamplingParams(
        temperature=0.0, max_new_tokens=cfg.annotator_max_new_tokens, stop=list(cfg.annotator_stop)
    )
    pool, annotation_counts = annotate(
        pool_dir / "annotate",
        traces,
        build_annotator(cfg),
        annotator_sampling,
        taxonomy=cfg.taxonomy,
        generator=cfg.annotator,
        seed=cfg.seed,
    )
    pool, difficulty_counts = label_difficulty(cfg, pool_dir / "difficulty", pool, annotator_sampling)
    print(f"annotation: {annotation_counts}; difficulty: {difficulty_counts}", flush=True)
    selected = build_selector(cfg).select(pool, cfg.budget, cfg.seed)
    controls = build_controls(cfg, selected)
    examples, target_counts = build_targets(
        selected, TargetMode(cfg.targets), controls, p=cfg.mix_p, seed=cfg.seed
    )
    data = out / "data" / "sft.jsonl"
    write_jsonl(data, examples)
    model_dir = train_student(cfg, data, out / "sft", len(examples))
    evaluation = evaluate(cfg, model_dir, controls, out / "eval")
    summary = {
        "traces": trace_counts,
        "annotation": annotation_counts,
        "difficulty": difficulty_counts,
        "pool": selectors.selection_stats(pool),
        "selected": {**selectors.selection_stats(selected), **level_shares(selected)},
        "targets": target_counts,
        "think_words": controls.think_words,
        "eval": evaluation,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    table = format_table(cfg, summary)
    (out / "table.md").write_text(table)
    print(table, flush=True)
    return {"out_dir": cfg.out_dir, "model": model_dir, "table": str(out / "table.md")}


def with_ids(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records as they are when each has an `id`; else ids `q-<sha1 of the question>` (GSM8K files have
    none); a record without `question` is a ValueError naming the field."""
    out = []
    for index, record in enumerate(records):
        if "question" not in record:
            raise ValueError(f"questions: record {index} has no `question` field; it has {sorted(record)}")
        digest = hashlib.sha1(record["question"].encode()).hexdigest()[:12]
        out.append(record if "id" in record else {"id": f"q-{digest}", **record})
    return out


def build_teacher(cfg: NaturalThoughtsConfig, tokenizer: Any) -> Engine:
    """The oracle teacher (`world`; its token ids from the student's tokenizer) or a model."""
    if cfg.teacher == WORLD:
        return ProgramEngine(lambda prompt, rng: world.teacher_reply(prompt_text(prompt), rng), tokenizer)
    if cfg.teacher_engine == "vllm":
        from selftaught.engines.vllm import VLLMEngine

        return VLLMEngine(cfg.teacher)
    return model_engine(cfg.teacher)


def build_annotator(cfg: NaturalThoughtsConfig) -> Engine:
    if cfg.annotator == WORLD:
        return ProgramEngine(lambda prompt, rng: world.annotator_reply(prompt_text(prompt)))
    return model_engine(cfg.annotator)


def model_engine(spec: str) -> HFEngine:
    model, tokenizer = load_model(spec)
    return HFEngine(model, tokenizer)


def label_difficulty(
    cfg: NaturalThoughtsConfig, out_dir: Path, pool: list[dict[str, Any]], judge_sampling: SamplingParams
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Step 3: the weak model's greedy answers and the agreement label (exact, or a judge model)."""
    judge = None if cfg.agreement == "exact" else model_engine(cfg.agreement)
    return difficulty(
        out_dir,
        pool,
        model_engine(cfg.weak_model),
        SamplingParams(temperature=0.0, max_new_tokens=cfg.weak_max_new_tokens),
        answers=ANSWER_FORMATS[cfg.answer_format],
        weak_generator=cfg.weak_model,
        seed=cfg.seed,
        judge=judge,
        judge_sampling=judge_sampling,
        judge_generator=cfg.agreement,
    )


def build_selector(cfg: NaturalThoughtsConfig) -> selectors.Selector:
    """The selector of `cfg.selection` with the config's parameters (MiniLM embeddings where needed)."""
    choice = Selection(cfg.selection)
    if choice in (Selection.CLUSTER, Selection.NEAREST):
        from selftaught.models.embeddings import Embedder

        embed = Embedder().encode
        if choice == Selection.CLUSTER:
            return selectors.ClusterUniform(embed, cfg.cluster_min_size)
        return selectors.NearestNeighbours(embed, tuple(cfg.seed_questions))
    simple: dict[Selection, selectors.Selector] = {
        Selection.RANDOM: selectors.Random(),
        Selection.TOPIC: selectors.StratifiedByDomain(),
        Selection.STRATEGY_WINDOW: selectors.StrategyWindow(
            cfg.r_min, cfg.r_max, cfg.density_filter, cfg.min_density
        ),
        Selection.LENGTH: selectors.LengthPower(cfg.length_c, cfg.length_tau),
        Selection.VERBOSITY_LOW: selectors.Verbosity("low"),
        Selection.VERBOSITY_MED: selectors.Verbosity("med"),
        Selection.VERBOSITY_HIGH: selectors.Verbosity("high"),
        Selection.AGREE: selectors.Agreement("agree"),
        Selection.DISAGREE: selectors.Agreement("disagree"),
    }
    return simple[choice]


def build_controls(cfg: NaturalThoughtsConfig, selected: list[dict[str, Any]]) -> Controls:
    """The control instructions; K (`{k}`) = the mean words of the selected traces' System-2 responses."""
    words = [len(r["think"].split()) + len(r["response"].split()) for r in selected]
    return Controls(
        no_think=cfg.no_think_instruction,
        think=cfg.think_instruction,
        adaptive=cfg.adaptive_instruction,
        think_words=round(sum(words) / len(words)) if words else 0,
    )


def level_shares(records: list[dict[str, Any]]) -> dict[str, float]:
    """Share of each known difficulty level among `records` (world questions carry `level`)."""
    levels = [r["level"] for r in records if "level" in r]
    return {f"level_{k}": levels.count(k) / len(levels) for k in sorted(set(levels))}


def train_student(cfg: NaturalThoughtsConfig, data: Path, out_dir: Path, num_examples: int) -> str:
    """Step 6: SFT of the student on the targets (the sft recipe, run once); the model directory."""
    if num_examples == 0:
        raise ValueError(
            f"{data}: no training examples (empty pool or budget=0); raise budget or num_questions"
        )
    sft_cfg = SFTConfig(
        out_dir=str(out_dir / "run"),
        model=cfg.model,
        seed=cfg.seed,
        num_steps=cfg.sft_steps,
        batch_size=min(cfg.sft_batch_size, num_examples),
        micro_batch_tokens=0,
        precision=cfg.precision,
        activation_checkpointing=cfg.activation_checkpointing,
        data=SFTDataConfig(source=str(data), max_length=cfg.sft_max_length),
        optim=OptimConfig(
            lr=cfg.sft_lr,
            betas=(0.9, 0.98),
            schedule="cosine",
            warmup_steps=min(10, cfg.sft_steps - 1),
            min_lr_ratio=0.1,
        ),
        lora=LoraConfig(r=cfg.sft_lora_r, alpha=2 * max(cfg.sft_lora_r, 1)),
        eval=EvalConfig(every=-1),
        checkpoint_every=max(cfg.sft_steps // 2, 1),
        log_every=50,
    )
    settings = {k: v for k, v in to_dict(sft_cfg).items() if k != "out_dir"}
    fingerprint = compute_fingerprint({**settings, "data_file": data.read_text()})
    run_once(out_dir, fingerprint, lambda: sft.run(sft_cfg))
    return str(out_dir / "run" / "model")


def evaluate(cfg: NaturalThoughtsConfig, model_dir: str, controls: Controls, out_dir: Path) -> dict[str, Any]:
    """Step 7 (run once): accuracy and generated tokens of the trained student in each mode."""
    settings = {
        "model": model_dir,
        "data": cfg.eval_data,
        "per_level": cfg.eval_per_level,
        "levels": eval_levels(cfg),
        "modes": cfg.eval_modes,
        "controls": asdict(controls),
        "max_new_tokens": cfg.eval_max_new_tokens,
        "hard_level": cfg.hard_level,
    }
    return run_once(out_dir, compute_fingerprint(settings), lambda: _evaluate(cfg, model_dir, controls))


def _evaluate(cfg: NaturalThoughtsConfig, model_dir: str, controls: Controls) -> dict[str, Any]:
    levels = eval_levels(cfg)
    records = load_records(
        cfg.eval_data,
        limit=cfg.eval_per_level * len(levels),
        num=cfg.eval_per_level * len(levels),
        levels=levels,
    )
    records = [
        {**r, "answer": reference_answer(r["answer"]) if "####" in str(r["answer"]) else r["answer"]}
        for r in with_ids(records)
    ]
    model, tokenizer = load_model(model_dir)
    return evaluate_modes(
        HFEngine(model, tokenizer, batch_size=256),
        tokenizer,
        records,
        [InferenceMode(mode) for mode in cfg.eval_modes],
        controls,
        ANSWER_FORMATS[cfg.answer_format],
        max_new_tokens=cfg.eval_max_new_tokens,
        hard_level=cfg.hard_level,
    )


def eval_levels(cfg: NaturalThoughtsConfig) -> list[int]:
    return list(cfg.eval_levels or cfg.levels)


def format_table(cfg: NaturalThoughtsConfig, summary: dict[str, Any]) -> str:
    """Markdown: one row per inference mode (accuracy all / hard, mean tokens, think rate)."""
    lines = [
        f"selection `{cfg.selection}` (budget {cfg.budget}), targets `{cfg.targets}`"
        + (f" (p {cfg.mix_p})" if cfg.targets == "random_mix" else ""),
        "",
        "| mode | accuracy | hard accuracy | mean tokens | think rate |",
        "|---|---|---|---|---|",
    ]
    for mode, result in summary["eval"].items():
        overall, hard = result["all"], result.get("hard", {})
        lines.append(
            f"| {mode} | {overall['accuracy']:.3f} | {hard.get('accuracy', float('nan')):.3f} | "
            f"{overall['mean_tokens']:.1f} | {overall['think_rate']:.2f} |"
        )
    return "\n".join(lines) + "\n"
