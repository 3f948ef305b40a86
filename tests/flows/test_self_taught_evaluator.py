"""`selftaught self-taught-evaluator`: judgments sampled, only correct ones kept (one per pair, A/B
balanced), the seed judge SFT-ed anew each iteration on the previous judge's annotations, every stage
reused on a rerun."""

import json
from dataclasses import replace

from selftaught.flows import self_taught_evaluator as ste
from selftaught.presets import RECIPES

STE = RECIPES["self-taught-evaluator"]


def test_the_loop_keeps_balanced_correct_judgments_and_trains_from_the_seed(
    tiny_model_dir, tmp_path, monkeypatch
):
    # a random-init judge never writes a verdict: call every other sampled judgment right
    verdicts = iter(range(10_000))
    monkeypatch.setattr(ste, "judgment_correct", lambda text, winner, template: next(verdicts) % 2 == 0)
    cfg = replace(STE.preset("tiny-smoke"), model=tiny_model_dir, out_dir=str(tmp_path / "run"))
    summary = STE.run(cfg)
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())["iterations"]
    assert [r["iteration"] for r in rows] == [0, 1, 2] and summary["final"]["iteration"] == 2
    for i in (1, 2):
        records = [
            json.loads(line) for line in (tmp_path / "run" / f"iter-{i}" / "data" / "sft.jsonl").open()
        ]
        winners = [r["winner"] for r in records]
        assert winners.count("A") == winners.count("B") == rows[i]["num_kept"] // 2 > 0
        assert len({r["id"] for r in records}) == len(records)  # one judgment per pair
        assert records[0]["messages"][-1]["role"] == "assistant"
        sft_config = (tmp_path / "run" / f"iter-{i}" / "sft" / "run" / "config.yaml").read_text()
        assert f"model: {tiny_model_dir}" in sft_config  # every iteration starts from the seed
    assert rows[2]["model"].endswith("iter-2/sft/run/model")
    assert "| 2 |" in (tmp_path / "run" / "table.md").read_text()

    monkeypatch.setattr(ste, "_annotate", lambda *a: (_ for _ in ()).throw(AssertionError("rerun")))
    assert STE.run(cfg)["final"] == summary["final"]  # every stage reused


def test_the_gold_annotator_writes_perfect_judgments(tiny_model_dir, tmp_path):
    cfg = replace(STE.preset("tiny-smoke"), model=tiny_model_dir, out_dir=str(tmp_path / "run"))
    cfg = replace(cfg, annotator="gold", iterations=1)
    rows = STE.run(cfg)
    records = [json.loads(line) for line in (tmp_path / "run" / "iter-1" / "data" / "sft.jsonl").open()]
    assert rows["final"]["annotator_sample_accuracy"] == 1.0 and len(records) == rows["final"]["num_kept"]
    for record in records:
        judgment = record["messages"][-1]["content"]
        assert judgment.endswith(f"[[{record['winner']}]]") and "Answer:" in judgment


def test_repro_tables_every_arm_and_iteration(tiny_model_dir, tmp_path, monkeypatch):
    from selftaught.repro import self_taught_evaluator as repro_ste

    verdicts = iter(range(100_000))
    monkeypatch.setattr(ste, "judgment_correct", lambda text, winner, template: next(verdicts) % 2 == 0)
    small = {
        "model": tiny_model_dir,
        "num_pairs": 8,
        "iterations": 2,
        "samples_per_pair": 2,
        "max_new_tokens": 8,
        "sft_steps": 2,
        "sft_batch_size": 4,
        "eval_num_pairs": 4,
    }
    table = repro_ste.ste_table(
        str(tmp_path / "repro"), seeds=[0, 1], arms=list(repro_ste.ARMS), overrides=small
    )
    rows = [line.split(" | ")[:2] for line in table.splitlines() if line.startswith("| ") and "+-" in line]
    assert rows == [
        ["| ste", "0"],
        ["| ste", "1"],
        ["| ste", "2"],
        ["| ste-unbalanced", "0"],
        ["| ste-unbalanced", "1"],
        ["| ste-unbalanced", "2"],
        ["| gold", "0"],
        ["| gold", "1"],
    ]
