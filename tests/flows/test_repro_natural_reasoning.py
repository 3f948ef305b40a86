"""`selftaught repro natural-reasoning`: both arms of a size get the same examples and steps; the
tables average over seeds (mean +- se) and land between the study's markers."""

from selftaught.repro.natural_reasoning import (
    BEGIN,
    END,
    distill_config,
    format_distill,
    format_self_train,
    write_results,
)

ACC = {
    "arith": 0.5,
    "units": 0.2,
    "sort": 0.1,
    "logic": 0.3,
    "graph": 0.0,
    "reverse": 0.1,
    "unitsum": 0.05,
    "average": 0.2,
    "ood": 0.05,
}


def summary(shift):
    acc = {k: v + shift for k, v in ACC.items()}
    return {
        "annotate": {"num_documents": 10, "num_unparsed": 0, "num_kept": 5},
        "backtranslate": {
            "num_questions": 5,
            "answer_buckets": {"none": 0, "single": 5, "short": 0, "long": 0},
        },
        "dedup": {"removed": {"minhash": 0, "embedding": 0}},
        "decontam": {"num_clean": 4, "removed": {}},
        "distill": {"accuracy": acc},
    }


def test_both_arms_of_a_size_train_the_same_steps_on_the_same_count():
    diverse, arith = (
        distill_config("out", arm, 400, 1, epochs=8, student="scratch:xs") for arm in ("diverse", "arith")
    )
    assert (
        diverse.num_examples == arith.num_examples == 400
        and diverse.sft.num_steps == arith.sft.num_steps == 100
    )
    assert arith.families == ["arith"] and len(diverse.families) == 6 and diverse.seed == 1
    assert diverse.out_dir == "out/distill/diverse-400/seed-1"


def test_tables_report_mean_and_standard_error_over_seeds(tmp_path):
    table = format_distill({("diverse", 400): [summary(0.0), summary(0.1)]}, [0, 1], 8, "scratch:xs")
    assert "| diverse | 400 | 4 | 55.0 +- 5.0 | 25.0 +- 5.0 | 10.0 +- 5.0 |" in table
    runs = [
        {"baseline": ACC, "rft majority": ACC, "majority counts": {"num_rft": 7}, "dpo majority": None}
    ] * 2
    st = format_self_train(runs, [0, 1])
    assert "| baseline | 20.0 +- 0.0 | 5.0 +- 0.0 | 50.0 +- 0.0 | - |" in st
    assert "| rft majority | 20.0 +- 0.0 | 5.0 +- 0.0 | 50.0 +- 0.0 | 7 |" in st
    assert "| dpo majority | (no training data in some seed)" in st
    results = tmp_path / "results.md"
    results.write_text(f"# Results\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    write_results(results, table, "selftaught repro natural-reasoning")
    text = results.read_text()
    assert "old" not in text and table in text and text.endswith("after\n") and text.count(BEGIN) == 1
