"""The reward-model recipe: run directory, held-out pairwise accuracy, exact resume, the pairs it builds,
and a real short run that learns."""

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from selftaught.cli import main
from selftaught.recipes.reward_model import (
    RewardModelDataConfig,
    build_reward_model,
    load_pair_records,
)
from selftaught.rewards.reward_model import RewardModel
from selftaught.world.arith import extract_answer, sample_problems
from selftaught.world.sources import wrong_solution

SMOKE = ["reward-model", "--preset", "tiny-smoke"]


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_smoke_run_reports_held_out_accuracy_and_saves_a_loadable_reward_model(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    assert main([*SMOKE, f"out_dir={out}", f"model={tiny_model_dir}"]) == 0
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "log.txt",
        "checkpoints/step-0000004/model.safetensors",
        "model/model.safetensors",
        "model/tokenizer.json",
    ):
        assert (out / name).exists(), name
    metrics = _metrics(out)
    assert [m["step"] for m in metrics if "val_pairwise_accuracy" in m] == [0, 2, 4]
    assert all(0 <= m["val_pairwise_accuracy"] <= 1 for m in metrics if "val_pairwise_accuracy" in m)
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3, 4] and metrics[1]["num_pairs"] == 8
    assert json.loads((out / "model" / "config.json").read_text())["architectures"] == [
        "LlamaForSequenceClassification"
    ]
    scorer = RewardModel.from_pretrained(out / "model")
    values = scorer([[{"role": "user", "content": "1+1"}]] * 2, ["1+1=2 Answer: 2", "1+1=3 Answer: 3"])
    assert all(isinstance(v, float) for v in values)


def test_the_backbone_comes_from_the_causal_lm_and_the_head_from_the_seed(tiny_model_dir):
    causal = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    state = torch.random.get_rng_state()
    model, tokenizer = build_reward_model(tiny_model_dir, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    weights = model.state_dict()
    assert all(torch.equal(weights[k], causal[k]) for k in weights if k != "score.weight")
    assert torch.equal(weights["score.weight"], build_reward_model(tiny_model_dir, seed=5)[0].score.weight)
    assert model.config.pad_token_id == tokenizer.pad_token_id


def test_resume_after_an_interruption_gives_the_same_model(tiny_model_dir, tmp_path):
    common = [*SMOKE, f"model={tiny_model_dir}", "eval.every=0"]
    assert main([*common, f"out_dir={tmp_path / 'straight'}"]) == 0
    interrupted = tmp_path / "interrupted"
    assert main([*common, f"out_dir={interrupted}"]) == 0
    shutil.rmtree(interrupted / "checkpoints" / "step-0000004")  # as if killed after the step-2 checkpoint
    shutil.rmtree(interrupted / "model")
    assert main([*common, f"out_dir={interrupted}"]) == 0
    straight, resumed = (
        load_file(tmp_path / "straight" / "model" / "model.safetensors"),
        load_file(interrupted / "model" / "model.safetensors"),
    )
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_gradient_accumulation_equals_one_big_batch(tiny_model_dir, tmp_path):
    common = [*SMOKE, f"model={tiny_model_dir}", "eval.every=0", "checkpoint_every=0", "num_steps=2"]
    assert main([*common, f"out_dir={tmp_path / 'one'}", "micro_batch_pairs=0"]) == 0
    assert main([*common, f"out_dir={tmp_path / 'many'}", "micro_batch_size=3"]) == 0  # the old name
    losses = {
        name: [m[key] for m in _metrics(tmp_path / name) if "loss" in m for key in ("loss", "grad_norm")]
        for name in ("one", "many")
    }
    # Loss and grad norm of steps 1 and 2; step 2's loss comes after step 1's update, so equal losses
    # mean equal updates. Weights are not compared: Adam's first update is lr * sign(grad), which the
    # float rounding of a near-zero gradient can flip.
    assert losses["many"] == pytest.approx(losses["one"], rel=1e-5)


def test_world_pairs_prefer_the_correct_solution_and_hold_out_valid_problems():
    train, valid = load_pair_records(RewardModelDataConfig(num_pairs=300, num_valid_pairs=60))
    assert {r["kind"] for r in train + valid} == {"carry"} and len(train) == 300 and len(valid) == 60
    mixed, _ = load_pair_records(RewardModelDataConfig(num_pairs=300, num_valid_pairs=60, off_by_one=True))
    assert {r["kind"] for r in mixed} == {"carry", "off_by_one"}
    for record in train + valid + mixed:
        assert extract_answer(record["chosen"][0]["content"]) == int(record["answer"])
        assert extract_answer(record["rejected"][0]["content"]) != int(record["answer"])
    train_questions = {r["prompt"][0]["content"] for r in train}
    assert not train_questions & {r["prompt"][0]["content"] for r in valid}
    assert (
        load_pair_records(RewardModelDataConfig(num_pairs=300, num_valid_pairs=60))[0] == train
    )  # deterministic


def test_wrong_solutions_are_buggy_carries_or_off_by_one_last_steps():
    problems = sample_problems("train", 200, [1, 2, 3], seed=0)
    rng = random.Random(0)
    solved = [(p, *wrong_solution(p, rng)) for p in problems]
    carry = [(p, s) for p, kind, s in solved if kind == "carry"]
    off = [(p, s) for p, kind, s in solved if kind == "off_by_one"]
    assert carry and off
    assert all(abs(extract_answer(s) - p.answer) in (1, 10) for p, s in off)
    # each forgotten carry makes an addition 10 short, and the error carries through to the answer
    assert all(extract_answer(s) < p.answer and (p.answer - extract_answer(s)) % 10 == 0 for p, s in carry)


def test_length_bias_pairs_prefer_the_longer_correct_solution():
    train, _ = load_pair_records(RewardModelDataConfig(num_pairs=200, num_valid_pairs=20, length_bias=0.5))
    length = [r for r in train if r["kind"] == "length"]
    assert 60 < len(length) < 140
    for record in length:
        chosen, rejected = record["chosen"][0]["content"], record["rejected"][0]["content"]
        assert len(chosen) > len(rejected) and extract_answer(chosen) == extract_answer(rejected)


def test_a_preference_file_is_split_by_prompt(tiny_model_dir, tmp_path):
    rows = [{"prompt": f"Question {i % 40}", "chosen": f" {i}", "rejected": f" {i + 1}"} for i in range(400)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train, valid = load_pair_records(
        RewardModelDataConfig(source=str(path), valid_source=None, valid_fraction=0.25)
    )
    assert len(train) + len(valid) == 400 and 0 < len(valid) < 200
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in valid}
    out = tmp_path / "run"
    assert (
        main(
            [
                *SMOKE,
                f"out_dir={out}",
                f"model={tiny_model_dir}",
                f"data.source={path}",
                "data.valid_fraction=0.25",
            ]
        )
        == 0
    )
    assert "val_pairwise_accuracy" in _metrics(out)[-1]


def test_a_short_run_learns_a_length_preference(tiny_model_dir, tmp_path):
    """Measured: from the random tiny model, length pairs (grouped vs chain solution) go from a loss
    of about log 2 to held-out accuracy 1.0 within 6 steps of 16 pairs at lr 3e-3."""
    out = tmp_path / "run"
    assert (
        main(
            [
                *SMOKE,
                f"out_dir={out}",
                f"model={tiny_model_dir}",
                "num_steps=10",
                "batch_size=16",
                "optim.lr=3e-3",
                "data.length_bias=1.0",
                "data.num_pairs=200",
                "data.num_valid_pairs=64",
                "eval.every=0",
                "checkpoint_every=0",
            ]
        )
        == 0
    )
    evals = [m for m in _metrics(out) if "val_pairwise_accuracy" in m]
    before, after = evals[0], evals[-1]
    assert after["val_pairwise_accuracy_length"] > 0.9
    assert before["val_loss"] > 0.6 and after["val_loss"] < 0.3


@pytest.mark.slow
def test_tiny_world_reward_model_separates_correct_from_buggy_solutions(tmp_path):
    """From the student (cached; trained on first use), correct vs forgotten-carry pairs, 32 per step
    (the `tiny` preset's 300 steps, about 20 s). Measured held-out accuracy: .49 at step 0, .79 at
    step 150 and .977 at step 300 from the current student; the first student (before fused AdamW
    changed its training) reached .97 by step 150."""
    out = tmp_path / "run"
    assert main(["reward-model", f"out_dir={out}", "eval.every=0", "checkpoint_every=0"]) == 0
    evals = [m for m in _metrics(out) if "val_pairwise_accuracy" in m]
    assert evals[0]["val_pairwise_accuracy"] < 0.7 and evals[-1]["val_pairwise_accuracy"] > 0.9
