"""What the report's lines show: TensorBoard's debiased EMA, and x values from what metrics.jsonl
records (cumulative samples and tokens, log_every, the clock of a resumed run)."""

import json
import math

import pytest

from selftaught.report.curves import ema, x_values
from selftaught.report.metrics import load_run


def write_records(run_dir, records, config="log_every: 1\n"):
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / "config.yaml").write_text(config)
    return load_run(run_dir)


def test_ema_is_tensorboards_debiased_average():
    w = 0.6
    m1 = (1 - w) * 1.0
    m2 = w * m1 + (1 - w) * 3.0
    assert ema([1.0, 3.0], w) == pytest.approx([m1 / (1 - w), m2 / (1 - w**2)])
    assert ema([5.0, 5.0, 5.0], w) == pytest.approx([5.0, 5.0, 5.0])  # debiased: no pull towards 0
    assert ema([1.0, 2.0], 0.0) == [1.0, 2.0]  # 0 = off


def test_ema_keeps_gaps_and_skips_them():
    smoothed = ema([1.0, math.nan, 3.0], 0.5)
    assert smoothed[0] == 1.0 and math.isnan(smoothed[1])
    assert smoothed[2] == pytest.approx(ema([1.0, 3.0], 0.5)[1])


@pytest.mark.parametrize("weight", [-0.1, 1.0])
def test_ema_weight_must_be_below_one(weight):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        ema([1.0], weight)


def online_records():
    """online-rl's fields: validation at 0 and 2, 4 prompts a step, tokens only on updated steps."""
    return [
        {"step": 0, "time": 1.0, "val_accuracy": 0.5},
        {"step": 1, "time": 2.0, "num_prompts": 4, "train_tokens_per_s": 50.0, "train_seconds": 2.0},
        {"step": 2, "time": 3.0, "num_prompts": 4, "reward": 0.5},  # no update: no tokens
        {"step": 2, "time": 4.0, "val_accuracy": 0.6},
        {"step": 3, "time": 5.0, "num_prompts": 4, "train_tokens_per_s": 10.0, "train_seconds": 3.0},
    ]


def test_samples_and_tokens_are_cumulative_counts(tmp_path):
    run = write_records(tmp_path / "run", online_records())
    accuracy = run.series["val_accuracy"]
    assert x_values(run, accuracy, "samples") == [0.0, 8.0]
    assert x_values(run, accuracy, "tokens") == [0.0, 100.0]
    assert x_values(run, run.series["num_prompts"], "tokens") == [100.0, 100.0, 130.0]
    assert x_values(run, accuracy, "step") == [0.0, 2.0]
    assert x_values(run, accuracy, "time") == [1.0, 4.0]  # each point at its own record's time


def test_pairs_count_as_samples_and_num_tokens_as_tokens(tmp_path):
    dpo = write_records(tmp_path / "dpo", [{"step": s, "time": s, "num_pairs": 2.0} for s in (1, 2)])
    assert x_values(dpo, dpo.series["num_pairs"], "samples") == [2.0, 4.0]
    sft = write_records(tmp_path / "sft", [{"step": s, "time": s, "num_tokens": 30.0} for s in (1, 2)])
    assert x_values(sft, sft.series["num_tokens"], "tokens") == [30.0, 60.0]


def test_a_logged_count_stands_for_the_steps_log_every_skipped(tmp_path):
    records = [{"step": s, "time": s, "num_tokens": 10.0} for s in (2, 4, 5)]  # num_steps 5
    run = write_records(tmp_path / "run", records, config="log_every: 2\n")
    assert x_values(run, run.series["num_tokens"], "tokens") == [20.0, 40.0, 50.0]


def test_a_resumed_runs_clock_continues(tmp_path):
    records = [{"step": 1, "time": 10.0, "loss": 1.0}, {"step": 2, "time": 3.0, "loss": 0.9}]
    run = write_records(tmp_path / "run", records)
    assert x_values(run, run.series["loss"], "time") == [10.0, 13.0]


def test_an_axis_the_run_does_not_log_names_the_fields(tmp_path):
    run = write_records(tmp_path / "run", [{"step": 1, "time": 1.0, "loss": 1.0}])
    with pytest.raises(ValueError, match=r"--x samples: run run logs no num_prompts or num_pairs"):
        x_values(run, run.series["loss"], "samples")
