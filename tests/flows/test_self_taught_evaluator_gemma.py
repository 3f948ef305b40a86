"""The Self-Taught Evaluator with Gemma 3 270M base as the judge (slow: loads the real model): few-shot
world pairs in raw text, sampled judgments filtered by their verdict, LoRA SFT of the seed on the
kept ones (plain-text records, as the judge saw its prompts), and the judge metrics before and after."""

import json
from dataclasses import replace

import pytest

from selftaught.presets import RECIPES


@pytest.mark.slow
def test_gemma_judge_one_iteration_keeps_readable_judgments_and_trains(tmp_path):
    ste = RECIPES["self-taught-evaluator"]
    cfg = replace(ste.preset("gemma3-270m"), out_dir=str(tmp_path / "run"))
    result = ste.run(cfg)
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())["iterations"]
    print("\n" + (tmp_path / "run" / "table.md").read_text())
    assert [row["iteration"] for row in rows] == [0, 1]
    assert rows[0]["unparsed_rate"] <= 0.25  # the few-shot template gives readable verdicts
    records = [json.loads(line) for line in (tmp_path / "run" / "iter-1" / "data" / "sft.jsonl").open()]
    assert records and len(records) == rows[1]["num_kept"]
    assert sum(r["winner"] == "A" for r in records) == len(records) / 2  # balanced
    for record in records:  # raw-text prompt + completion, no chat markers
        assert record["prompt"].rstrip().endswith("Correct:") and "<|user|>" not in record["prompt"]
        assert record["completion"].strip() == f"[[{record['winner']}]]"
    assert result["final"]["model"].endswith("iter-1/sft/run/model")
