"""world-pretrain `task=system2`: a few steps on the System 2 world's two formats, validation and summary
per task and mode, the `tiny-world-system2` alias."""

import json

from selftaught.models.io import MODEL_ALIASES
from selftaught.presets import get_preset
from selftaught.recipes import TINY_WORLD_SYSTEM2
from selftaught.recipes.world_pretrain import pretrained_student


def test_system2_task_trains_a_few_steps_and_reports_both_formats(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFTAUGHT_CACHE", str(tmp_path))
    cfg = get_preset("world-pretrain", "tiny-system2")
    assert (cfg.task, cfg.bug, cfg.num_steps) == ("system2", 0.08, 3000)
    cfg.num_steps = cfg.optim_steps = 3
    cfg.optim.warmup_steps = 1
    cfg.num_examples, cfg.eval.every, cfg.eval.per_level, cfg.test_per_level = 128, 3, 2, 2
    model_dir = pretrained_student(cfg, log=False)
    assert model_dir.parent.name.startswith("system2-student-")
    summary = json.loads((model_dir.parent / "summary.json").read_text())
    assert summary["task"] == "system2" and summary["steps"] == 3
    for task in ("letters", "swaps", "judge"):
        for mode in ("s1", "s2"):
            assert 0 <= summary[f"{task}_{mode}_accuracy"] <= 1 and summary[f"{task}_{mode}_tokens"] > 0
        assert 0 <= summary[f"judge_{mode}_inconsistent"] <= 1
    records = [json.loads(line) for line in (model_dir.parent / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_letters_s2_accuracy" in r] == [0, 3]
    assert TINY_WORLD_SYSTEM2 in MODEL_ALIASES
