"""`selftaught demo` end to end at toy size: every stage runs, the report has one row per stage with
the accuracy recomputed from the saved models, and a rerun reuses the stages' models."""

import re

from selftaught import demo
from selftaught.models.io import load_model
from selftaught.recipes.world_pretrain import greedy_accuracy
from selftaught.world.arith import sample_eval_set, to_prompt


def test_the_flywheel_writes_a_report_with_every_stage_and_reuses_finished_stages(tiny_model_dir, tmp_path):
    out = tmp_path / "demo"
    result = demo.run_demo(
        str(out), student=tiny_model_dir, sft_steps=2, rl_steps=2, per_level=3, levels=(1, 2)
    )
    report = (out / "report.md").read_text()
    prompts = [to_prompt(p) for p in sample_eval_set("test", 3, [1, 2], seed=0)]
    for stage, model_dir in [
        ("student", tiny_model_dir),
        ("sft", out / "sft/model"),
        ("rl", out / "rl/model"),
    ]:
        expected = greedy_accuracy(*load_model(str(model_dir)), prompts).accuracy
        assert result[stage] == expected
        assert re.search(rf"\| {stage} \|.*\*\*{expected:.3f}\*\*", report)
    assert (out / "rl/report/report.html").is_file()
    written = (out / "sft/model/model.safetensors").stat().st_mtime_ns
    demo.run_demo(str(out), student=tiny_model_dir, sft_steps=2, rl_steps=2, per_level=3, levels=(1, 2))
    assert (out / "sft/model/model.safetensors").stat().st_mtime_ns == written
