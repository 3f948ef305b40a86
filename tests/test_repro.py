"""`selftaught repro`: the table's numbers are the runs' own results (mean and standard error over
seeds), a rerun reuses finished runs, and checkpoint selection picks by the logged validation reward."""

import json
import math
import re
from dataclasses import replace

import pytest

from selftaught import repro
from selftaught.presets import online_rl as presets
from selftaught.recipes import online_rl
from selftaught.recipes.online_rl import TaskConfig
from selftaught.rewards import registry
from selftaught.runlog import read_metrics
from selftaught.train.loop import EvalConfig


def parity_reward(prompts, completions, answer, **columns):
    return [float(len(c[0]["content"]) % 2 == 0) for c in completions]


@pytest.fixture(autouse=True)
def _parity(monkeypatch):
    monkeypatch.setitem(registry.REWARDS, "world_answer", parity_reward)


def _smoke_overrides(model_dir: str) -> dict:
    smoke = presets.tiny_smoke()
    return {"model": model_dir, "rollouts": smoke.rollouts, "micro_batch_tokens": 256, "optim": smoke.optim}


def test_the_table_reports_each_arm_over_seeds_and_a_rerun_reuses_the_runs(tiny_model_dir, tmp_path):
    out = tmp_path / "repro"
    kwargs = dict(seeds=[0, 1], arms=["offline-dpo", "grpo"], num_steps=2, per_level=2, eval_every=0)
    table = repro.online_rl_table(str(out), overrides=_smoke_overrides(tiny_model_dir), **kwargs)
    for arm in ["offline-dpo", "grpo"]:
        runs = [json.loads((out / arm / f"seed-{s}" / "done.json").read_text())["result"] for s in (0, 1)]
        accuracies = [r["accuracy"] for r in runs]
        mean = sum(accuracies) / 2
        se = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / 2)  # sample std / sqrt(2), n = 2
        assert re.search(
            rf"\| {arm} \| {mean:.3f} \+- {se:.3f} \| {accuracies[0]:.3f} {accuracies[1]:.3f} \|", table
        )
        assert runs[0]["accuracy"] == read_metrics(out / arm / "seed-0")[-1]["val_accuracy"]
    assert (out / "table.md").read_text() == table
    (out / "grpo" / "seed-1" / "metrics.jsonl").unlink()  # a rerun must not need (or touch) the run
    assert repro.online_rl_table(str(out), overrides=_smoke_overrides(tiny_model_dir), **kwargs) == table
    with pytest.raises(ValueError, match="holds a finished run of another config"):
        repro.online_rl_table(str(out), overrides={**_smoke_overrides(tiny_model_dir), "beta": 0.5}, **kwargs)


def test_a_length_bonus_with_verifier_pairs_is_refused_at_config_time():
    with pytest.raises(ValueError, match="set its pair_rule to best_vs_worst"):
        replace(presets.tiny(), tasks=[TaskConfig(length_bonus=0.1)])


def test_unknown_arms_are_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown arms \\['online'\\]; choose from"):
        repro.online_rl_table(
            str(tmp_path), seeds=[0], arms=["online"], num_steps=1, per_level=1, eval_every=0
        )


def test_checkpoint_selection_picks_the_logged_maxima(tiny_model_dir, tmp_path):
    cfg = replace(
        presets.tiny_smoke(),
        out_dir=str(tmp_path / "run"),
        model=tiny_model_dir,
        tasks=[TaskConfig(length_bonus=0.1, pair_rule="best_vs_worst")],
        eval=EvalConfig(data="world:valid", per_level=2, every=2, seed=0),
        checkpoint_every=2,
        keep_last=None,
    )
    online_rl.run(cfg)
    table = repro.selection_table(cfg, per_level=2)
    rows = [r for r in read_metrics(cfg.out_dir) if "val_reward_arith" in r]
    assert [r["step"] for r in rows] == [0, 2, 4]
    for rule, key in [
        ("highest val reward", "val_reward_arith"),
        ("highest val reward per token", "val_reward_per_token_arith"),
    ]:
        best = max(rows, key=lambda r: r[key])["step"]
        assert re.search(rf"\| {rule} \| {best} \|", table)
    assert re.search(r"\| last \| 4 \|", table)
    for row in rows:  # the logged reward includes the length bonus: parity + 0.1 * tokens on average
        assert row["val_reward_arith"] >= 0.1 * row["val_mean_tokens"] - 1e-6


def test_run_arm_runs_a_config_once_per_directory(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(repro, "_run_and_summarize", lambda cfg: calls.append(cfg) or {"accuracy": 0.5})
    cfg = replace(presets.tiny_smoke(), out_dir=str(tmp_path / "run"))
    assert repro.run_arm(cfg) == repro.run_arm(cfg) == {"accuracy": 0.5} and len(calls) == 1
    with pytest.raises(ValueError, match="holds a finished run of another config"):
        repro.run_arm(replace(cfg, beta=0.5))


def test_arm_configs_are_the_base_with_the_arm_overrides():
    base = presets.tiny()
    grpo = repro.arm_config(base, "out", "grpo", seed=3)
    assert (grpo.loss, grpo.sync_every, grpo.seed, grpo.out_dir) == ("grpo", 1, 3, "out/grpo/seed-3")
    assert repro.arm_config(base, "out", "offline-dpo", seed=0).sync_every == 0
