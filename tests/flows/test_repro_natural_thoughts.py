"""`selftaught repro natural-thoughts` on a random-init student: every arm runs per seed, shared runs
are run once, the tables and the frontier plot are written, and results.md gets the block."""

from selftaught.repro import natural_thoughts as repro


def test_repro_writes_every_table(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(repro, "SCALE", (4, 8))
    overrides = [
        f"model={tiny_model_dir}",
        f"weak_model={tiny_model_dir}",
        "num_questions=32",
        "sft_batch_size=4",
    ]
    overrides += ["eval_per_level=2", "eval_max_new_tokens=8"]
    table = repro.nt_table(
        str(tmp_path),
        seeds=[0, 1],
        steps=1,
        budget=8,
        overrides=overrides,
        warmup_steps=1,
        warmup_questions=24,
    )
    runs = sorted(p.name for p in (tmp_path / "seed-0").iterdir() if p.name != "pool")
    assert len(runs) == len(set(map(repro.run_name, repro.arms(8).values())))
    assert (tmp_path / "warmup" / "summary.json").exists() and "Warm-up student" in table
    for part in (
        "Selection at an equal budget",
        "Random selection with scale",
        "Mixed targets",
        "Adaptive mode by level",
    ):
        assert part in table
    assert "| disagree |" in table and "| difficulty |" in table and "| mix-0.25 |" in table
    assert (tmp_path / "frontier.png").stat().st_size > 0
    results = tmp_path / "results.md"
    results.write_text("# Results\n")
    repro.write_results(results, table, "cmd", "img/x.png")
    repro.write_results(results, table, "cmd", "img/x.png")
    text = results.read_text()
    assert text.count(repro.BEGIN) == 1 and "![accuracy vs tokens](img/x.png)" in text
