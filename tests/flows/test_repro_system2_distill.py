"""`selftaught repro system2-distill` on the scripted world oracle: arms over seeds share their System 2
samples, the table has mean +- se per arm, and the results file gets it between markers."""

from selftaught.repro import system2_distill as repro
from tests.flows.system2_oracle import patch


def test_table_over_seeds_with_shared_samples(tiny_model_dir, tmp_path, monkeypatch):
    oracle = patch(tiny_model_dir, noise=0.1, monkeypatch=monkeypatch)
    overrides = (
        f"model={tiny_model_dir}",
        "num_inputs=16",
        "samples=4",
        "min_share=0.5",
        "sft_steps=2",
        "sft_batch_size=8",
        "eval_num=8",
        "shard_size=8",
    )
    arms = ["letters", "letters-no-filter", "judge-swap"]
    table = repro.system2_table(str(tmp_path), seeds=[0, 1], arms=arms, overrides=overrides)
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in lines[1:]] == [f"| {arm}" for arm in arms]
    assert all(" +- " in line for line in lines[1:])
    assert (tmp_path / "samples" / "letters-seed-0" / "manifest.json").is_file()
    assert not (tmp_path / "letters-no-filter" / "seed-0" / "system2").exists()  # shared, not resampled
    assert (tmp_path / "samples" / "judge-seed-1-swapped" / "manifest.json").is_file()
    judge = lines[-1].split(" | ")
    assert judge[7] != "-" and lines[1].split(" | ")[7] == "-"  # % inconsistent only for the judge
    calls = oracle.calls
    assert repro.system2_table(str(tmp_path), seeds=[0, 1], arms=arms, overrides=overrides) == table
    assert oracle.calls == calls  # a finished repro reruns nothing

    results = tmp_path / "results.md"
    results.write_text("# Results\n\nbefore\n")
    repro.write_results(results, table, "selftaught repro system2-distill --seeds 0 1")
    repro.write_results(results, table, "selftaught repro system2-distill --seeds 0 1")
    text = results.read_text()
    assert text.count(repro.BEGIN) == 1 and "before" in text and table in text
