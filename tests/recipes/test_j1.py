"""`selftaught j1` (the online loop with judge prompts, J1's rewards and judge validation): siblings
train side by side, validation logs the both-order judge metrics, a killed run resumes exactly, and
online-rl's config (hence its runs' fingerprints) is unchanged by the judge section."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from selftaught.cli import main
from selftaught.config import to_dict
from selftaught.configs.recipes import OnlineRLConfig
from selftaught.presets import RECIPES
from selftaught.runlog import read_metrics
from selftaught.train.rollouts import build_rollout_source

J1 = RECIPES["j1"]
JUDGE_METRICS = (
    "val_accuracy",
    "val_accuracy_chosen_first",
    "val_accuracy_chosen_second",
    "val_consistent_accuracy",
    "val_tie_rate",
    "val_unparsed_rate",
    "val_thinking_accuracy",
)


def test_j1_trains_on_both_orders_and_validates_the_judge(tiny_model_dir, tmp_path):
    cfg = replace(
        J1.preset("tiny-smoke"), model=tiny_model_dir, out_dir=str(tmp_path / "run"), save_rollouts=True
    )
    J1.run(cfg)
    rows = read_metrics(cfg.out_dir)
    steps = [r for r in rows if "loss" in r]
    assert len(steps) == cfg.num_steps and all(r["num_sequences"] == 16 for r in steps)
    validations = [r for r in rows if "val_accuracy" in r]
    assert [r["step"] for r in validations] == [0, 2, 4]
    assert all(key in validations[-1] for key in JUDGE_METRICS)
    for step in range(1, cfg.num_steps + 1):
        groups = [
            json.loads(line) for line in (tmp_path / "run" / "rollouts" / f"step-{step:07d}.jsonl").open()
        ]
        orders = [g["prompt"]["meta"]["order"] for g in groups]
        pair_ids = [g["prompt"]["meta"]["pair_id"] for g in groups]
        assert (
            orders == ["ab", "ba", "ab", "ba"] and pair_ids[0] == pair_ids[1] and pair_ids[2] == pair_ids[3]
        )

    # eval-judge on the last checkpoint reports what the run's final validation measured
    out = tmp_path / "eval.json"
    argv = ["eval-judge", "--model", tiny_model_dir, "--checkpoint", str(tmp_path / "run" / "checkpoints")]
    argv += ["--data", "world:valid", "--limit", "8", "--template", "world-pairwise-verdict@1"]
    assert main([*argv, "--max-new-tokens", "40", "--batch-size", "64", "--out", str(out)]) == 0
    report, final = json.loads(out.read_text()), validations[-1]
    assert report["metrics"]["accuracy"] == final["val_accuracy"]
    assert report["metrics"]["unparsed_rate"] == final["val_unparsed_rate"]
    assert report["thinking_accuracy"] == final["val_thinking_accuracy"]
    assert report["mean_tokens"] == final["val_mean_tokens"]
    assert main([*argv[:4], str(tmp_path / "nowhere"), *argv[5:]]) != 0  # "no model.safetensors here"


def test_the_judge_section_is_hidden_while_unset_and_online_rl_is_unchanged():
    assert "judge" not in to_dict(OnlineRLConfig())
    assert "judge" not in to_dict(RECIPES["online-rl"].preset("tiny"))
    assert to_dict(J1.preset("tiny"))["judge"]["pairs"] == "world:train"
    online = RECIPES["online-rl"].preset("tiny-smoke")
    source = build_rollout_source(online.rollouts, online.tasks, None, seed=0, judge=online.judge)
    assert source.scorer is None and source.step_prompts(1)[0].task == "arith"


def test_single_order_arm_keeps_the_prompts_per_step(tmp_path):
    cfg = J1.preset("tiny-smoke")
    single = replace(cfg.judge, orders="single")
    source = build_rollout_source(cfg.rollouts, cfg.tasks, None, seed=0, judge=single)
    prompts = source.step_prompts(1)
    assert len(prompts) == cfg.rollouts.num_prompts and len({p.meta["pair_id"] for p in prompts}) == 4


def _j1_cmd(model, out):
    return [
        sys.executable,
        "-m",
        "selftaught.cli",
        "j1",
        "--preset",
        "tiny-smoke",
        f"model={model}",
        f"out_dir={out}",
        "num_steps=6",
        "checkpoint_every=1",
        "keep_last=null",
        "eval.every=-1",
    ]


def test_killed_run_resumes_exactly(tiny_model_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # same threads in every process: same float sums
    subprocess.run(_j1_cmd(tiny_model_dir, tmp_path / "straight"), env=env, check=True, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _j1_cmd(tiny_model_dir, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step-0000003").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its 3rd step checkpoint"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "model").exists(), "the run finished before it was killed"
    resumed_from = max(int(p.name.split("-")[1]) for p in (killed / "checkpoints").glob("step-*"))

    subprocess.run(_j1_cmd(tiny_model_dir, killed), env=env, check=True, capture_output=True)
    straight = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    resumed = load_file(killed / "model" / "model.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    rewards = {}
    for name in ("straight", "killed"):
        for record in read_metrics(tmp_path / name):
            if "reward" in record:
                rewards[name, record["step"]] = (record["reward"], record["loss"])
    assert all(rewards["killed", s] == rewards["straight", s] for s in range(resumed_from + 1, 7))
    assert "resuming from step" in (killed / "log.txt").read_text()


def test_repro_j1_tables_every_arm_over_seeds_and_writes_the_results_section(tiny_model_dir, tmp_path):
    from selftaught.configs.train import RolloutConfig
    from selftaught.repro import j1 as repro_j1

    small = {
        "model": tiny_model_dir,
        "rollouts": RolloutConfig(num_prompts=4, samples_per_prompt=2, max_new_tokens=8),
    }
    table = repro_j1.j1_table(
        str(tmp_path / "repro"), seeds=[0, 1], arms=list(J1.arms), num_steps=2, num_pairs=4, overrides=small
    )
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| seed judge", *(f"| {arm}" for arm in J1.arms)]
    assert all(len(row.split(" | ")) == 10 and "+-" in row for row in rows[2:])  # 9 columns after the arm
    again = repro_j1.j1_table(
        str(tmp_path / "repro"), seeds=[0, 1], arms=list(J1.arms), num_steps=2, num_pairs=4, overrides=small
    )
    assert again.split("\n")[4:] == table.split("\n")[4:]  # finished runs are reused, not rerun
    results = tmp_path / "results.md"
    results.write_text("# Results\n")
    repro_j1.write_results(results, table, "selftaught repro j1")
    repro_j1.write_results(results, table, "selftaught repro j1")
    text = results.read_text()
    assert text.count(repro_j1.BEGIN) == 1 and "J1 in the tiny world" in text


def test_repro_j1_lists_world_runs_the_pointwise_arm_and_tables_ties(tiny_model_dir, tmp_path):
    from selftaught.configs.train import RolloutConfig
    from selftaught.repro import j1 as repro_j1

    small = {
        "model": tiny_model_dir,
        "rollouts": RolloutConfig(num_prompts=4, samples_per_prompt=2, max_new_tokens=8),
    }
    table = repro_j1.j1_table(
        str(tmp_path / "repro"),
        seeds=[0],
        arms=["single-order", "pointwise"],
        num_steps=2,
        num_pairs=4,
        overrides=small,
        world="lists",
    )
    header, *rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert "ties" in header and "acc when thinking right" in header and "world-lists:valid" in table
    assert [row.split(" | ")[0] for row in rows] == [
        "| seed judge",
        "| single-order",
        "| pointwise, before training",  # the seed validated pointwise
        "| pointwise",
    ]
    with pytest.raises(ValueError, match="unknown arms"):
        repro_j1.j1_table(str(tmp_path / "x"), seeds=[0], arms=["nope"], num_steps=1, num_pairs=1)
    results = tmp_path / "results.md"
    repro_j1.write_results(results, table, "selftaught repro j1 --world lists", "lists")
    assert "<!-- repro j1 lists: begin -->" in results.read_text()


def test_j1_on_list_pairs_sees_both_orders_of_near_miss_pairs(tiny_model_dir, tmp_path):
    lists = J1.preset("tiny-lists")
    assert lists.judge.pairs == "world-lists:train" and lists.model == "tiny-world-list-judge"
    cfg = replace(
        J1.preset("tiny-smoke"),
        model=tiny_model_dir,
        out_dir=str(tmp_path / "run"),
        num_steps=2,
        save_rollouts=True,
        judge=replace(lists.judge, num_pairs=16, eval_num_pairs=4, eval_max_new_tokens=8),
    )
    J1.run(cfg)
    groups = [json.loads(line) for line in (tmp_path / "run" / "rollouts" / "step-0000001.jsonl").open()]
    shown = [g["prompt"]["messages"][0]["content"] for g in groups]
    assert [g["prompt"]["meta"]["order"] for g in groups] == ["ab", "ba", "ab", "ba"]
    assert all(": " in text and " A: " in text and " B: " in text for text in shown)
    assert any("val_accuracy" in r for r in read_metrics(cfg.out_dir))


def test_the_gpu_preset_is_a_thinking_chat_judge_sampled_by_vllm_and_sharded():
    cfg = J1.preset("llama3-8b-vllm")
    assert (cfg.generator.kind, cfg.parallel.strategy, str(cfg.precision), cfg.lora.r) == (
        "vllm",
        "fsdp2",
        "bf16",
        0,
    )
    assert (cfg.judge.template, cfg.judge.prompt_style) == ("j1-pairwise-verdict@1", "chat")
    assert cfg.judge.pairs.endswith("gsm8k/train.jsonl") and cfg.judge.eval_pairs.endswith("gsm8k/test.jsonl")
