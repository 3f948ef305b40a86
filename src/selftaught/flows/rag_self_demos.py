"""rag-self-demos: post-train a model for RAG on its own best answers (Finlayson et al. 2025,
papers_A.md §4), against RA-IT, the usual SFT on gold answers with passages in context.

Algorithm (every step a resumable stage under `out_dir`; a rerun reuses what is finished):
  0. passages     `retriever=records`: the records bring their `retrieved_support` (RA-DIT); or an
                  index (`bm25:` / `dense:` / `hybrid:` over a passages file, built once into
                  `retrieval/index`, or a saved index) attaches the top `ndocs` passages to the
                  training and evaluation questions (`pipelines.passages`)
     prompts      with `optimize_prompts`, a search for system prompts, without passages and with them
                  (`pipelines.prompt_optimization`: answer, self-score `Score: d` against gold, keep
                  `prompt_topk`, critique + rewrite, `prompt_steps` times; every prompt re-scored on
                  held-out questions, `prompts/{norag,rag}/prompts.jsonl`)
  1. candidates   the base model answers each training question with every strategy: without its
                  passages (`NoRag`), with them (`Rag`) and with them plus a refuse rule
                  (`RagRefuse`), `samples_per_strategy` samples each at `temperature`; sample j of
                  `NoRag` / `Rag` has the j-th best optimised prompt as its system turn (recorded on
                  the candidate as `system_prompt`); with `follow_up`, each reply gets a second turn,
                  `rag-summarize@1`, whose answer is the candidate (the first reply kept, `first_turn`)
  2. tournament   a gold-aware judge picks the best candidate per question in brackets of 3
                  (`selection.tournament`; `judge=world`: the tiny world's judge prefers a correct
                  answer, then a refusal, then anything else; `judge=template:rag-tournament@1`: an
                  LLM, `judge_model` or the base model itself, every bracket of a round of all the
                  shard's questions in one generate call, retries only for unparsed replies);
                  unparseable brackets drop the question, counted with the judge's unparsed replies
  3. data         self-demo SFT: RAG input -> winner; self-demo DPO: winner vs each losing
                  candidate; RA-IT: RAG input -> the gold answer in `ra_it_style`
  4. train        each arm from the base model through the `sft` / `dpo` recipes
  5. evaluate     greedy answers of the base model and every arm to the evaluation questions,
                  with and without their passages, labelled correct / incorrect / refuse (`eval_judge`:
                  the world's `label`, or an LLM over `rag-correctness@1`, its unparsed answers counted
                  beside the rates), sliced by (answer present in the passages: the records' flag or
                  `relevance_judge`) x (fact known to the base model)
Writes `<out_dir>/table.md`, `summary.json` and every evaluation answer with its label under
`answers/`. An arm whose training set is empty (the judge dropped every question) is not trained:
`summary.json` names it under `skipped_arms`.

This is a flow, not a recipe: it composes the sft and dpo recipes (layer L7, like the demo).

CPU:  selftaught rag-self-demos                   (tiny world: the knowledge base, `tiny-world-facts`)
      selftaught rag-self-demos --preset gemma3-270m   (Gemma 3 270M over GSM8K solutions, ~8 CPU-min)
1 GPU: selftaught rag-self-demos --preset llama3-8b-instruct train_data=... eval_data=...  (HF engine)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from selftaught.config import to_dict
from selftaught.configs.recipes import RagSelfDemosConfig as RagSelfDemosConfig
from selftaught.data.catalog import load_records
from selftaught.data.shards import compute_fingerprint, run_once
from selftaught.data.sources import write_jsonl
from selftaught.engines.base import Engine, SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.evals.rag import format_cells, judged_rates, label_rates
from selftaught.judges.rag import Labeler, llm_labeler, relevance_labeler
from selftaught.models.io import load_model
from selftaught.pipelines.passages import index_key, open_index, parse_retriever, retrieve
from selftaught.pipelines.prompt_optimization import PromptOptimizer, top_prompts
from selftaught.pipelines.rag_candidates import (
    CLOSED,
    PASSAGES,
    STRATEGIES,
    SUMMARIZE,
    Strategy,
    generate_candidates,
    with_passages,
)
from selftaught.pipelines.self_demos import (
    RoundChooserFor,
    judge_candidates,
    llm_tournament_judge,
    per_question,
    ra_it_records,
    rag_input,
    self_demo_records,
)
from selftaught.pipelines.stages import Record
from selftaught.recipes import dpo, sft
from selftaught.retrieval import check_retrieved_support
from selftaught.selection.tournament import JudgeStats, preference_chooser
from selftaught.types import Prompt
from selftaught.world.facts import JUDGE_PREFERENCE, label


def run(cfg: RagSelfDemosConfig) -> dict[str, Any]:
    out = Path(cfg.out_dir)
    attach = passage_source(cfg)
    train = attach(load_records(cfg.train_data, limit=cfg.limit), "train")
    model, tokenizer = load_model(cfg.model)
    engine = HFEngine(model, tokenizer)
    judge_engine = load_judge_engine(cfg, engine)
    systems = optimized_prompts(cfg, engine, train)
    strategies = build_strategies(cfg, systems)
    sampling = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens)
    pool = generate_candidates(
        out / "candidates",
        train,
        engine,
        strategies,
        sampling,
        generator=cfg.model,
        seed=cfg.seed,
        ndocs=cfg.ndocs,
    )
    judged, counts = judge_candidates(
        out / "tournament",
        pool,
        tournament_chooser(cfg, judge_engine),
        judge=judge_name(cfg),
        seed=cfg.seed,
        bracket_size=cfg.bracket_size,
    )
    print(f"tournament: {counts}; winners by strategy: {winners_by_strategy(judged)}", flush=True)
    demos, pairs = self_demo_records(judged)
    gold = ra_it_records(train, style=lambda r: cfg.ra_it_style.format(answer=r["answer"]), ndocs=cfg.ndocs)
    data = {"sd-sft": demos, "sd-dpo": pairs, "ra-it": gold}
    for name, records in data.items():
        write_jsonl(out / "data" / f"{name}.jsonl", records)
    models = {"base": cfg.model}
    skipped = [arm for arm in cfg.arms if not data[arm]]
    for arm in cfg.arms:
        if arm in skipped:
            print(f"{arm}: no training records (the judge dropped every question): not trained", flush=True)
            continue
        models[arm] = str(train_arm(cfg, arm, out / "data" / f"{arm}.jsonl"))
    eval_records, relevance_unparsed = evaluation_records(cfg, judge_engine, attach)
    labeler = build_labeler(cfg, judge_engine)
    tables = {}
    for name, path in models.items():
        for passages in (True, False):
            key = f"{name}, {'passages' if passages else 'no passages'}"
            answers = out / "answers" / f"{name}-{'passages' if passages else 'no-passages'}.jsonl"
            tables[key] = evaluate(cfg, path, passages, eval_records, labeler, answers)
    table = format_cells(tables)
    (out / "table.md").write_text(table + "\n")
    summary = {
        "tournament": counts,
        "winners": winners_by_strategy(judged),
        "rates": tables,
        "relevance_unparsed": relevance_unparsed,
        **({"system_prompts": systems} if systems else {}),
        **({"skipped_arms": skipped} if skipped else {}),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(table, flush=True)
    return {
        "out_dir": cfg.out_dir,
        "table": str(out / "table.md"),
        **{k: summary[k] for k in ("tournament", "winners")},
    }


Attach = Callable[[list[Record], str], list[Record]]
"""`attach(records, split)`: the records of `split` (`train`, `eval`) with their passages."""


def passage_source(cfg: RagSelfDemosConfig) -> Attach:
    """`retriever=records`: the records as they are, after checking each brings `retrieved_support`;
    an index: its top `ndocs` passages attached to each split's records, a stage under
    `<out_dir>/retrieval/<split>` (the index built or loaded once, only when a stage needs it)."""
    spec = parse_retriever(cfg.retriever)
    if spec is None:
        return require_passages
    directory = Path(cfg.out_dir) / "retrieval"
    index, key = open_index(directory, spec), index_key(spec)
    return lambda records, split: retrieve(directory / split, records, index, k=cfg.ndocs, key=key)


def require_passages(records: list[Record], split: str) -> list[Record]:
    """`records` when every one brings passages (`retrieved_support`: a list of `{"text"}`); else a
    ValueError naming the record and the two ways out."""
    data = "train_data" if split == "train" else "eval_data"
    try:
        check_retrieved_support(records)
    except ValueError as err:
        raise ValueError(
            f"{data}: {err}. With retriever=records every record must bring its passages (RA-DIT's "
            "`retrieved_support`); or set retriever=bm25:<passages.jsonl> (or dense: / hybrid:, or a saved "
            "index directory) to retrieve them"
        ) from err
    return records


def optimized_prompts(
    cfg: RagSelfDemosConfig, engine: Engine, train: list[Record]
) -> dict[str, tuple[str, ...]]:
    """With `optimize_prompts`: the `samples_per_strategy` best system prompts for `NoRag` (searched
    without passages) and `Rag` (with them), each search a resumable `PromptOptimizer` run under
    `<out_dir>/prompts/{norag,rag}` on the training records, by the base model; else {}."""
    if not cfg.optimize_prompts:
        return {}
    records = with_passages(train, cfg.ndocs)
    systems = {}
    for name, user, rag in (("NoRag", CLOSED, False), ("Rag", PASSAGES, True)):
        optimizer = PromptOptimizer(
            engine,
            steps=cfg.prompt_steps,
            beam=cfg.prompt_beam,
            topk=cfg.prompt_topk,
            n_train=cfg.prompt_train_examples,
            n_eval=cfg.prompt_eval_examples,
            user=user,
            rag=rag,
            sampling=SamplingParams(
                temperature=cfg.prompt_temperature, max_new_tokens=cfg.prompt_max_new_tokens
            ),
            answer_tokens=cfg.max_new_tokens,
            generator=cfg.model,
        )
        ranked = optimizer.optimize(Path(cfg.out_dir) / "prompts" / name.lower(), records, seed=cfg.seed)
        print(f"prompt optimisation {name}: best held-out score {ranked[0]['score']:.2f}", flush=True)
        systems[name] = top_prompts(ranked, cfg.samples_per_strategy)
    return systems


def build_strategies(cfg: RagSelfDemosConfig, systems: dict[str, tuple[str, ...]]) -> list[Strategy]:
    """The paper's pool with `samples_per_strategy` samples each, the optimised system prompts of
    `NoRag` / `Rag` (`systems`) and the summarize turn with `follow_up`."""
    follow_up = SUMMARIZE if cfg.follow_up else None
    return [
        replace(s, samples=cfg.samples_per_strategy, systems=systems.get(s.name, ()), follow_up=follow_up)
        for s in STRATEGIES
    ]


def load_judge_engine(cfg: RagSelfDemosConfig, base: Engine) -> Engine | None:
    """The engine of the `template:` judges: `judge_model`, or the base model's `base` (the paper's
    self-judging) when it is None; None when every judge is programmatic."""
    if not any(j.startswith("template:") for j in (cfg.judge, cfg.eval_judge, cfg.relevance_judge)):
        return None
    if cfg.judge_model is None:
        return base
    model, tokenizer = load_model(cfg.judge_model)
    return HFEngine(model, tokenizer)


def judge_sampling(cfg: RagSelfDemosConfig) -> SamplingParams:
    """How the `template:` judges sample (a retry adds its attempt number to the seed)."""
    return SamplingParams(
        temperature=cfg.judge_temperature, max_new_tokens=cfg.judge_max_new_tokens, seed=cfg.seed
    )


def judge_name(cfg: RagSelfDemosConfig) -> str:
    """The tournament judge as the stage's fingerprint sees it: `world`, or the template with the
    model and sampling behind it (a change of either judges again; `per-prompt-seeds`: the batched
    judge's sampling, which replaced one generate call per bracket)."""
    if cfg.judge == "world":
        return "world"
    settings = [
        cfg.judge_model or cfg.model,
        cfg.judge_retries,
        cfg.judge_temperature,
        cfg.judge_max_new_tokens,
        "per-prompt-seeds",
    ]
    return json.dumps([cfg.judge, *settings])


def tournament_chooser(cfg: RagSelfDemosConfig, judge_engine: Engine | None) -> RoundChooserFor:
    """`world_chooser` question by question, or the LLM judge over `rag-tournament@1` on
    `judge_engine`, every bracket of a round in one generate call (`llm_tournament_judge`)."""
    if cfg.judge == "world":
        return per_question(world_chooser)
    assert judge_engine is not None
    return llm_tournament_judge(judge_engine, judge_sampling(cfg), retries=cfg.judge_retries)


def build_labeler(cfg: RagSelfDemosConfig, judge_engine: Engine | None) -> Labeler:
    """The evaluation's labeller: the world's `answer_label`, or the LLM judge over
    `rag-correctness@1` on `judge_engine` (None where it never parsed)."""
    if cfg.eval_judge == "world":
        return lambda records, texts: [
            answer_label(t, r["answer"], cfg) for t, r in zip(texts, records, strict=True)
        ]
    assert judge_engine is not None
    return llm_labeler(judge_engine, judge_sampling(cfg), retries=cfg.judge_retries)


def evaluation_records(
    cfg: RagSelfDemosConfig, judge_engine: Engine | None, attach: Attach | None = None
) -> tuple[list[Record], int]:
    """The evaluation records with their passages (`attach`; None = `passage_source(cfg)`), and how
    many the relevance judge never labelled: with `relevance_judge=template:...`, `present` is the
    LLM's label (None when unparsed, so the record counts in `all` only)."""
    attach = passage_source(cfg) if attach is None else attach
    loaded = load_records(cfg.eval_data, limit=cfg.eval_limit)
    records = with_passages(attach(loaded, "eval"), cfg.ndocs)
    if cfg.relevance_judge == "records":
        return records, 0
    if cfg.relevance_judge == "gold-passage":
        return [{**r, "present": gold_passage_retrieved(r, cfg.ndocs)} for r in records], 0
    assert judge_engine is not None
    present = relevance_labeler(judge_engine, judge_sampling(cfg), retries=cfg.judge_retries)(records)
    records = [{**r, "present": flag} for r, flag in zip(records, present, strict=True)]
    return records, sum(flag is None for flag in present)


def gold_passage_retrieved(record: Record, ndocs: int) -> bool:
    """Whether the record's `gold_passage` (the id of the passage that holds its answer; None when the
    collection has none) is among its first `ndocs` retrieved passages."""
    if "gold_passage" not in record:
        raise ValueError(
            f"eval_data: record {record.get('id')!r} has no `gold_passage` (relevance_judge=gold-passage needs "
            "the id of the passage that holds each answer, or None); use relevance_judge=records or template:..."
        )
    ids = [p.get("id") for p in record["retrieved_support"][:ndocs]]
    return record["gold_passage"] is not None and record["gold_passage"] in ids


def world_chooser(record: dict[str, Any], stats: JudgeStats) -> Any:
    """The tiny world's gold-aware judge: a correct answer, then a refusal, then anything else
    (programmatic: it always parses, so `stats` stays 0)."""
    scores = [JUDGE_PREFERENCE[label(c["text"], record["answer"])] for c in record["candidates"]]
    return preference_chooser(scores)


def winners_by_strategy(records: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        source = record["winner_source"]
        name = "dropped" if source is None else source.rstrip("0123456789")
        counts[name] = counts.get(name, 0) + 1
    return counts


def train_arm(cfg: RagSelfDemosConfig, arm: str, data: Path) -> Path:
    """Train `arm` from the base model on its data file through the sft or dpo recipe (once per config)."""
    out_dir = str(Path(cfg.out_dir) / arm)
    if arm == "sd-dpo":
        run_cfg: Any = replace(cfg.dpo, out_dir=out_dir, model=cfg.model, seed=cfg.seed)
        run_cfg = replace(run_cfg, data=replace(run_cfg.data, source=str(data)))
        recipe: Any = dpo
    else:
        run_cfg = replace(cfg.sft, out_dir=out_dir, model=cfg.model, seed=cfg.seed)
        run_cfg = replace(run_cfg, data=replace(run_cfg.data, source=str(data)))
        recipe = sft
    fingerprint = compute_fingerprint({k: v for k, v in to_dict(run_cfg).items() if k != "out_dir"})
    run_once(out_dir, fingerprint, lambda: recipe.run(run_cfg))
    return Path(out_dir) / "model"


def evaluate(
    cfg: RagSelfDemosConfig,
    model_path: str,
    passages: bool,
    records: list[Record],
    labeler: Labeler,
    answers: Path | None = None,
) -> dict[str, dict[str, float]]:
    """Greedy answers of the model at `model_path` to the evaluation `records`, with their passages
    (the RAG input every arm trains on) or without (the question alone), labelled by `labeler` and
    sliced by cell (an LLM judge's unlabelled answers counted as `unparsed`, `judged_rates`); with
    `answers`, each answer and its label written there (id, gold answer, present, text, label)."""
    model, tokenizer = load_model(model_path)
    prompts = [
        Prompt(
            str(r["id"]), rag_input(r) if passages else CLOSED.render_messages({"question": r["question"]})
        )
        for r in records
    ]
    sampling = SamplingParams(temperature=0.0, max_new_tokens=cfg.max_new_tokens)
    texts = [cs[0].text for cs in HFEngine(model, tokenizer).generate(prompts, sampling)]
    labels = labeler(records, texts)
    if answers is not None:
        write_jsonl(
            answers,
            [
                {"id": r["id"], "answer": r["answer"], "present": r.get("present"), "text": t, "label": lab}
                for r, t, lab in zip(records, texts, labels, strict=True)
            ],
        )
    if cfg.eval_judge == "world":
        return label_rates([str(label) for label in labels], records)
    return judged_rates(labels, records)


def answer_label(text: str, gold: str, cfg: RagSelfDemosConfig) -> str:
    """The world's label of an answer; an answer in the RA-IT style is read for its value first."""
    prefix, _, suffix = cfg.ra_it_style.partition("{answer}")
    stripped = text.strip()
    if prefix and stripped.startswith(prefix.strip()) and stripped.endswith(suffix.strip()):
        stripped = stripped[len(prefix.strip()) : len(stripped) - len(suffix.strip())]
    return label(stripped, gold)
