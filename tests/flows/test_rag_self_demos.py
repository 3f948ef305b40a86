"""The rag-self-demos flow end to end on a random tiny model: candidates, tournament, the three
training sets, every arm trained through its recipe, the evaluation table; a rerun reuses every stage."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

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
        world_chooser,
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
    assert tournament_chooser(base, None) is world_chooser
    assert judge_name(base) == "world" and judge_name(llm) != judge_name(replace(llm, judge_temperature=1.0))
    records, unparsed = evaluation_records(llm, engine)
    assert [r["present"] for r in records] == [False] * 3 and unparsed == 0
    assert build_labeler(llm, engine)(records, ["a", "b", "c"]) == ["correct"] * 3
    record = {**records[0], "candidates": [{"text": t} for t in ("x", "y")]}
    stats = JudgeStats()
    assert tournament_chooser(llm, engine)(record, stats)([1, 0]) == 0 and stats.calls == 1
    assert build_labeler(base, None)(records[:1], [records[0]["answer"]]) == ["correct"]
