"""J1 with Gemma 3 270M base as the judge (slow: loads the real model): few-shot world pairs in raw
text, LoRA GRPO steps on both orders, and the judge metrics before and after."""

import math
from dataclasses import replace

import pytest

from selftaught.presets import RECIPES
from selftaught.runlog import read_metrics


@pytest.mark.slow
def test_gemma_judges_both_orders_readably_and_trains(tmp_path):
    j1 = RECIPES["j1"]
    cfg = j1.preset("gemma3-270m")
    cfg = replace(cfg, out_dir=str(tmp_path / "run"), num_steps=1, judge=replace(cfg.judge, eval_num_pairs=4))
    j1.run(cfg)
    rows = read_metrics(cfg.out_dir)
    validations = [r for r in rows if "val_accuracy" in r]
    for when, row in zip(("before", "after"), validations, strict=False):  # shown with -s
        print(when, {k: round(v, 3) for k, v in row.items() if k.startswith("val_")})
    assert len(validations) == 2
    assert validations[0]["val_unparsed_rate"] <= 0.25  # the few-shot template gives readable verdicts
    steps = [r for r in rows if "loss" in r]
    assert len(steps) == 1 and math.isfinite(steps[0]["loss"]) and steps[0]["num_sequences"] == 16
