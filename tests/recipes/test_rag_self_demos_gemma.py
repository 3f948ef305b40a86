"""The rag-self-demos Gemma preset end to end on the real Gemma 3 270M (slow: minutes on CPU), with
small limits: retrieval over the GSM8K solutions, candidates, the model's own tournament judge, a
LoRA SFT arm when the judge kept any question (else reported as skipped), the LLM correctness judge."""

import json
from pathlib import Path

import pytest

from selftaught.cli import main


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 5 minutes on 2 idle cores; 16 at a load average of 8
def test_gemma_preset_runs_end_to_end(tmp_path):
    gsm8k = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k" / "train.jsonl"
    out = tmp_path / "gemma"
    overrides = [
        f"out_dir={out}",
        f"train_data=gsm8k-rag:train:{gsm8k}",
        f"eval_data=gsm8k-rag:test:{gsm8k}",
        f"retriever=bm25:gsm8k-rag:passages:{gsm8k}",
        "limit=4",
        "eval_limit=2",
        "max_new_tokens=16",
        "judge_max_new_tokens=8",
        "judge_retries=0",
        "arms=[ra-it,sd-sft]",
        "sft.num_steps=1",
    ]
    assert main(["rag-self-demos", "--preset", "gemma3-270m", *overrides]) == 0
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["tournament"]
    assert counts["num_records"] == 4 and counts["num_judge_replies"] == 4  # one bracket each, no retry
    assert counts["num_judge_unparsed"] == counts["num_judge_failed"] == counts["num_dropped"]
    assert (out / "ra-it" / "model").is_dir()
    trained = "sd-sft" not in summary.get("skipped_arms", [])
    assert trained == (counts["num_dropped"] < 4) == (out / "sd-sft" / "model").is_dir()
    rates = summary["rates"]["base, passages"]["all"]
    assert rates["n"] + rates["unparsed"] == 2  # labelled or counted as unparsed
    answers = [
        json.loads(line) for line in (out / "answers" / "ra-it-passages.jsonl").read_text().splitlines()
    ]
    assert len(answers) == 2 and answers[1]["present"] is False  # its solution is not in the collection
    assert {a["label"] for a in answers} <= {"correct", "incorrect", "refuse", None}
