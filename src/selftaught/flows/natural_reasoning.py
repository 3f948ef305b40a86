"""natural-reasoning: reasoning questions backtranslated from documents, then distillation and
unsupervised self-training (Yuan et al. 2025, papers_A.md §1).

Algorithm (every step a resumable stage under `out_dir`; a rerun reuses what is finished):
  1. annotate      the annotator rates each document on completeness, complexity, correctness and
                   reasoning (`nr-annotate@1`, strict parser, unparsed ratings counted); keep
                   reasoning >= `reasoning_threshold`
  2. backtranslate one new self-contained question per kept document with a reference answer or
                   an explicit none (`nr-question@1`; answer-length buckets none / single / short / long)
  3. dedup         MinHash LSH (surface) then embedding cosine >= 0.55 (paraphrases), faiss neighbours
  4. decontam      13-gram overlap (+ optional embedding similarity) against `decontam_against`
  5. respond       one teacher response per clean question (`nr-respond@1`, any engine)
  6. distill       SFT of the student on the first `num_examples` responses (+ `verify_examples`
                   yes/no verification conversations), through the `sft` recipe; greedy accuracy on
                   each family's test questions
  7. self-train    (with `self_train`) the distilled student samples `samples_per_question` answers
                   to unlabelled clean questions; each scorer (majority vote, self-score, self-score
                   filtered at r >= 0, a reward) picks best / worst; RFT (`sft` recipe on the best)
                   and DPO (`dpo` recipe, best vs worst) from the student; every arm evaluated
Writes `<out_dir>/summary.json` (counts of every stage, dedup / decontamination reports, accuracies).

This is a flow, not a recipe: it composes the sft and dpo recipes (layer L7, like rag-self-demos).

CPU:   selftaught natural-reasoning --preset tiny-smoke       (the tiny world, about a minute)
       selftaught natural-reasoning --preset gemma3-270m      (Gemma 3 270M annotates GSM8K solutions)
1 GPU: selftaught natural-reasoning --preset llama3-8b-vllm   (Llama-3.1-8B-Instruct via vLLM)
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from selftaught.config import to_dict
from selftaught.configs.natural_reasoning import NaturalReasoningConfig as NaturalReasoningConfig
from selftaught.data.catalog import load_records
from selftaught.data.shards import compute_fingerprint, run_once, run_stage
from selftaught.data.sources import write_jsonl
from selftaught.data.templates import get_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.evals.accuracy import mean_and_stderr
from selftaught.models.io import load_model, save_model
from selftaught.pipelines import decontam, dedup
from selftaught.pipelines.natural_reasoning import (
    RAW_STOP,
    RESPOND,
    WorldModel,
    backtranslate,
    respond,
    score_documents,
    sft_record,
    verification_records,
    world_correct,
)
from selftaught.pipelines.self_training import (
    majority_scores,
    selection_quality,
    self_scores,
    training_records,
)
from selftaught.pipelines.stages import Record, generate
from selftaught.recipes import dpo, sft
from selftaught.types import Prompt
from selftaught.world.reasoning_tasks import OOD_FAMILIES, TRAIN_FAMILIES, extract_answer, solve


def run(cfg: NaturalReasoningConfig) -> dict[str, Any]:
    out = Path(cfg.out_dir)
    summary: dict[str, Any] = {}
    questions = synthesize(cfg, summary)
    student = distill(cfg, questions, summary)
    if cfg.self_train:
        # unlabelled questions: neither distilled on nor used (with their answers) for verification
        pool = questions[len(summary["distill"]["ids"]) : len(questions) - cfg.verify_examples]
        summary["self_train"] = self_train(cfg, student, pool)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "distill"}, indent=1)[:3000], flush=True)
    return {"out_dir": cfg.out_dir, "summary": str(out / "summary.json")}


def synthesize(cfg: NaturalReasoningConfig, summary: dict[str, Any]) -> list[Record]:
    """Steps 1-4: the clean questions (deduplicated, decontaminated), counts into `summary`."""
    out = Path(cfg.out_dir)
    docs = load_records(
        cfg.documents, limit=cfg.limit, num=cfg.num_documents, families=cfg.families, seed=cfg.seed
    )
    docs = [
        {"id": str(d.get("id", i)), "document": cfg.document_format.format(**d)} for i, d in enumerate(docs)
    ]
    annotator = build_engine(cfg.annotator)
    greedy = SamplingParams(
        temperature=cfg.annotate_temperature,
        max_new_tokens=cfg.annotate_max_new_tokens,
        stop=list(RAW_STOP) if cfg.raw else [],
    )
    scored, summary["annotate"] = score_documents(
        out / "annotate", docs, annotator, greedy, generator=cfg.annotator, seed=cfg.seed,
        threshold=cfg.reasoning_threshold, raw=cfg.raw, shard_size=cfg.shard_size, executor=cfg.executor,
    )  # fmt: skip
    kept = [{"id": r["id"], "document": r["document"]} for r in scored if r["keep"]]
    writing = replace(greedy, max_new_tokens=cfg.question_max_new_tokens)
    questions, summary["backtranslate"] = backtranslate(
        out / "backtranslate",
        kept,
        annotator,
        writing,
        generator=cfg.annotator,
        seed=cfg.seed,
        raw=cfg.raw,
        shard_size=cfg.shard_size,
        template=get_template(cfg.question_template),
        executor=cfg.executor,
    )
    questions, summary["dedup"] = global_stage(out / "dedup", questions, cfg, "dedup", mark_duplicates)
    questions, summary["decontam"] = global_stage(
        out / "decontam", questions, cfg, "decontam", mark_contamination
    )
    print(f"natural-reasoning: {len(questions)} clean questions; " + stage_counts(summary), flush=True)
    return questions


def stage_counts(summary: dict[str, Any]) -> str:
    a, b, d, c = (summary[k] for k in ("annotate", "backtranslate", "dedup", "decontam"))
    return (
        f"{a['num_documents']} documents, {a['num_unparsed']} ratings unparsed, {a['num_kept']} kept; "
        f"{b['num_questions']} questions ({b['num_unparsed']} unparsed, {b['num_not_self_contained']} "
        f"not self-contained, buckets {b['answer_buckets']}); dedup removed {d['removed']}; "
        f"decontamination removed {c['removed']}"
    )


def mark_duplicates(cfg: NaturalReasoningConfig, records: list[Record]) -> list[Record]:
    embed = None if cfg.dedup_embedder is None else dedup.embedder(cfg.dedup_embedder)
    return dedup.mark_duplicates(
        records, minhash_threshold=cfg.dedup_minhash, embed=embed, threshold=cfg.dedup_threshold
    )


def mark_contamination(cfg: NaturalReasoningConfig, records: list[Record]) -> list[Record]:
    evals = {source: [eval_text(r) for r in load_records(source)] for source in cfg.decontam_against}
    embed = None if cfg.decontam_embedder is None else dedup.embedder(cfg.decontam_embedder)
    return decontam.mark_contamination(
        records, evals, n=cfg.decontam_ngram, embed=embed, threshold=cfg.decontam_threshold
    )


def eval_text(record: Record) -> str:
    """An evaluation item's text: its `question`, else its last user turn."""
    if "question" in record:
        return str(record["question"])
    users = [m["content"] for m in record.get("messages", []) if m["role"] == "user"]
    if not users:
        raise ValueError(f"decontam_against: record {record.get('id')!r} has no `question` or user turn")
    return str(users[-1])


def global_stage(
    out_dir: Path, records: list[Record], cfg: NaturalReasoningConfig, name: str, mark: Any
) -> tuple[list[Record], dict[str, Any]]:
    """`mark(cfg, records)` over all records at once (dedup and decontamination compare records with
    each other), as one stage; the kept records and the report (also in `<out_dir>/report.json`)."""
    keys = {
        "dedup": ["dedup_minhash", "dedup_embedder", "dedup_threshold"],
        "decontam": ["decontam_against", "decontam_ngram", "decontam_embedder", "decontam_threshold"],
    }[name]
    fingerprint = compute_fingerprint(
        {"stage": name, **{k: getattr(cfg, k) for k in keys}, "records": records}
    )
    marked = run_stage(
        out_dir,
        [records],
        lambda chunk: mark(cfg, chunk[0]),
        shard_size=1,
        fingerprint=fingerprint,
        desc=name,
    )
    split = dedup.split_duplicates if name == "dedup" else decontam.split_contaminated
    kept, report = split(marked)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    return kept, {k: v for k, v in report.items() if k != "removed_records"}


def distill(cfg: NaturalReasoningConfig, questions: list[Record], summary: dict[str, Any]) -> str:
    """Steps 5-6: teacher responses to the first `num_examples` questions, SFT of the student, its
    accuracy; returns the trained student's path."""
    out = Path(cfg.out_dir)
    num = len(questions) if cfg.num_examples is None else cfg.num_examples
    if num > len(questions):
        raise ValueError(
            f"num_examples={num} but only {len(questions)} clean questions exist; raise num_documents or lower num_examples"
        )
    sampling = SamplingParams(temperature=0.0, max_new_tokens=cfg.response_max_new_tokens)
    answered = respond(
        out / "responses",
        questions[:num],
        build_engine(cfg.teacher),
        sampling,
        generator=cfg.teacher,
        seed=cfg.seed,
        shard_size=cfg.shard_size,
        executor=cfg.executor,
    )
    data = [sft_record(q) for q in answered] + verification_records(questions, cfg.verify_examples, cfg.seed)
    write_jsonl(out / "data" / "distill.jsonl", data)
    student = train(cfg, "distill", cfg.sft, out / "data" / "distill.jsonl", initial_student(cfg))
    summary["distill"] = {"ids": [q["id"] for q in answered], "num_examples": num, "num_verify": cfg.verify_examples,
                          "accuracy": evaluate(cfg, student)}  # fmt: skip
    return student


def initial_student(cfg: NaturalReasoningConfig) -> str:
    """`scratch:<size>`: a tiny Llama from random init (seeded) with the world tokenizer, saved once."""
    if not cfg.student.startswith("scratch:"):
        return cfg.student
    directory = Path(cfg.out_dir) / "student-init"

    def build() -> dict[str, Any]:
        from selftaught.models.tiny import build_tiny_llama
        from selftaught.world.tokenizer import build_tokenizer

        tokenizer = build_tokenizer()
        ids = {f"{k}_token_id": getattr(tokenizer, f"{k}_token_id") for k in ("bos", "eos", "pad")}
        model = build_tiny_llama(cfg.student.removeprefix("scratch:"), len(tokenizer), seed=cfg.seed, **ids)
        return {"model": str(save_model(model, tokenizer, directory / "model"))}

    return run_once(directory, compute_fingerprint({"student": cfg.student, "seed": cfg.seed}), build)[
        "model"
    ]


def train(cfg: NaturalReasoningConfig, arm: str, base: Any, data: Path, model: str) -> str:
    """Train `arm` from `model` on `data` through the sft or dpo recipe (once per config)."""
    out_dir = str(Path(cfg.out_dir) / arm)
    run_cfg = replace(base, out_dir=out_dir, model=model, seed=cfg.seed)
    run_cfg = replace(run_cfg, data=replace(run_cfg.data, source=str(data)))
    recipe: Any = dpo if arm.endswith("dpo") else sft
    fingerprint = compute_fingerprint({k: v for k, v in to_dict(run_cfg).items() if k != "out_dir"})
    run_once(out_dir, fingerprint, lambda: recipe.run(run_cfg))
    return str(Path(out_dir) / "model")


def evaluate(cfg: NaturalReasoningConfig, model_path: str) -> dict[str, float]:
    """Greedy accuracy on `eval_per_family` test questions of each family; `average` over the
    training families, `ood` over the out-of-distribution ones."""
    if cfg.eval_per_family == 0:
        return {}
    records = load_records(
        "world:reasoning-questions:test", num=cfg.eval_per_family, families=cfg.eval_families
    )
    model, tokenizer = load_model(model_path)
    prompts = [Prompt(r["id"], r["messages"]) for r in records]
    sampling = SamplingParams(temperature=0.0, max_new_tokens=cfg.eval_max_new_tokens)
    texts = [cs[0].text for cs in HFEngine(model, tokenizer).generate(prompts, sampling)]
    right: dict[str, list[float]] = {}
    for record, text in zip(records, texts, strict=True):
        right.setdefault(record["family"], []).append(float(extract_answer(text) == record["answer"]))
    accuracy = {family: mean_and_stderr(values)[0] for family, values in right.items()}
    for name, group in (("average", TRAIN_FAMILIES), ("ood", OOD_FAMILIES)):
        if all(f in accuracy for f in group):
            accuracy[name] = sum(accuracy[f] for f in group) / len(group)
    return accuracy


def build_engine(spec: str) -> Engine:
    """`world` (the scripted tiny-world model), `vllm:<model>`, `openai:<model>@<base url>`, or a
    model path / alias on the in-process HF engine."""
    if spec == "world":
        return WorldModel()
    if spec.startswith("vllm:"):
        from selftaught.engines.vllm import VLLMEngine

        return VLLMEngine(spec.removeprefix("vllm:"))
    if spec.startswith("openai:"):
        from selftaught.engines.openai import OpenAIConfig, OpenAIEngine

        model, _, urls = spec.removeprefix("openai:").partition("@")
        base_url: str | list[str] = urls.split(",") if "," in urls else urls or OpenAIConfig.base_url
        return OpenAIEngine(OpenAIConfig(model=model, base_url=base_url))
    loaded, tokenizer = load_model(spec)
    return HFEngine(loaded, tokenizer)


def self_train(cfg: NaturalReasoningConfig, policy: str, pool: list[Record]) -> dict[str, Any]:
    """Step 7: sample, score by every scorer, train every (scorer, mode) arm, evaluate."""
    out = Path(cfg.out_dir) / "self-train"
    questions = [{"id": q["id"], "question": q["question"]} for q in pool[: cfg.self_train_questions]]
    if not questions:
        raise ValueError(
            "self_train: no clean question is left that is neither distilled on (num_examples) nor a "
            "verification question (verify_examples); raise num_documents or lower those two"
        )
    model, tokenizer = load_model(policy)
    sampling = SamplingParams(
        n=cfg.samples_per_question, temperature=cfg.sample_temperature, max_new_tokens=cfg.eval_max_new_tokens
    )
    sampled = generate(
        out / "samples",
        questions,
        HFEngine(model, tokenizer),
        RESPOND,
        sampling,
        generator=run_relative(policy, cfg.out_dir),
        seed=cfg.seed,
    )
    scored = score_samples(out / "scores", sampled, cfg, model, tokenizer)
    result: dict[str, Any] = {"baseline": evaluate(cfg, policy), "num_questions": len(scored)}
    if all(solve(q["question"]) is not None for q in questions):  # the tiny world: answers known
        bases = sorted({s.removesuffix("-filtered") for s in cfg.scorers})
        result["selection"] = selection_quality(scored, world_correct, bases, seed=cfg.seed)
    for scorer in cfg.scorers:
        base = scorer.removesuffix("-filtered")
        threshold = cfg.filter_threshold if scorer.endswith("-filtered") else None
        rft, pairs, counts = training_records(scored, scorer=base, filter_threshold=threshold, seed=cfg.seed)
        result[f"{scorer} counts"] = counts
        for mode, data, base_cfg in (("rft", rft, cfg.rft), ("dpo", pairs, cfg.dpo)):
            if mode not in cfg.modes:
                continue
            if not data:
                result[f"{mode} {scorer}"] = None
                continue
            path = out / "data" / f"{mode}-{scorer}.jsonl"
            write_jsonl(path, data)
            trained = train(cfg, f"self-train/{scorer}-{mode}", base_cfg, path, policy)
            result[f"{mode} {scorer}"] = evaluate(cfg, trained)
    return result


def run_relative(path: str, out_dir: str) -> str:
    """`path` relative to the run directory when it is inside it (`distill/model`), so a record's
    provenance names the model the same wherever the run lives; else `path` as given."""
    try:
        return str(Path(path).resolve().relative_to(Path(out_dir).resolve()))
    except ValueError:
        return path


def score_samples(
    out_dir: Path, sampled: list[Record], cfg: NaturalReasoningConfig, model: Any, tokenizer: Any
) -> list[Record]:
    """Each question with `samples` (texts) and `scores[scorer]` for every base scorer, as a stage."""
    bases = sorted({s.removesuffix("-filtered") for s in cfg.scorers})

    def run_shard(chunk: list[Record]) -> list[Record]:
        texts = [[c["text"] for c in r["completions"]] for r in chunk]
        scores: dict[str, list[list[float | None]]] = {}
        for base in bases:
            scores[base] = scorer_values(base, chunk, texts, model, tokenizer)
        return [
            {
                "id": r["id"],
                "question": r["question"],
                "samples": t,
                "scores": {b: scores[b][i] for b in bases},
            }
            for i, (r, t) in enumerate(zip(chunk, texts, strict=True))
        ]

    fingerprint = compute_fingerprint({"stage": "scores", "scorers": bases, "records": sampled})
    return run_stage(
        out_dir, sampled, run_shard, shard_size=64, fingerprint=fingerprint, desc="score samples"
    )


def scorer_values(
    base: str, chunk: list[Record], texts: list[list[str]], model: Any, tokenizer: Any
) -> list[list[float | None]]:
    if base == "majority":
        return [majority_scores(t, extract_answer) for t in texts]
    """Each question's samples scored by `base`: majority, self-score or `reward:<spec>`."""
    questions = [r["question"] for r, t in zip(chunk, texts, strict=True) for _ in t]
    flat_texts = [x for t in texts for x in t]
    scores: list[float | None]
    if base == "self-score":
        scores = list(self_scores(model, tokenizer, questions, flat_texts))
    else:
        from selftaught.rewards.registry import build_reward

        reward = build_reward(base.removeprefix("reward:"))
        prompts = [[{"role": "user", "content": q}] for q in questions]
        scores = reward(prompts, [[{"role": "assistant", "content": x}] for x in flat_texts])
    width = len(texts[0]) if texts else 0
    return [list(scores[i * width : (i + 1) * width]) for i in range(len(texts))]
