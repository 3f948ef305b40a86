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
