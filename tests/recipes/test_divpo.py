"""`selftaught divpo` (the online loop with DivPO's pair rule on the persona task) and `selftaught
repro divpo`: pairs are built and trained on, the persona validation logs validity and diversity,
and the reproduction table's numbers are the runs' own results."""

import json
import math
import re
from dataclasses import replace

import pytest

from selftaught.repro import divpo as repro_divpo
from selftaught.evals.sets import load_eval_set, persona_diversity
from selftaught.presets import RECIPES
from selftaught.rewards import registry
from selftaught.runlog import read_metrics
from selftaught.types import Completion
from selftaught.world.persona import VALUES

DIVPO = RECIPES["divpo"]


def parity_reward(prompts, completions, **columns):
    """A stand-in for `persona_valid` that a random-init model passes about half the time."""
    return [float(len(c[0]["content"]) % 2 == 0) for c in completions]


@pytest.fixture(autouse=True)
def _parity(monkeypatch):
    monkeypatch.setitem(registry.REWARDS, "persona_valid", parity_reward)


def test_divpo_trains_on_divpo_pairs_and_validates_validity_and_diversity(tiny_model_dir, tmp_path):
    cfg = replace(DIVPO.preset("tiny-smoke"), model=tiny_model_dir, out_dir=str(tmp_path / "run"))
    assert cfg.tasks[0].pair_rule == "divpo"
    DIVPO.run(cfg)
    rows = read_metrics(cfg.out_dir)
    steps = [r for r in rows if "num_pairs" in r]
    assert len(steps) == cfg.num_steps and sum(r["num_pairs"] for r in steps) > 0
    assert all(math.isfinite(r["loss"]) for r in steps)
    validations = [r for r in rows if "val_validity" in r]
    assert [r["step"] for r in validations] == [0, 2, 4]
    for key in (
        "val_mean_unique_ratio",
        "val_name_entropy_bits",
        "val_name_top1_share",
        "val_mean_token_nll",
    ):
        assert key in validations[-1]


def test_the_persona_eval_set_scores_validity_and_pool_diversity():
    eval_set = load_eval_set("world:persona", per_level=5)
    assert [p.messages for p in eval_set.prompts] == [[{"role": "user", "content": "Make a persona."}]] * 5
    names, city, job = VALUES["name"][:2], VALUES["city"][0], VALUES["job"][0]
    texts = [f"{names[i % 2]} {city} {job}" for i in range(8)] + ["junk"] * 8  # one pool of 16
    metrics = persona_diversity([Completion("p", t, logprobs=[-1.0, -3.0]) for t in texts])
    assert metrics["validity"] == 0.5
    assert metrics["name_unique_ratio"] == 2 / 16 and metrics["city_unique_ratio"] == 1 / 16
    assert metrics["name_top1_share"] == 0.5 and metrics["mean_token_nll"] == 2.0
    assert eval_set.is_correct(eval_set.prompts[0], Completion("p", texts[0]))
    assert not eval_set.is_correct(eval_set.prompts[0], Completion("p", "junk"))


def test_the_table_reports_each_arm_over_seeds_and_a_rerun_reuses_the_runs(tiny_model_dir, tmp_path):
    out = tmp_path / "repro"
    smoke = DIVPO.preset("tiny-smoke")
    overrides = {"model": tiny_model_dir, "rollouts": smoke.rollouts}
    kwargs = dict(
        seeds=[0, 1],
        arms=["dpo", "divpo-frequency"],
        num_steps=2,
        num_samples=32,
        betas=[0.5],
        temperatures=[1.5],
    )
    table = repro_divpo.divpo_table(str(out), overrides=overrides, **kwargs)
    for arm in ["dpo", "divpo-frequency", "dpo-beta-0.5"]:
        runs = [json.loads((out / arm / f"seed-{s}" / "done.json").read_text())["result"] for s in (0, 1)]
        values = [r["final"]["validity"] for r in runs]
        mean = sum(values) / 2
        se = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
        assert re.search(rf"\| {arm} \| {mean:.3f} \+- {se:.3f} \|", table)
        assert runs[0]["final"]["validity"] == read_metrics(out / arm / "seed-0")[-1]["val_validity"]
    assert "| seed model, T = 1.5 |" in table
    assert (out / "table.md").read_text() == table and (out / "frontier.png").stat().st_size > 0
    (out / "dpo" / "seed-1" / "metrics.jsonl").unlink()  # a rerun must not need (or touch) the run
    assert repro_divpo.divpo_table(str(out), overrides=overrides, **kwargs) == table


def test_unknown_arms_are_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown arms \\['ppo'\\]; choose from"):
        repro_divpo.divpo_table(
            str(tmp_path), seeds=[0], arms=["ppo"], num_steps=1, num_samples=1, betas=[], temperatures=[]
        )


@pytest.mark.slow
def test_gemma_divpo_preset_trains_on_json_personas(tmp_path, monkeypatch):
    """`selftaught divpo --preset gemma3-270m`: Gemma 3 270M base, LoRA, the JSON persona prompt, its
    validity reward (the real one) and DivPO pairs by JSON-value rarity; three online steps on the CPU."""
    from selftaught.cli import main
    from selftaught.world.persona import persona_json_valid

    monkeypatch.setitem(registry.REWARDS, "persona_json_valid", persona_json_valid)  # undo the stand-in
    out = tmp_path / "gemma-divpo"
    assert main(["divpo", "--preset", "gemma3-270m", f"out_dir={out}"]) == 0
    rows = read_metrics(out)
    steps = [r for r in rows if "rollout_length" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all(r["reward_num_none"] == 0 and 0 <= r["reward"] <= 1 for r in steps)
    validations = [r for r in rows if "val_validity" in r]
    assert [r["step"] for r in validations] == [0, 3]
    assert all(0 <= r["val_occupation_unique_ratio"] <= 1 for r in validations)
    assert (out / "model" / "adapter_model.safetensors").is_file() or (out / "model").is_dir()
