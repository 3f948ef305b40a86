"""The natural-thoughts flow on the tiny world: a smoke run (random-init student), a rerun reads every
stage back, the summary's counts add up, and every preset is a valid config."""

import json
from dataclasses import replace

import pytest

from selftaught.config import apply_overrides
from selftaught.flows import natural_thoughts as flow
from selftaught.presets import RECIPES


def smoke(model_dir, out, **changes):
    cfg = replace(
        RECIPES["natural-thoughts"].preset("tiny-smoke"),
        out_dir=str(out),
        model=model_dir,
        weak_model=model_dir,
        num_questions=24,
        budget=12,
        sft_steps=2,
        eval_per_level=2,
        eval_max_new_tokens=16,
    )
    return replace(cfg, **changes)


def test_smoke_run_writes_data_model_and_summary(tiny_model_dir, tmp_path):
    cfg = smoke(tiny_model_dir, tmp_path)
    flow.run(cfg)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["traces"] == {"num_questions": 24, "status_ok": 24.0}
    assert sum(summary["difficulty"].values()) == 24
    assert summary["targets"]["s1"] + summary["targets"]["s2"] == 12
    assert set(summary["eval"]) == {"no_think", "think", "adaptive"}
    for result in summary["eval"].values():
        assert result["all"]["n"] == 8 and result["hard"]["n"] == 2  # levels 1-4, level 4 hard
        assert result["all"]["mean_tokens"] > 0
    assert summary["eval"]["think"]["all"]["think_rate"] == 1.0  # pre-filled
    examples = [json.loads(line) for line in (tmp_path / "data" / "sft.jsonl").read_text().splitlines()]
    disagreeing = {r["id"] for r in examples if r["target"] == "s2"}
    assert len(disagreeing) == summary["targets"]["s2"]
    table = (tmp_path / "table.md").read_text()

    flow.run(cfg)  # every stage is read back: same data and table
    assert (tmp_path / "table.md").read_text() == table


def test_selection_changes_what_is_trained_on(tiny_model_dir, tmp_path):
    shared = tmp_path / "pool"
    runs = {}
    for selection in ("random", "disagree", "strategy_window"):
        cfg = smoke(
            tiny_model_dir, tmp_path / selection, selection=selection, pool_dir=str(shared), targets="s2"
        )
        flow.run(cfg)
        runs[selection] = json.loads((tmp_path / selection / "summary.json").read_text())["selected"]
    assert runs["disagree"]["disagree_share"] >= runs["random"]["disagree_share"]
    assert runs["strategy_window"]["mean_strategies"] >= runs["random"]["mean_strategies"]


def test_an_empty_selection_is_an_error_naming_the_fix(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="raise budget"):
        flow.run(smoke(tiny_model_dir, tmp_path, budget=0))


@pytest.mark.parametrize("preset", RECIPES["natural-thoughts"].presets)
def test_presets_are_valid_configs(preset):
    cfg = RECIPES["natural-thoughts"].preset(preset)
    assert cfg.budget >= 1 and cfg.sft_steps >= 1
    assert flow.build_selector(cfg) is not None or cfg.selection in ("cluster", "nearest")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("targets=both", "targets"),
        ("eval_modes=[fast]", "eval_modes"),
        ("selection=nearest", "seed_questions"),
        ("r_min=5", "r_min"),
    ],
)
def test_bad_configs_name_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(RECIPES["natural-thoughts"].preset("tiny"), [override])
