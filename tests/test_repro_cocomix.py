"""`selftaught repro cocomix` without training: arm configs, the FLOP-matched arm, the table, and
the docs section it rewrites between its markers."""

from pathlib import Path

from selftaught.config import apply_overrides
from selftaught.configs.cocomix import MixerMode
from selftaught.presets import RECIPES
from selftaught.repro import cocomix as repro


def test_arms_share_the_teacher_and_differ_only_by_their_overrides(tmp_path):
    base = RECIPES["cocomix"].preset("tiny")
    ntp = repro.arm_config(base, str(tmp_path), "ntp", 1)
    assert ntp.out_dir == f"{tmp_path}/ntp/seed-1" and ntp.seed == 1
    assert ntp.mixer == MixerMode.NONE and ntp.match_active_params and ntp.concept_weight == 0
    cocomix = repro.arm_config(base, str(tmp_path), "cocomix", 1)
    assert cocomix.teacher.dir == ntp.teacher.dir == f"{tmp_path}/teacher"
    weak = repro.arm_config(base, str(tmp_path), "w2s-cocomix", 1)
    assert weak.teacher.shape.hidden_size == 32 < weak.student.hidden_size
    flops = repro.arm_config(base, str(tmp_path), "ntp-flops", 1)
    assert flops.mixer == MixerMode.NONE and flops.num_steps > base.num_steps  # CoCoMix costs more per token


def test_the_fingerprint_of_a_teacherless_arm_ignores_the_teacher(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(repro, "run_once", lambda out, fingerprint, fn: seen.append(fingerprint) or {})
    base = RECIPES["cocomix"].preset("tiny")
    for arm in ("ntp", "cocomix"):
        cfg = repro.arm_config(base, str(tmp_path), arm, 0)
        repro.run_arm(cfg)
        repro.run_arm(apply_overrides(cfg, ["teacher.shape.hidden_size=32", "teacher.shape.ffn_size=128"]))
    assert seen[0] == seen[1] and seen[2] != seen[3]


def run_summary(seed, ppl, **extra):
    return {"seed": seed, "val_ppl": ppl, "curve": [(0, 250.0), (100, ppl + 10), (200, ppl + 2), (300, ppl)],
            "active_params": 1000, "train_flops_per_token": 2e6, "steps": 300, "wall_seconds": 10.0, **extra}  # fmt: skip


def test_the_table_pairs_each_arm_with_ntp_by_seed():
    results = {
        "ntp": [run_summary(0, 20.0), run_summary(1, 22.0)],
        "cocomix": [run_summary(0, 19.0, val_concept_top1_acc=0.1, val_concept_top8_acc=0.5),
                    run_summary(1, 20.0, val_concept_top1_acc=0.2, val_concept_top8_acc=0.7)],
    }  # fmt: skip
    table = repro.format_table(results, [0, 1], RECIPES["cocomix"].preset("tiny"))
    row = next(line for line in table.splitlines() if line.startswith("| cocomix"))
    assert "19.50 +- 0.50" in row and "-1.50 +- 0.50" in row and "0.150 / 0.600" in row
    assert "29.50 (step 100)" in row


def test_results_are_written_between_markers(tmp_path):
    doc = Path(tmp_path / "results.md")
    doc.write_text("# Results\n\nother section\n")
    repro.write_results(doc, "| a |\n", "selftaught repro cocomix")
    first = doc.read_text()
    assert first.startswith("# Results\n\nother section\n") and "| a |" in first
    repro.write_results(doc, "| b |\n", "selftaught repro cocomix")
    second = doc.read_text()
    assert "| b |" in second and "| a |" not in second and second.count(repro.BEGIN) == 1
