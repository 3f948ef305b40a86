"""`selftaught repro rag-self-demos`: one flow run per seed (the preset with that seed), a table of
mean +- se per label and cell over the seeds; the mean and error are those of the per-seed rates."""

import math

from selftaught.repro import rag


def _summary(correct: float) -> dict:
    rates = {
        "all": {"correct": correct, "incorrect": 1 - correct, "refuse": 0.0, "n": 10},
        "absent/unknown": {"correct": 0.0, "incorrect": 0.5, "refuse": 0.5, "n": 4},
    }
    return {"rates": {"base, passages": rates, "ra-it, passages": rates}, "winners": {"Rag": 6, "NoRag": 1}}


def test_the_table_gives_the_mean_and_standard_error_over_seeds():
    table = rag.format_table([_summary(0.5), _summary(0.7), _summary(0.9)], [0, 1, 2], "tiny")
    se = 100 * math.sqrt(((0.2**2 + 0 + 0.2**2) / 2) / 3)  # sample std over seeds / sqrt(n)
    assert f"| base, passages | 70.0 +- {se:.1f} | 0.0 +- 0.0 |" in table
    assert "| model, setting | all (10) | absent/unknown (4) |" in table
    assert f"| ra-it, passages | 30.0 +- {se:.1f} | 50.0 +- 0.0 |" in table  # % incorrect
    assert table.count("**% ") == 3 and "NoRag 1, Rag 6" in table


def test_each_seed_runs_the_flow_once_into_its_own_directory(tiny_model_dir, tmp_path):
    overrides = [f"model={tiny_model_dir}", "limit=4", "eval_limit=3", "sft.num_steps=1", "dpo.num_steps=1"]
    table = rag.rag_table(str(tmp_path), seeds=[0, 1], preset="tiny-smoke", overrides=overrides)
    assert (tmp_path / "table.md").read_text() == table
    for seed in (0, 1):
        assert (tmp_path / f"seed-{seed}" / "summary.json").is_file()
    assert "| sd-dpo, no passages | " in table
