"""Gemma 3 270M (base, from PyPI) as System 1, System 2 and student on GSM8K: the `gemma3-270m` preset
end to end on a slice that fits CI (4-shot CoT x 8 on 12 train questions, majority vote, LoRA SFT of
the final answer, greedy System 1 / System 2 / distilled System 1 on 8 test questions; the preset's
24 / 20 run is in docs/results.md). Prints the table; asserts the pipeline's accounting, not an effect."""

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from selftaught.presets import RECIPES

GSM8K = Path("../shared/data/gsm8k/train.jsonl")


@pytest.mark.slow  # about half the preset: 10-20 minutes on 2 shared CPU cores
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not GSM8K.is_file(), reason="needs ../shared/data/gsm8k/train.jsonl")
def test_gemma_distils_cot_majority_answers_on_gsm8k(tmp_path):
    from selftaught.flows.system2_distill import run

    out = os.environ.get("SYSTEM2_GEMMA_OUT") or str(tmp_path / "run")  # set it to keep the run
    cfg = replace(
        RECIPES["system2-distill"].preset("gemma3-270m"), out_dir=out, num_inputs=12, eval_num=8, sft_steps=8
    )
    result = run(cfg)
    arms = {row["arm"]: row for row in result["arms"]}
    assert set(arms) == {"system1", "system2 (cot)", "distilled system1"}
    assert arms["system2 (cot)"]["tokens"] > arms["system1"]["tokens"] > 0
    kept = result["curation"]
    assert kept["num_items"] == cfg.num_inputs
    dropped = kept["num_no_answer"] + kept["num_tied"] + kept["num_below_share"]
    assert kept["num_kept"] + dropped == cfg.num_inputs
    data = [json.loads(line) for line in Path(out, "data", "sft.jsonl").read_text().splitlines()]
    assert all(
        r["prompt"].startswith("Question: ") and r["completion"].startswith(" The answer is ") for r in data
    )
    print(Path(out, "table.md").read_text())
    print(json.dumps(kept, indent=1))
