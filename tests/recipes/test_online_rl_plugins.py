"""The online loop's plug points: a user's prompt file and reward function (TRL signature, extra
columns as keyword arguments), a user's pair rule, a group-level scorer, per-prompt sampling seeds,
and data parallelism: 2 gloo processes take the same steps as 1 process."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selftaught import dist
from selftaught.config import apply_overrides
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.models.io import load_model
from selftaught.recipes import online_rl
from selftaught.recipes.online_rl import OnlineRLConfig, RolloutConfig, TaskConfig
from selftaught.train.loop import EvalConfig
from selftaught.train.optim import OptimConfig
from selftaught.types import Prompt
from tests.distributed_utils import run_distributed

CALLS: list[dict] = []


def target_length_reward(prompts, completions, target, **columns):
    """A user's reward reading a file column: 1 when the completion's length has the parity of `target`
    (a random-init model never solves anything, and parity gives mixed groups)."""
    CALLS.append({"num": len(completions), "target": list(target), "columns": sorted(columns)})
    return [float((len(c) + int(t)) % 2 == 0) for c, t in zip(completions, target, strict=True)]


def negate_scorer(groups):
    """A group-level scorer: sees every group of the burst, returns 1 - reward."""
    CALLS.append({"groups": len(groups), "steps": sorted({g.step for g in groups})})
    return [[None if r is None else 1.0 - r for r in g.rewards] for g in groups]


def _prompt_file(tmp_path: Path, num: int = 12) -> str:
    path = tmp_path / "prompts.jsonl"
    rows = [{"id": f"q{i}", "prompt": f"{i}+{i}=", "target": 3 + i % 3} for i in range(num)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _config(model_dir: str, out: Path, prompts: str, **changes) -> OnlineRLConfig:
    cfg = OnlineRLConfig(
        out_dir=str(out),
        model=model_dir,
        num_steps=2,
        sync_every=1,
        micro_batch_tokens=0,
        rollouts=RolloutConfig(prompts=prompts, num_prompts=4, samples_per_prompt=4, max_new_tokens=8),
        tasks=[TaskConfig(name="user", reward="tests.recipes.test_online_rl_plugins:target_length_reward")],
        optim=OptimConfig(lr=1e-3, schedule="constant"),
        eval=EvalConfig(every=-1),
        checkpoint_every=0,
    )
    return replace(cfg, **changes)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("loss", ["grpo", "dpo"])
def test_a_users_prompt_file_and_reward_function_train(tiny_model_dir, tmp_path, loss):
    CALLS.clear()
    out = tmp_path / loss
    cfg = _config(tiny_model_dir, out, _prompt_file(tmp_path), loss=loss)
    cfg = apply_overrides(cfg, ["tasks[0].pair_rule=best_vs_worst"] if loss == "dpo" else [])
    online_rl.run(cfg)
    steps = [m for m in _metrics(out) if "reward" in m]
    assert [m["step"] for m in steps] == [1, 2]
    assert CALLS and all(call["num"] == 16 for call in CALLS)  # 4 prompts x 4 samples a step
    assert all(set(call["target"]) <= {3, 4, 5} for call in CALLS)  # the file's column, per sample
    assert "answer" in CALLS[0]["columns"] and "task" in CALLS[0]["columns"]
    assert (out / "model" / "model.safetensors").is_file()
    trained = [m for m in steps if m.get("updated")]
    assert trained and all(m["grad_norm"] > 0 for m in trained)


def test_a_group_scorer_sees_the_burst_and_replaces_the_rewards(tiny_model_dir, tmp_path):
    CALLS.clear()
    out = tmp_path / "scored"
    cfg = _config(
        tiny_model_dir,
        out,
        _prompt_file(tmp_path),
        loss="grpo",
        sync_every=2,
        group_scorer="tests.recipes.test_online_rl_plugins:negate_scorer",
    )
    online_rl.run(cfg)
    scorer_calls = [c for c in CALLS if "groups" in c]
    assert scorer_calls == [{"groups": 8, "steps": [1, 2]}]  # one burst of two steps, 4 prompts each
    reward_calls = [c for c in CALLS if "num" in c]
    assert len(reward_calls) == 1


def test_unknown_rewards_and_pair_rules_fail_before_any_work(tiny_model_dir, tmp_path):
    cfg = _config(tiny_model_dir, tmp_path / "bad", _prompt_file(tmp_path))
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        online_rl.run(apply_overrides(cfg, ["tasks[0].reward=nope"]))
    with pytest.raises(ValueError, match="has no function 'missing'"):
        online_rl.run(apply_overrides(cfg, ["tasks[0].reward=tests.recipes.test_online_rl_plugins:missing"]))
    with pytest.raises(ValueError, match="unknown pair rule"):
        online_rl.run(apply_overrides(cfg, ["loss=dpo", "tasks[0].pair_rule=nope"]))


def test_per_prompt_seeds_make_a_prompts_samples_independent_of_the_others(tiny_model_dir):
    model, tokenizer = load_model(tiny_model_dir)
    prompts = [Prompt(id=f"p{i}", messages=[], text=f"{i}+{i}=") for i in range(6)]
    sampling = SamplingParams(n=3, max_new_tokens=6, seed=11, per_prompt_seeds=True)
    together = HFEngine(model, tokenizer, batch_size=64).generate(prompts, sampling)
    alone = HFEngine(model, tokenizer, batch_size=2).generate(prompts[3:5], sampling)
    assert [c.token_ids for cs in alone for c in cs] == [c.token_ids for cs in together[3:5] for c in cs]
    assert len({tuple(c.token_ids) for cs in together for c in cs}) > 6  # samples differ
    shared = HFEngine(model, tokenizer, batch_size=64).generate(
        prompts[3:5], replace(sampling, per_prompt_seeds=False)
    )
    assert [c.token_ids for cs in shared for c in cs] != [c.token_ids for cs in alone for c in cs]


def _ddp_run(model_dir: str, out: str, prompts: str, loss: str) -> None:
    # Adam's eps 1: an update proportional to the gradient, so summation-order rounding of a
    # near-zero gradient is not blown up to a full step (grad / sqrt(v) with v ~ grad^2)
    optim = OptimConfig(lr=1e-2, eps=1.0, schedule="constant")
    cfg = _config(model_dir, Path(out), prompts, loss=loss, sync_every=1, optim=optim)
    cfg = replace(cfg, rollouts=replace(cfg.rollouts, per_prompt_seeds=True))
    if loss == "dpo":
        cfg = apply_overrides(cfg, ["tasks[0].pair_rule=best_vs_worst"])
    online_rl.run(cfg)
    dist.shutdown()


@pytest.mark.parametrize("loss", ["grpo", "dpo"])
def test_two_gloo_processes_take_the_steps_of_one(tiny_model_dir, tmp_path, loss):
    prompts = _prompt_file(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    _ddp_run(tiny_model_dir, str(one), prompts, loss)
    run_distributed(_ddp_run, tiny_model_dir, str(two), prompts, loss, world_size=2, timeout_s=300)
    single = load_file(one / "model" / "model.safetensors")
    double = load_file(two / "model" / "model.safetensors")
    start = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert any(not torch.equal(single[k], start[k]) for k in single)  # it trained
    for key in single:
        torch.testing.assert_close(double[key], single[key], rtol=1e-4, atol=1e-6, msg=key)
    rewards_one = [m["reward"] for m in _metrics(one) if "reward" in m]
    assert len(rewards_one) == 2


@pytest.mark.slow
def test_gemma_grpo_preset_runs_on_gsm8k_prompts_with_the_math_reward(tmp_path):
    """`selftaught online-rl --preset gemma3-270m-grpo`: Gemma 3 270M, LoRA, few-shot GSM8K train prompts,
    the math answer check; two on-policy GRPO steps on the CPU."""
    from selftaught.cli import main

    gsm8k = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k"
    out = tmp_path / "gemma-grpo"
    argv = [
        "online-rl",
        "--preset",
        "gemma3-270m-grpo",
        f"out_dir={out}",
        f"rollouts.prompts={gsm8k / 'train.jsonl'}",
    ]
    assert main(argv) == 0
    steps = [m for m in _metrics(out) if "rollout_length" in m]
    assert [m["step"] for m in steps] == [1, 2]
    assert all(m["reward_num_none"] == 0 and 0 <= m["reward"] <= 1 for m in steps)  # every answer checked
    assert all(0 < m["rollout_length"] <= 48 for m in steps)
    assert (out / "model" / "model.safetensors").is_file()
