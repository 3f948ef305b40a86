"""The natural-reasoning flow end to end on the tiny world: documents -> annotation -> questions ->
dedup -> decontamination -> teacher responses -> distillation -> self-training arms; a rerun reuses
every stage; the presets (the GPU one included) are valid configs."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from selftaught.data.shards import read_stage
from selftaught.presets import RECIPES
from selftaught.world.reasoning_tasks import solve, split_of

RECIPE = RECIPES["natural-reasoning"]


def small(out: str):
    cfg = RECIPE.preset("tiny-smoke")
    two = {"num_steps": 2, "checkpoint_every": 0}
    return replace(
        cfg, out_dir=out, num_documents=80, num_examples=20, verify_examples=6, eval_per_family=4,
        self_train_questions=6, sft=replace(cfg.sft, **two), rft=replace(cfg.rft, **two), dpo=replace(cfg.dpo, **two),
    )  # fmt: skip


def test_the_flow_runs_every_stage_and_a_rerun_reads_them_back(tmp_path):
    cfg = small(str(tmp_path / "run"))
    RECIPE.run(cfg)
    out = Path(cfg.out_dir)
    summary = json.loads((out / "summary.json").read_text())
    a, b, d, c = (summary[k] for k in ("annotate", "backtranslate", "dedup", "decontam"))
    assert a["num_documents"] == 80 and a["num_unparsed"] == 0 and 0 < a["num_kept"] < 80
    assert b["num_documents"] == a["num_kept"] and b["num_questions"] == b["num_documents"]
    assert d["num_records"] == b["num_questions"] and c["num_records"] == d["num_kept"]
    clean = c["num_clean"]
    removed = json.loads((out / "decontam" / "report.json").read_text())["removed_records"]
    assert len(removed) == c["num_records"] - clean and all(split_of(r["text"]) == "test" for r in removed)
    answered = read_stage(out / "responses")
    assert len(answered) == 20 == summary["distill"]["num_examples"]
    for record in answered:
        assert record["provenance"]["document"] == record["doc_id"]
        assert {"question", "responses"} <= set(record["provenance"])
        assert record["provenance"]["question"]["template"] == "nr-question@1"
        assert (
            record["provenance"]["question"]["generator"] == "world"
            and "seed" in record["provenance"]["question"]
        )
        assert record["responses"][0]["text"].endswith(f"Answer: {solve(record['question'])[1]}")
    data = (out / "data" / "distill.jsonl").read_text().splitlines()
    assert len(data) == 20 + 6
    st = summary["self_train"]
    assert st["num_questions"] == min(6, clean - 20 - 6)  # neither distilled nor verified on
    assert set(st["baseline"]) >= {"arith", "unitsum", "average", "ood"}
    for scorer in ("majority", "self-score", "self-score-filtered"):
        counts = st[f"{scorer} counts"]
        assert counts["num_rft"] + counts["num_unscored"] + counts["num_filtered"] == counts["num_questions"]
        for mode in ("rft", "dpo"):
            assert (st[f"{mode} {scorer}"] is None) == (counts[f"num_{mode}"] == 0)
    stamp = (out / "distill" / "done.json").stat().st_mtime
    RECIPE.run(cfg)
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "distill" / "done.json").stat().st_mtime == stamp


def test_too_few_clean_questions_is_an_error_naming_the_field(tmp_path):
    cfg = replace(small(str(tmp_path / "run")), num_examples=10_000, self_train=False)
    with pytest.raises(ValueError, match="num_examples=10000 but only"):
        RECIPE.run(cfg)


def test_config_errors_name_the_field():
    from selftaught.configs.recipes import NaturalReasoningConfig

    for kwargs, field in [
        ({"reasoning_threshold": 7}, "reasoning_threshold"),
        ({"families": ["arith", "chess"]}, "families"),
        ({"scorers": ["vibes"]}, "scorers"),
        ({"modes": ["ppo"]}, "modes"),
        ({"samples_per_question": 1}, "samples_per_question"),
    ]:
        with pytest.raises(ValueError, match=field):
            NaturalReasoningConfig(**kwargs)


@pytest.mark.parametrize("preset", RECIPE.presets)
def test_every_preset_is_a_valid_config(preset):
    cfg = RECIPE.preset(preset)
    assert cfg.out_dir.startswith("runs/natural-reasoning")


def test_the_gpu_preset_uses_vllm_for_every_generation_step():
    cfg = RECIPE.preset("llama3-8b-vllm")
    assert cfg.annotator.startswith("vllm:") and cfg.teacher.startswith("vllm:")
    assert cfg.dedup_threshold == 0.55 and cfg.decontam_ngram == 13 and cfg.sft.precision == "bf16"


def test_a_reward_by_name_scores_the_samples():
    from selftaught.flows.natural_reasoning import scorer_values
    from selftaught.rewards.text import ngram_novelty_reward

    chunk = [{"question": "q1"}, {"question": "q2"}]
    texts = [["a b c d e f", "a a a a a a"], ["x y z w", "x y x y x y x y"]]
    got = scorer_values("reward:ngram_novelty", chunk, texts, model=None, tokenizer=None)
    flat = ngram_novelty_reward(["q1", "q1", "q2", "q2"], [t for ts in texts for t in ts])
    assert got == [flat[:2], flat[2:]] and got[0][0] > got[0][1]


def test_the_command_line_runs_the_smoke_preset(tmp_path):
    from selftaught.cli import main

    overrides = [
        "num_documents=60",
        "num_examples=12",
        "verify_examples=4",
        "eval_per_family=2",
        "self_train=false",
    ]
    assert (
        main(["natural-reasoning", "--preset", "tiny-smoke", f"out_dir={tmp_path / 'run'}", *overrides]) == 0
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["distill"]["num_examples"] == 12 and "self_train" not in summary


def test_teachers_and_annotators_come_from_any_engine():
    from selftaught.engines.openai import OpenAIEngine
    from selftaught.flows.natural_reasoning import build_engine
    from selftaught.pipelines.natural_reasoning import WorldModel

    assert isinstance(build_engine("world"), WorldModel)
    engine = build_engine("openai:llama-70b@http://127.0.0.1:9/v1")
    assert isinstance(engine, OpenAIEngine) and engine.config.model == "llama-70b"
    assert engine.config.base_url == "http://127.0.0.1:9/v1"
