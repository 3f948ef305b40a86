"""CoCoMix with Gemma 3 270M as the teacher (slow: loads the real model): an SAE on a middle layer
over real GSM8K text, attribution labels on that text, and a tiny student trained a few steps."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from selftaught.presets import RECIPES

GSM8K = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k" / "train.jsonl"


@pytest.mark.slow
def test_gemma_teacher_sae_labels_and_a_concept_student(tmp_path):
    if not GSM8K.is_file():
        pytest.skip(f"no GSM8K train file at {GSM8K}")
    cfg = RECIPES["cocomix"].preset("gemma3-270m")
    cfg = replace(
        cfg,
        out_dir=str(tmp_path / "run"),
        num_steps=3,
        log_every=1,
        checkpoint_every=0,
        corpus=replace(cfg.corpus, text_file=str(GSM8K), text_tokens=4096),
        sae=replace(cfg.sae, num_steps=100, num_sequences=32),
        optim=replace(cfg.optim, warmup_steps=0),
    )
    summary = RECIPES["cocomix"].run(cfg)
    teacher = summary["teacher"]
    assert 0 < teacher["sae_nmse"] < 1 and 0 <= teacher["sae_dead_fraction"] < 1
    assert teacher["sae_tokens"] == 32 * 64
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in rows if "concept_loss" in r]
    assert len(trained) == 3 and all(r["label_positive_share"] > 0 for r in trained)
    assert summary["val_ppl"] > 1 and "val_concept_top1_acc" in summary
    print(json.dumps({"teacher": teacher, "labels": trained[-1], "val_ppl": summary["val_ppl"]}, indent=1))
