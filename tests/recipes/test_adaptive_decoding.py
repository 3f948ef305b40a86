"""`selftaught adaptive-decoding`: only the head trains, pairs come from the head's own temperature
choices, validation reports reward and argmax temperatures per task, resume is exact, and the head
is saved next to the model."""

import math
import shutil
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from selftaught.configs.adaptive import AdaptiveDecodingConfig, HeadConfig, HeadLevel, LPOLoss
from selftaught.configs.train import EvalConfig, GeneratorConfig, RolloutConfig, TaskConfig
from selftaught.models.adaptive import AdaptiveDecoder
from selftaught.presets import RECIPES
from selftaught.rewards import registry
from selftaught.runlog import read_metrics

RECIPE = RECIPES["adaptive-decoding"]


def parity_reward(prompts, completions, **columns):
    """A stand-in reward that a random model's samples split on (graded by length)."""
    return [len(c[0]["content"]) % 3 / 2 for c in completions]


@pytest.fixture(autouse=True)
def _parity(monkeypatch):
    monkeypatch.setitem(registry.REWARDS, "world_answer", parity_reward)


def config(model_dir: str, out: str, **changes) -> AdaptiveDecodingConfig:
    return replace(
        AdaptiveDecodingConfig(
            out_dir=out,
            model=model_dir,
            num_steps=4,
            log_every=1,
            checkpoint_every=2,
            keep_last=None,
            tasks=[TaskConfig(name="arith", reward="world_answer", pair_rule="best_vs_worst")],
            rollouts=RolloutConfig(
                prompts="world:prompts", num_prompts=4, samples_per_prompt=4, max_new_tokens=12
            ),
            eval=EvalConfig(data="world:valid", per_level=4, every=2, levels=[1]),
        ),
        **changes,
    )


@pytest.mark.parametrize(
    ("level", "loss"),
    [
        (HeadLevel.SEQUENCE, LPOLoss.TOKENS_ONLY),
        (HeadLevel.TOKEN, LPOLoss.MARGINAL),
        (HeadLevel.SEQUENCE, LPOLoss.NLL),
    ],
)
def test_only_the_head_trains_and_validation_reports_rewards_and_temperatures(
    tiny_model_dir, tmp_path, level, loss
):
    cfg = config(tiny_model_dir, str(tmp_path / "run"), head=HeadConfig(level=level), loss=loss)
    before = load_file(f"{tiny_model_dir}/model.safetensors")
    RECIPE.run(cfg)
    rows = read_metrics(cfg.out_dir)
    steps = [r for r in rows if "num_pairs" in r]
    assert len(steps) == 4 and sum(r["num_trained_pairs"] for r in steps) > 0
    assert all(math.isfinite(r["loss"]) for r in steps)
    validations = [r for r in rows if "val_reward" in r]
    assert [r["step"] for r in validations] == [0, 2, 4]
    assert "val_reward_arith" in validations[-1] and "val_argmax_tau_arith" in validations[-1]
    quarters = [f"val_argmax_tau_arith_q{q}" for q in (1, 2, 3, 4)]
    assert all(key in validations[-1] for key in quarters) == (level == HeadLevel.TOKEN)
    head = AdaptiveDecoder.load(tmp_path / "run" / "head")
    initial = AdaptiveDecoder.load(tmp_path / "run" / "initial-head")
    assert head.level == level and not torch.equal(head.mlp[-1].bias, initial.mlp[-1].bias)  # it trained
    after = load_file(f"{tiny_model_dir}/model.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)  # the base model is untouched


def test_a_resume_from_a_checkpoint_is_exact(tiny_model_dir, tmp_path):
    cfg = config(tiny_model_dir, str(tmp_path / "run"))
    RECIPE.run(cfg)
    straight = load_file(tmp_path / "run" / "head" / "adaptive_head.safetensors")
    losses = [(r["step"], r["loss"]) for r in read_metrics(cfg.out_dir) if "num_pairs" in r]
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-0000004")
    shutil.rmtree(tmp_path / "run" / "head")
    RECIPE.run(cfg)
    resumed = load_file(tmp_path / "run" / "head" / "adaptive_head.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert [(r["step"], r["loss"]) for r in read_metrics(cfg.out_dir) if "num_pairs" in r] == losses


def test_a_marginal_loss_needs_a_token_level_head():
    with pytest.raises(ValueError, match="loss=marginal needs head.level=token"):
        AdaptiveDecodingConfig(loss=LPOLoss.MARGINAL)


def test_a_token_level_head_needs_the_hf_generator():
    with pytest.raises(ValueError, match="generator.kind=vllm needs head.level=sequence"):
        AdaptiveDecodingConfig(head=HeadConfig(level=HeadLevel.TOKEN), generator=GeneratorConfig(kind="vllm"))
    AdaptiveDecodingConfig(head=HeadConfig(level=HeadLevel.TOKEN))  # hf: either level
    AdaptiveDecodingConfig(generator=GeneratorConfig(kind="remote"))  # sequence level: any generator


def test_another_generator_samples_at_the_heads_temperatures(tiny_model_dir, tmp_path, monkeypatch):
    """generator.kind=remote puts the head over a `RemoteSyncEngine`; a run with an HFEngine without
    a head standing in for the server trains the head on the choices the wrapper records."""
    from selftaught.engines.adaptive import HeadTemperatureEngine
    from selftaught.engines.hf import HFEngine
    from selftaught.engines.remote import RemoteSyncEngine
    from selftaught.models.io import load_model
    from selftaught.recipes import adaptive_decoding

    cfg = config(
        tiny_model_dir,
        str(tmp_path / "run"),
        num_steps=2,
        generator=GeneratorConfig(kind="remote"),
        eval=EvalConfig(data="world:valid", every=-1),
    )
    model, tokenizer = load_model(tiny_model_dir)
    head = AdaptiveDecoder(model.config.hidden_size)
    engine = adaptive_decoding.rollout_engine(cfg, model, tokenizer, head)
    assert isinstance(engine, HeadTemperatureEngine) and isinstance(engine.engine, RemoteSyncEngine)
    default = adaptive_decoding.rollout_engine(
        replace(cfg, generator=GeneratorConfig()), model, tokenizer, head
    )
    assert isinstance(default, HFEngine) and default.temperature_head is head

    built = []

    def stand_in(generator_cfg, model, tokenizer, **kwargs):
        built.append(generator_cfg.kind)
        return HFEngine(model, tokenizer)

    monkeypatch.setattr(adaptive_decoding.generators, "build_generator", stand_in)
    RECIPE.run(cfg)
    steps = [r for r in read_metrics(cfg.out_dir) if "num_pairs" in r]
    assert built == ["remote"] and len(steps) == 2 and sum(r["num_trained_pairs"] for r in steps) > 0
    trained = AdaptiveDecoder.load(tmp_path / "run" / "head")
    initial = AdaptiveDecoder.load(tmp_path / "run" / "initial-head")
    assert not torch.equal(trained.mlp[-1].bias, initial.mlp[-1].bias)


def test_the_reproduction_reports_arms_fixed_temperatures_and_win_rates(tiny_model_dir, tmp_path):
    from selftaught.repro import adaptive

    small = config(tiny_model_dir, "unused")
    overrides = {
        "model": tiny_model_dir,
        "tasks": small.tasks,
        "rollouts": small.rollouts,
        "eval": small.eval,
    }
    kwargs = dict(seeds=[0, 1], arms=["lpo", "nll"], num_steps=2, num_eval=3)
    table = adaptive.adaptive_table(str(tmp_path / "repro"), overrides=overrides, **kwargs)
    assert "| lpo (argmax tau) |" in table and "| nll (argmax tau) |" in table
    assert all(f"| fixed tau {t:g} |" in table for t in small.head.temperatures)
    assert table.count("Win rate of") == 2
    assert adaptive.adaptive_table(str(tmp_path / "repro"), overrides=overrides, **kwargs) == table  # reused


def test_win_rate_counts_ties_half():
    from selftaught.repro.adaptive import win_rate

    assert win_rate([1.0, 0.0, 0.5, 0.2], [0.0, 1.0, 0.5, 0.1]) == (1 + 0 + 0.5 + 1) / 4


def test_a_source_that_mixes_tasks_keeps_each_records_task():
    from selftaught.train.rollouts import build_rollout_source

    cfg = RECIPE.preset("tiny")
    source = build_rollout_source(cfg.rollouts, cfg.tasks, None, seed=0)
    prompts = source.step_prompts(1)
    assert {p.task for p in prompts} == {"math", "story"}
    assert all((p.task == "story") == p.messages[0]["content"].startswith("Tell a story") for p in prompts)
    off = build_rollout_source(replace(cfg.rollouts, task_from_records=False), cfg.tasks, None, seed=0)
    assert any(
        (p.task == "story") != p.messages[0]["content"].startswith("Tell a story")
        for p in off.step_prompts(1)
    )


def test_every_preset_keeps_the_records_tasks_or_gives_each_task_its_source():
    for name in RECIPE.presets:
        cfg = RECIPE.preset(name)
        assert cfg.rollouts.task_from_records or all(t.prompts for t in cfg.tasks), name


def test_token_level_validation_splits_constrained_story_tokens(tiny_model_dir, tmp_path):
    """On `world:lpo-cstory`, a token-level head's argmax temperature is reported at each part's first
    token and elsewhere; a head fixed on one temperature gives that value at both."""
    from selftaught.models.io import load_model
    from selftaught.recipes.adaptive_decoding import validation_metrics

    cfg = RECIPE.preset("tiny-cstory")
    cfg = replace(cfg, model=tiny_model_dir, eval=replace(cfg.eval, per_level=3))
    model, tokenizer = load_model(tiny_model_dir)
    head = AdaptiveDecoder(model.config.hidden_size, cfg.head.temperatures, level="token")
    with torch.no_grad():
        head.mlp[-1].bias[:] = torch.tensor([0.0, 0.0, 0.0, 5.0, 0.0, 0.0])  # argmax tau .6 everywhere
    metrics = validation_metrics(model, tokenizer, head, cfg)
    assert metrics["val_argmax_tau_cstory_opener"] == pytest.approx(0.6)  # the first token opens a part
    assert metrics["val_argmax_tau_cstory_other"] in (0.0, pytest.approx(0.6))  # 0.0: no other token
    assert {f"val_reward_{t}" for t in ("math", "story", "cstory")} <= set(metrics)
    assert "val_argmax_tau_story_opener" not in metrics  # only the constrained task has the split


def test_the_cstory_reproduction_adds_temperatures_by_position(tiny_model_dir, tmp_path):
    from selftaught.repro import adaptive

    base = RECIPE.preset("tiny-cstory")
    overrides = {
        "model": tiny_model_dir,
        "rollouts": replace(base.rollouts, num_prompts=3, samples_per_prompt=2, max_new_tokens=8),
        "eval": replace(base.eval, per_level=2, every=-1),
    }
    kwargs = dict(
        seeds=[0], arms=["lpo-token", "lpo-seq"], num_steps=1, num_eval=2, study="adaptive-decoding-cstory"
    )
    table = adaptive.adaptive_table(str(tmp_path / "repro"), overrides=overrides, **kwargs)
    assert "| lpo-token (argmax tau) |" in table and "| lpo-seq (argmax tau) |" in table
    assert "cstory reward" in table
    assert table.count("by position") == 1  # the token-level arm only
    assert "| cstory | opener |" in table and "| cstory | other |" in table and "| math | q1 |" in table
    with pytest.raises(ValueError, match="unknown arms"):
        adaptive.adaptive_table(str(tmp_path / "x"), **{**kwargs, "arms": ["nll"]}, overrides=overrides)
