"""Gemma 3 270M (base, from PyPI) annotates real reasoning text and backtranslates questions from it:
the worked solutions of the first 36 GSM8K train problems through the `gemma3-270m` preset's data
steps (annotate, backtranslate, MiniLM dedup, 13-gram + MiniLM decontamination against GSM8K test).
Prints how many ratings and questions parse and three examples (docs/results.md records them)."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from selftaught.presets import RECIPES

GSM8K = Path("../shared/data/gsm8k/train.jsonl")


@pytest.mark.slow  # about 3-6 minutes on 2 CPU cores
@pytest.mark.skipif(not GSM8K.is_file(), reason="needs ../shared/data/gsm8k/train.jsonl")
def test_gemma_annotates_gsm8k_solutions_and_backtranslates_questions(tmp_path):
    from selftaught.data.shards import read_stage
    from selftaught.flows.natural_reasoning import synthesize

    cfg = replace(RECIPES["natural-reasoning"].preset("gemma3-270m"), out_dir=str(tmp_path / "run"))
    summary: dict = {}
    questions = synthesize(cfg, summary)
    a, b = summary["annotate"], summary["backtranslate"]
    assert a["num_documents"] == 36 and b["num_documents"] == a["num_kept"]
    assert b["num_unparsed"] + b["num_not_self_contained"] + b["num_questions"] == b["num_documents"]
    docs = {r["id"]: r["document"] for r in read_stage(tmp_path / "run" / "annotate" / "replies")}
    for q in questions:
        assert q["question"].strip() and q["provenance"]["question"]["generator"] == "gemma-3-270m"
    copied = sum(q["question"] in docs[q["doc_id"]] for q in questions)
    replies = [r["completions"][0]["text"] for r in read_stage(tmp_path / "run" / "annotate" / "replies")]
    report = {
        **summary,
        "copied_from_document": copied,
        "examples": questions[:3],
        "rating_replies": replies[:3],
    }
    print(json.dumps(report, indent=1))
    Path("runs").mkdir(exist_ok=True)
    Path("runs/natural-reasoning-gemma-report.json").write_text(json.dumps(report, indent=1))
