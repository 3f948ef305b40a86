"""`selftaught demo` end to end at toy size: every stage runs, the report has one row per stage with
the accuracy recomputed from the saved models ("all" = the levels `selftaught eval` evaluates by
default, level 4 in its own column), and a rerun reuses the stages' models."""

import re

from selftaught import demo
from selftaught.models.io import load_model
from selftaught.train.evaluation import evaluate_policy
from selftaught.train.loop import EvalConfig


def test_the_flywheel_writes_a_report_with_every_stage_and_reuses_finished_stages(tiny_model_dir, tmp_path):
    out = tmp_path / "demo"
    result = demo.run_demo(
        str(out), student=tiny_model_dir, sft_steps=2, rl_steps=2, per_level=3, levels=(1, 2, 4)
    )
    report = (out / "report.md").read_text()
    assert "| stage | level 1 | level 2 | level 4 | all: levels 1,2 (+- se) |" in report
    test = EvalConfig(data="world:test", per_level=3, levels=[1, 2])  # what `selftaught eval` takes
    for stage, model_dir in [
        ("student", tiny_model_dir),
        ("sft", out / "sft/model"),
        ("rl", out / "rl/model"),
    ]:
        expected = evaluate_policy(*load_model(str(model_dir)), test).accuracy
        assert result[stage] == expected
        assert re.search(rf"\| {stage} \|.*\*\*{expected:.3f}\*\*", report)
    assert (out / "rl/report/report.html").is_file()
    written = (out / "sft/model/model.safetensors").stat().st_mtime_ns
    demo.run_demo(str(out), student=tiny_model_dir, sft_steps=2, rl_steps=2, per_level=3, levels=(1, 2, 4))
    assert (out / "sft/model/model.safetensors").stat().st_mtime_ns == written
