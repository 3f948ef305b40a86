"""The online-rl recipe: every setting (offline / semi-online / online DPO, GRPO) runs through the CLI
to a complete run directory; resume in the middle of a semi-online window equals the uninterrupted
run; a mixed-task batch routes a verifiable reward and a reward model by task.

A random-init model never answers a world problem right, so the verifiable reward here is the parity
of the completion's length: groups are then mixed and give pairs and non-zero advantages.
"""

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from selftaught.cli import main
from selftaught.rewards.registry import REWARDS
from selftaught.selection.rollouts import RolloutGroup
from selftaught.train.rollouts import RolloutSource


def parity_reward(prompts, completions, answer, **columns):
    return [float(len(c[0]["content"]) % 2 == 0) for c in completions]


@pytest.fixture(autouse=True)
def _parity(monkeypatch):
    monkeypatch.setitem(REWARDS, "world_answer", parity_reward)


def _run(tiny_model_dir, out: Path, *overrides: str) -> list[dict]:
    argv = ["online-rl", "--preset", "tiny-smoke", f"out_dir={out}", f"model={tiny_model_dir}", *overrides]
    assert main(argv) == 0
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _train_steps(metrics: list[dict]) -> dict[int, dict]:
    return {m["step"]: m for m in metrics if "staleness" in m}


SETTINGS = {
    "offline-dpo": (["sync_every=0"], lambda step: step - 1),
    "semi-online-dpo": (["sync_every=2"], lambda step: (step - 1) % 2),
    "online-dpo": (["sync_every=1"], lambda step: 0),
    "online-dpo-ref-sync": (["sync_every=1", "ref_sync_every=1"], lambda step: 0),
    "grpo": (["loss=grpo", "sync_every=1"], lambda step: 0),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_every_setting_writes_a_complete_run_with_finite_losses_and_its_staleness(
    tiny_model_dir, tmp_path, setting
):
    overrides, expected_staleness = SETTINGS[setting]
    out = tmp_path / setting
    steps = _train_steps(_run(tiny_model_dir, out, *overrides))
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "log.txt",
        "checkpoints/step-0000004/model.safetensors",
        "model/model.safetensors",
    ):
        assert (out / name).exists(), name
    assert (out / "rollouts" / "manifest.json").exists() == (setting == "offline-dpo")
    assert sorted(steps) == [1, 2, 3, 4]
    log = (out / "log.txt").read_text()  # what the console showed: the header and every evaluation
    mode = {"offline-dpo": "offline", "semi-online-dpo": "semi-online"}.get(setting, "online")
    assert f"online-rl: model {tiny_model_dir}, loss {'grpo' if setting == 'grpo' else 'dpo'}" in log
    assert f"({mode})" in log and "tasks [arith: reward world_answer" in log and "batch 4 prompts" in log
    evals = re.findall(r"step (\d+)(?: \(final\))?: val_accuracy \d\.\d{3} \+- \d\.\d{3}", log)
    assert evals == ["0", "2", "4"] and "step 4 (final): val_accuracy" in log
    for step, m in steps.items():
        assert m["staleness"] == expected_staleness(step)
        for key in ("reward", "rollout_length", "rollout_entropy", "loss", "grad_norm", "train_tokens_per_s"):
            assert math.isfinite(m[key]), (step, key)
    if setting == "grpo":
        assert all(m["num_sequences"] == 16 and "kl" in m for m in steps.values())
        assert all(m["ratio"] == pytest.approx(1.0) for m in steps.values())  # strictly on-policy
    else:
        assert all(
            0 < m["pair_yield"] <= 1 and "length_chosen" in m and "logps_rejected" in m
            for m in steps.values()
        )
        assert steps[1]["reward_margin"] == pytest.approx(0, abs=1e-5)  # reference = policy at step 1
    generation_steps = sorted(s for s, m in steps.items() if "generation_seconds" in m)
    assert generation_steps == {"offline-dpo": [], "semi-online-dpo": [1, 3]}.get(setting, [1, 2, 3, 4])
    before = load_file(Path(tiny_model_dir) / "model.safetensors")
    after = load_file(out / "model" / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_offline_rollouts_are_a_stage_that_a_rerun_reuses(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "offline"
    _run(tiny_model_dir, out, "sync_every=0", "checkpoint_every=0")
    stamps = {p: p.stat().st_mtime_ns for p in (out / "rollouts").iterdir()}
    calls = []
    monkeypatch.setattr(RolloutSource, "sample", lambda *args: calls.append(args) or [])
    shutil.rmtree(out / "model")
    _run(tiny_model_dir, out, "sync_every=0", "checkpoint_every=0")
    assert calls == [] and {p: p.stat().st_mtime_ns for p in (out / "rollouts").iterdir()} == stamps


def test_saved_rollouts_are_step_files_that_datasets_loads_and_a_resume_redoes(
    tiny_model_dir, tmp_path, monkeypatch
):
    """`save_rollouts=true`: every step's scored groups in `rollouts/step-NNNNNNN.jsonl`; the directory
    loads with `datasets`; a run resumed from step 2 drops what an earlier attempt saved after step 2
    (a stale step 3, a step 5, a half-written file) and saves steps 3 and 4 again, equal to the full run's."""
    common = ["save_rollouts=true", "sync_every=2", "checkpoint_every=2", "eval.every=-1"]
    _run(tiny_model_dir, tmp_path / "full", *common)
    saved = tmp_path / "full" / "rollouts"
    names = [f"step-{k:07d}.jsonl" for k in (1, 2, 3, 4)]
    assert sorted(p.name for p in saved.glob("step-*")) == names
    for k, name in enumerate(names, start=1):
        groups = [
            RolloutGroup.from_record(json.loads(line)) for line in (saved / name).read_text().splitlines()
        ]
        assert len(groups) == 4 and {g.step for g in groups} == {k}  # tiny-smoke: 4 prompts x 4 samples
        assert all(len(g.completions) == len(g.rewards) == 4 for g in groups)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset(str(saved), split="train", cache_dir=str(tmp_path / "cache"))
    assert loaded.num_rows == 16 and sorted(set(loaded["step"])) == [1, 2, 3, 4]
    assert (
        loaded[0]["completions"][0]["text"]
        == json.loads((saved / names[0]).read_text().splitlines()[0])["completions"][0]["text"]
    )

    resumed = tmp_path / "resumed"
    shutil.copytree(
        tmp_path / "full" / "checkpoints" / "step-0000002", resumed / "checkpoints" / "step-0000002"
    )
    shutil.copytree(saved, resumed / "rollouts")
    (resumed / "rollouts" / names[2]).write_text('{"stale": true}\n')  # an earlier attempt's step 3
    (resumed / "rollouts" / "step-0000005.jsonl").write_text('{"stale": true}\n')
    (resumed / "rollouts" / "step-0000004.jsonl.tmp").write_text('{"step": 4, "pro')  # killed mid-write
    _run(tiny_model_dir, resumed, *common)
    assert sorted(p.name for p in (resumed / "rollouts").glob("step-*")) == names
    for name in names:
        assert (resumed / "rollouts" / name).read_text() == (saved / name).read_text(), name


@pytest.mark.parametrize(
    "overrides",
    [
        ["sync_every=4", "ref_sync_every=2"],  # DPO; the reference is re-synced at step 3 and saved
        ["loss=grpo", "sync_every=4"],  # off-policy GRPO: old logps come from the restored buffer
    ],
    ids=["dpo", "grpo"],
)
def test_resume_in_the_middle_of_a_window_equals_the_uninterrupted_run(tiny_model_dir, tmp_path, overrides):
    common = [*overrides, "num_steps=5", "checkpoint_every=3", "eval.every=-1"]
    full = _train_steps(_run(tiny_model_dir, tmp_path / "full", *common))
    assert full[4]["staleness"] == 3  # step 4 trains on rollouts generated at step 1
    if "ratio" in full[4]:  # GRPO off-policy: old logps are the generator's, so the ratio moved off 1
        assert abs(full[4]["ratio"] - 1) > 1e-6
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(
        tmp_path / "full" / "checkpoints" / "step-0000003", resumed_dir / "checkpoints" / "step-0000003"
    )
    resumed = _train_steps(_run(tiny_model_dir, resumed_dir, *common))
    assert sorted(resumed) == [4, 5]
    for step in (4, 5):
        for key in ("loss", "reward", "grad_norm", "staleness"):
            assert resumed[step][key] == pytest.approx(full[step][key], rel=1e-6, abs=1e-7), (step, key)
    expected, got = (load_file(d / "model" / "model.safetensors") for d in (tmp_path / "full", resumed_dir))
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_a_mixed_batch_routes_the_answer_check_and_a_reward_model_by_task(tiny_model_dir, tmp_path):
    rm_dir = tmp_path / "rm"
    AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1).save_pretrained(rm_dir)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(rm_dir)
    tasks = (
        "tasks=[{name: arith}, {name: arith_rm, reward: reward_model, pair_rule: best_vs_worst, "
        f"reward_model: {rm_dir}}}]"
    )
    steps = _train_steps(_run(tiny_model_dir, tmp_path / "mixed", "sync_every=1", tasks))
    for m in steps.values():
        assert m["reward_arith"] in {i / 8 for i in range(9)}  # two prompts x 4 samples of 0/1
        assert not float(m["reward_arith_rm"]).is_integer()
        # a random reward model never ties: every arith_rm prompt gives a best-vs-worst pair
        assert m["num_prompts"] == 4 and m["num_pairs"] >= 2 and math.isfinite(m["loss"])


@pytest.mark.parametrize("sync_every", [0, 2])
def test_a_remote_generator_is_synced_through_the_servers_reload(
    tiny_model_dir, tmp_path, sync_every, monkeypatch
):
    """`generator.kind=remote` against `selftaught serve`'s server: each sync point saves the policy
    and reloads it there, and the rollouts carry the version the server was serving."""
    from selftaught.engines.hf import HFEngine
    from selftaught.engines.server import EngineServer
    from selftaught.models.io import load_model

    model, tokenizer = load_model(tiny_model_dir)
    monkeypatch.setenv("SELFTAUGHT_GENERATOR_KEY", "k")  # reload needs the key and an allowed directory
    server = EngineServer(
        HFEngine(model, tokenizer), tokenizer, "seed", port=0, api_key="k", allow_reload=[tmp_path / "run"]
    )
    with server.start() as server:
        overrides = [
            f"sync_every={sync_every}",
            "generator.kind=remote",
            f"generator.base_url={server.url}",
            "generator.served_model=seed",
        ]
        steps = _train_steps(_run(tiny_model_dir, tmp_path / "run", *overrides))
        served_version = server.policy_version
    synced = [1] if sync_every == 0 else [1, 3]  # 4 steps
    assert served_version == synced[-1] - 1
    for step, metrics in steps.items():
        version = max(s for s in synced if s <= step) - 1
        assert metrics["staleness"] == step - 1 - version
        assert math.isfinite(metrics["loss"])
    saved = sorted(p.name for p in (tmp_path / "run" / "generator").iterdir())
    assert saved == [f"policy-{v - 1}" for v in synced][-2:]
