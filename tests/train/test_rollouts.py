"""The prompts of each online step (`train.rollouts`): one shared source split over the tasks by weight
(unchanged by per-task sources), or each task's weight share from its own source (`TaskConfig.prompts`);
a pure function of (seed, step), split over data-parallel ranks; the config errors of the mix."""

import json
from dataclasses import fields, replace

import pytest
import yaml

from selftaught import dist
from selftaught.config import dump_yaml, from_dict, to_dict
from selftaught.configs.adaptive import AdaptiveDecodingConfig
from selftaught.configs.recipes import OnlineRLConfig
from selftaught.train.rollouts import RolloutConfig, TaskConfig, build_rollout_source, task_eval_prompts

SHARED_TASKS = [TaskConfig(name="arith", weight=2.0), TaskConfig(name="other", reward="exact_match")]
SHARED = RolloutConfig(prompts="world:prompts", num_prompts=5, pool_size=64)
CAPTURED = {  # step -> (id, task), from the code before per-task sources existed (seed 3)
    1: [
        ("arith-L1-58d5cf49", "arith"),
        ("arith-L1-ff9c2c86", "arith"),
        ("arith-L3-b1d5e66b", "arith"),
        ("arith-L2-7eed0587", "arith"),
        ("arith-L1-a6cf7a83", "other"),
    ],
    2: [
        ("arith-L2-381c4b6d", "arith"),
        ("arith-L2-d63c95ec", "arith"),
        ("arith-L1-55bc44b9", "arith"),
        ("arith-L3-8d4a09bf", "arith"),
        ("arith-L3-1646362e", "other"),
    ],
    13: [
        ("arith-L3-509ef771", "arith"),
        ("arith-L1-b4198c11", "arith"),
        ("arith-L1-54d689a6", "arith"),
        ("arith-L2-a088a75b", "arith"),
        ("arith-L1-cbeafe79", "other"),
    ],
}


def own_tasks(tmp_path, weights=(1.0, 1.0)):
    """A GSM8K-format file task and a world story-title task, each with its own source."""
    path = tmp_path / "gsm8k.jsonl"
    rows = [{"question": f"What is {i} plus 1?", "answer": f"{i}+1={i + 1}\n#### {i + 1}"} for i in range(10)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [
        TaskConfig(name="gsm8k", reward="math_answer", weight=weights[0], prompts=str(path)),
        TaskConfig(
            name="story", reward="ngram_novelty", weight=weights[1], prompts="world:story-title-prompts"
        ),
    ]


def ids_and_tasks(prompts):
    return [(p.id, p.task) for p in prompts]


def test_a_shared_source_gives_the_same_steps_as_before_per_task_sources():
    source = build_rollout_source(SHARED, SHARED_TASKS, None, seed=3)
    assert source.task_sources is None
    for step, expected in CAPTURED.items():
        assert ids_and_tasks(source.step_prompts(step)) == expected


def test_each_task_takes_its_weight_share_from_its_own_source(tmp_path):
    settings = RolloutConfig(num_prompts=6, num_shots=1, pool_size=64)
    source = build_rollout_source(settings, own_tasks(tmp_path, (2.0, 1.0)), None, seed=0)
    assert source.prompts is None
    for step in (1, 2, 7):
        prompts = source.step_prompts(step)
        assert [p.task for p in prompts] == ["gsm8k"] * 4 + ["story"] * 2
        gsm8k, story = prompts[:4], prompts[4:]
        assert all(p.text.startswith("Question: ") and p.text.endswith("Answer:") for p in gsm8k)  # 1-shot
        assert all(p.text.count("Question: ") == 2 and p.answer is not None for p in gsm8k)
        assert all(p.id.startswith("title-") and "short story titled" in p.text for p in story)
    uneven = build_rollout_source(replace(settings, num_prompts=5), own_tasks(tmp_path), None, seed=0)
    assert [p.task for p in uneven.step_prompts(1)] == ["gsm8k"] * 3 + ["story"] * 2  # first task: the rest


def test_per_task_steps_are_a_pure_function_of_seed_and_step(tmp_path):
    settings = RolloutConfig(num_prompts=4, limit=8)
    first = build_rollout_source(settings, own_tasks(tmp_path), None, seed=1)
    steps = {k: ids_and_tasks(first.step_prompts(k)) for k in range(1, 9)}
    resumed = build_rollout_source(settings, own_tasks(tmp_path), None, seed=1)  # a fresh process
    assert {k: ids_and_tasks(resumed.step_prompts(k)) for k in (8, 3, 5)} == {k: steps[k] for k in (8, 3, 5)}
    assert steps[1] != steps[2]
    epoch = [p for k in (1, 2, 3, 4) for p, task in steps[k] if task == "story"]
    assert len(set(epoch)) == 8  # `limit` 8 titles, each once per epoch of 4 steps of 2
    other_seed = build_rollout_source(settings, own_tasks(tmp_path), None, seed=2)
    assert ids_and_tasks(other_seed.step_prompts(1)) != steps[1]


@pytest.mark.parametrize("shared", [True, False])
def test_ranks_split_each_step_and_together_hold_it(tmp_path, monkeypatch, shared):
    if shared:
        source = build_rollout_source(SHARED, SHARED_TASKS, None, seed=3)
    else:
        source = build_rollout_source(RolloutConfig(num_prompts=6), own_tasks(tmp_path), None, seed=0)
    whole = ids_and_tasks(source.step_prompts(2))
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    shares = []
    for rank in (0, 1):
        monkeypatch.setattr(dist, "rank", lambda rank=rank: rank)
        shares.append(ids_and_tasks(source.step_prompts(2)))
    assert shares == [whole[0::2], whole[1::2]]
    if not shared:
        assert [t for _, t in shares[0]] == ["gsm8k", "gsm8k", "story"]


def test_held_out_prompts_are_the_first_of_each_tasks_eval_source(tmp_path):
    tasks = own_tasks(tmp_path)
    tasks = [
        replace(tasks[0], eval_prompts=tasks[0].prompts),
        replace(tasks[1], eval_prompts="world:story-title-prompts:test"),
    ]
    prompts = task_eval_prompts(RolloutConfig(num_shots=1), tasks, 3)
    assert [p.task for p in prompts] == ["gsm8k"] * 3 + ["story"] * 3
    assert [p.id for p in prompts] == ["0", "1", "2", "title-test-0", "title-test-1", "title-test-2"]
    assert prompts[0].text.count("Question: ") == 2 and prompts[0].answer == "1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda ts, r: ([ts[0], replace(ts[1], prompts=None)], r),
            r"tasks\[0\].prompts is set but tasks\[1\]",
        ),
        (
            lambda ts, r: ([ts[0], replace(ts[1], eval_prompts="world:story-title-prompts:test")], r),
            r"tasks\[1\].eval_prompts is set but tasks\[0\]",
        ),
        (
            lambda ts, r: ([replace(ts[0], prompts=" "), ts[1]], r),
            r"tasks\[0\].prompts' must be a prompt source",
        ),
        (lambda ts, r: (ts, replace(r, task_from_records=True)), "task_from_records must be false"),
    ],
)
def test_bad_per_task_sources_are_config_errors(tmp_path, change, message):
    tasks, rollouts = change(own_tasks(tmp_path), RolloutConfig(num_prompts=4))
    with pytest.raises(ValueError, match=message):
        build_rollout_source(rollouts, tasks, None, seed=0)
    with pytest.raises(ValueError, match=message):
        OnlineRLConfig(tasks=tasks, rollouts=rollouts)
    with pytest.raises(ValueError, match=message):
        AdaptiveDecodingConfig(tasks=tasks, rollouts=rollouts)


def test_unset_per_task_sources_stay_out_of_config_dicts_so_cached_runs_keep_their_keys(tmp_path):
    """A task without its own sources has the dict (config.yaml, run fingerprints, resume checks) that
    tasks had before the fields existed; set ones are written and read back."""
    older = {f.name for f in fields(TaskConfig)} - {"prompts", "eval_prompts"}
    assert set(to_dict(TaskConfig())) == older
    assert [set(t) for t in to_dict(OnlineRLConfig())["tasks"]] == [older]
    task = to_dict(own_tasks(tmp_path)[1])
    assert task["prompts"] == "world:story-title-prompts" and "eval_prompts" not in task
    mixed = OnlineRLConfig(tasks=own_tasks(tmp_path), rollouts=RolloutConfig(num_prompts=4))
    assert from_dict(OnlineRLConfig, yaml.safe_load(dump_yaml(mixed))) == mixed  # round trip


def test_the_online_rl_header_names_each_tasks_source(tmp_path):
    from selftaught.recipes.online_rl import header

    tasks = own_tasks(tmp_path)
    line = header(OnlineRLConfig(tasks=tasks, rollouts=RolloutConfig(num_prompts=4)))
    assert f"prompts {tasks[0].prompts}" in line and "prompts world:story-title-prompts" in line
    assert "4 prompts of the tasks' own sources" in line
    assert "32 prompts of world:prompts" in header(OnlineRLConfig())
