"""`selftaught self-taught-evaluator`: judgments sampled, only correct ones kept (one per pair, A/B
balanced), the seed judge SFT-ed anew each iteration on the previous judge's annotations, every stage
reused on a rerun."""

import json
import re
from dataclasses import replace

import pytest

from selftaught.flows import self_taught_evaluator as ste
from selftaught.presets import RECIPES

STE = RECIPES["self-taught-evaluator"]


def test_the_loop_keeps_balanced_correct_judgments_and_trains_from_the_seed(
    tiny_model_dir, tmp_path, monkeypatch
):
    # a random-init judge never writes a verdict: call every other sampled judgment right
    verdicts = iter(range(10_000))
    monkeypatch.setattr(ste, "judgment_correct", lambda text, winner, template: next(verdicts) % 2 == 0)
    cfg = replace(STE.preset("tiny-smoke"), model=tiny_model_dir, out_dir=str(tmp_path / "run"))
    summary = STE.run(cfg)
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())["iterations"]
    assert [r["iteration"] for r in rows] == [0, 1, 2] and summary["final"]["iteration"] == 2
    for i in (1, 2):
        records = [
            json.loads(line) for line in (tmp_path / "run" / f"iter-{i}" / "data" / "sft.jsonl").open()
        ]
        winners = [r["winner"] for r in records]
        assert winners.count("A") == winners.count("B") == rows[i]["num_kept"] // 2 > 0
        assert len({r["id"] for r in records}) == len(records)  # one judgment per pair
        assert records[0]["messages"][-1]["role"] == "assistant"
        sft_config = (tmp_path / "run" / f"iter-{i}" / "sft" / "run" / "config.yaml").read_text()
        assert f"model: {tiny_model_dir}" in sft_config  # every iteration starts from the seed
    assert rows[2]["model"].endswith("iter-2/sft/run/model")
    assert "| 2 |" in (tmp_path / "run" / "table.md").read_text()

    monkeypatch.setattr(ste, "_annotate", lambda *a: (_ for _ in ()).throw(AssertionError("rerun")))
    assert STE.run(cfg)["final"] == summary["final"]  # every stage reused


def test_the_gold_annotator_writes_perfect_judgments(tiny_model_dir, tmp_path):
    cfg = replace(STE.preset("tiny-smoke"), model=tiny_model_dir, out_dir=str(tmp_path / "run"))
    cfg = replace(cfg, annotator="gold", iterations=1)
    rows = STE.run(cfg)
    records = [json.loads(line) for line in (tmp_path / "run" / "iter-1" / "data" / "sft.jsonl").open()]
    assert rows["final"]["annotator_sample_accuracy"] == 1.0 and len(records) == rows["final"]["num_kept"]
    for record in records:
        judgment = record["messages"][-1]["content"]
        assert judgment.endswith(f"[[{record['winner']}]]") and "Answer:" in judgment


def test_repro_tables_every_arm_and_iteration(tiny_model_dir, tmp_path, monkeypatch):
    from selftaught.repro import self_taught_evaluator as repro_ste

    verdicts = iter(range(100_000))
    monkeypatch.setattr(ste, "judgment_correct", lambda text, winner, template: next(verdicts) % 2 == 0)
    small = {
        "model": tiny_model_dir,
        "num_pairs": 8,
        "iterations": 2,
        "samples_per_pair": 2,
        "max_new_tokens": 8,
        "sft_steps": 2,
        "sft_batch_size": 4,
        "eval_num_pairs": 4,
    }
    table = repro_ste.ste_table(
        str(tmp_path / "repro"), seeds=[0, 1], arms=list(repro_ste.ARMS), overrides=small
    )
    rows = [line.split(" | ")[:2] for line in table.splitlines() if line.startswith("| ") and "+-" in line]
    assert rows == [
        ["| ste", "0"],
        ["| ste", "1"],
        ["| ste", "2"],
        ["| ste-unbalanced", "0"],
        ["| ste-unbalanced", "1"],
        ["| ste-unbalanced", "2"],
        ["| gold", "0"],
        ["| gold", "1"],
    ]
    lists = {**small, "eval_majority_k": 2, "eval_extra": ["world-lists:heldout"], "max_new_tokens": 4}
    table = repro_ste.ste_table(
        str(tmp_path / "lists"), seeds=[0], arms=["ste", "ste-corruption"], overrides=lists, world="lists"
    )
    rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ste")]
    assert [row[:2] for row in rows] == [["| ste", "0"], ["| ste", "1"], ["| ste", "2"]] + [
        ["| ste-corruption", str(i)] for i in range(3)
    ]
    header = next(line for line in table.splitlines() if line.startswith("| arm"))
    assert "maj@5 acc" in header and "acc held-out families" in header
    assert all(cell != "-" for cell in rows[0][2:4])  # near-miss accuracy of the seed (flip: no decided pair)
    assert "`world-lists:train` pairs" in table
    with pytest.raises(ValueError, match="not arms of --world arith"):
        repro_ste.ste_table(str(tmp_path / "x"), seeds=[0], arms=["ste-dpo"], overrides=small)
    results = tmp_path / "results.md"
    results.write_text("# results\n")
    repro_ste.write_results(results, table, "selftaught repro self-taught-evaluator --world lists", "lists")
    repro_ste.write_results(results, table, "again", "lists")
    text = results.read_text()
    assert (
        text.count("<!-- repro self-taught-evaluator lists: begin -->") == 1
        and "_Regenerated by `again`._" in text
    )


def test_dpo_nll_stage_trains_the_sft_judge_on_correct_vs_wrong_judgments(
    tiny_model_dir, tmp_path, monkeypatch
):
    verdicts = iter(range(10_000))
    monkeypatch.setattr(ste, "judgment_correct", lambda text, winner, template: next(verdicts) % 2 == 0)
    cfg = replace(
        STE.preset("tiny-smoke"),
        model=tiny_model_dir,
        out_dir=str(tmp_path / "run"),
        iterations=1,
        dpo_steps=2,
    )
    rows = STE.run(cfg)
    pairs = [json.loads(line) for line in (tmp_path / "run" / "iter-1" / "data" / "dpo.jsonl").open()]
    assert pairs and all(p["chosen"][0]["role"] == p["rejected"][0]["role"] == "assistant" for p in pairs)
    dpo_config = (tmp_path / "run" / "iter-1" / "dpo" / "run" / "config.yaml").read_text()
    assert "iter-1/sft/run/model" in dpo_config and "nll_scale: 1.0" in dpo_config  # from the SFT judge
    assert rows["final"]["model"].endswith("iter-1/dpo/run/model")


def test_list_pairs_gold_judgments_unbalanced_positions_and_extra_evaluations(tiny_model_dir, tmp_path):
    cfg = replace(
        STE.preset("tiny-smoke"),
        model=tiny_model_dir,
        out_dir=str(tmp_path / "run"),
        pairs="world-lists:train",
        eval_pairs="world-lists:valid",
        eval_extra=["world-lists:test:random_corruption"],
        eval_majority_k=3,
        annotator="gold",
        iterations=1,
        chosen_first_share=1.0,
        max_new_tokens=4,
    )
    # every pair shown with the right output as A: balancing would keep nothing, and says why
    with pytest.raises(ValueError, match="all of one verdict letter, and balance_labels truncated"):
        STE.run(cfg)
    rows = STE.run(replace(cfg, balance_labels=False, out_dir=str(tmp_path / "unbalanced")))
    records = [
        json.loads(line) for line in (tmp_path / "unbalanced" / "iter-1" / "data" / "sft.jsonl").open()
    ]
    assert {r["winner"] for r in records} == {"A"} and len(records) == rows["final"][
        "num_kept"
    ] == cfg.num_pairs
    cfg = replace(cfg, chosen_first_share=0.5, out_dir=str(tmp_path / "run2"))
    rows = STE.run(cfg)["final"]
    records = [json.loads(line) for line in (tmp_path / "run2" / "iter-1" / "data" / "sft.jsonl").open()]
    for record in records:
        trace = record["messages"][-1]["content"]
        yes_no = re.findall(r"\b(yes|no)\b", trace)
        assert yes_no == (["yes", "no"] if record["winner"] == "A" else ["no", "yes"])
        assert trace.endswith(f" [[{record['winner']}]]")
    assert {"world-lists:test:random_corruption/accuracy", "maj_accuracy", "maj_flip_rate"} <= set(rows)


def test_raw_text_judges_train_on_plain_prompt_completion_records_with_lora(
    tiny_model_dir, tmp_path, monkeypatch
):
    from selftaught.configs.train import LoraConfig

    verdicts = iter(range(10_000))
    monkeypatch.setattr(ste, "judgment_correct", lambda text, winner, template: next(verdicts) % 2 == 0)
    cfg = replace(
        STE.preset("tiny-smoke"),
        model=tiny_model_dir,
        out_dir=str(tmp_path / "run"),
        iterations=1,
        template="world-pairwise-fewshot@1",
        prompt_style="text",
        stop=["\n"],
        dpo_steps=2,
        lora=LoraConfig(r=4, alpha=8),
    )
    STE.run(cfg)
    data = tmp_path / "run" / "iter-1" / "data"
    records = [json.loads(line) for line in (data / "sft.jsonl").open()]
    assert records and all(r["prompt"].endswith("Correct:") and "messages" not in r for r in records)
    pairs = [json.loads(line) for line in (data / "dpo.jsonl").open()]
    assert pairs and all(isinstance(p["prompt"], str) and isinstance(p["chosen"], str) for p in pairs)
    for stage in ("sft", "dpo"):
        assert "r: 4" in (tmp_path / "run" / "iter-1" / stage / "run" / "config.yaml").read_text()


def test_the_gpu_preset_samples_and_evaluates_through_vllm_and_trains_lora_in_bf16(
    tiny_model_dir, monkeypatch
):
    import selftaught.engines.vllm as vllm_engines

    cfg = STE.preset("llama3-8b-vllm")
    assert (cfg.engine, str(cfg.precision), cfg.lora.r, cfg.template) == (
        "vllm",
        "bf16",
        16,
        "ste-pairwise@1",
    )
    started = []
    monkeypatch.setattr(vllm_engines, "VLLMEngine", lambda model: started.append(model) or "vllm engine")
    assert ste.judge_engine(cfg, tiny_model_dir) == "vllm engine" and started == [tiny_model_dir]
    assert type(ste.judge_engine(replace(cfg, engine="hf"), tiny_model_dir)).__name__ == "HFEngine"


def test_pairs_synthesised_from_instructions_feed_the_loop(tiny_model_dir, tmp_path, monkeypatch):
    from selftaught.engines.scripted import ScriptedEngine
    from tests.pipelines.test_ste_pairs import INSTRUCTIONS, fake_llm

    instructions = tmp_path / "instructions.jsonl"
    instructions.write_text("".join(json.dumps(r) + "\n" for r in INSTRUCTIONS))
    built = []
    monkeypatch.setattr(ste, "build_engine", lambda spec: built.append(spec) or ScriptedEngine(fake_llm))
    verdicts = iter(range(10_000))
    monkeypatch.setattr(ste, "judgment_correct", lambda text, winner, template: next(verdicts) % 2 == 0)
    cfg = replace(
        STE.preset("tiny-smoke"),
        model=tiny_model_dir,
        out_dir=str(tmp_path / "run"),
        iterations=1,
        instructions=str(instructions),
        pair_generator="some-llm",
        eval_pairs=str(tmp_path / "run" / "pairs" / "pairs.jsonl"),
    )
    STE.run(cfg)
    assert built == ["some-llm"]
    pairs = [json.loads(line) for line in (tmp_path / "run" / "pairs" / "pairs.jsonl").open()]
    assert [p["id"] for p in pairs] == ["q0", "q2"] and pairs[0]["rejected"] == "Physics."
    judged = [json.loads(line) for line in (tmp_path / "run" / "iter-1" / "data" / "sft.jsonl").open()]
    assert judged and all("Why" in r["messages"][-2]["content"] for r in judged)


def test_an_empty_judgment_is_never_a_dpo_rejected_response(tiny_model_dir, tmp_path, monkeypatch):
    from selftaught.engines.scripted import ScriptedEngine

    replies = ["", "work [[A]]", "work [[B]]", "  "]
    monkeypatch.setattr(ste, "judge_engine", lambda *a, **k: ScriptedEngine(lambda p, i: replies[i % 4]))
    cfg = replace(
        STE.preset("tiny-smoke"),
        model=tiny_model_dir,
        out_dir=str(tmp_path / "run"),
        iterations=1,
        dpo_steps=1,
    )
    STE.run(cfg)
    pairs = [json.loads(line) for line in (tmp_path / "run" / "iter-1" / "data" / "dpo.jsonl").open()]
    assert pairs and all(p["rejected"][0]["content"].strip() for p in pairs)  # the other verdict, not blanks
