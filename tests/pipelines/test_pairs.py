"""sample_pairs: the world case gives exactly the records of the DPO recipe's former world pair stage
(`reference_world_pairs` below, the code it replaced, kept here as the reference: same seeds, same
pair choice, same format, same fingerprint), and the stage takes any reward and pair rule.

A random-init model never answers a world problem right, so the model test checks answers by the
parity of the completion's length (as tests/recipes/test_dpo.py does): the pools are then mixed.
"""

import json
import random
from dataclasses import replace

import pytest

from selftaught.data.preferences import preference_record
from selftaught.data.shards import compute_fingerprint, run_stage
from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.scripted import ScriptedEngine
from selftaught.models.io import load_model
from selftaught.pipelines import sample_pairs, score_samples
from selftaught.recipes import dpo
from selftaught.rewards.base import completion_text
from selftaught.rewards.world import world_answer_reward
from selftaught.selection.pairs import correct_vs_incorrect
from selftaught.selection.rollouts import best_vs_worst_rule
from selftaught.train.reference import weights_fingerprint
from selftaught.types import Completion, Prompt
from selftaught.world.arith import is_correct, sample_problems, to_prompt

SHARD_SIZE = 4  # 10 prompts -> 3 shards, so the per-shard seeds matter


def parity_reward(prompts, completions, **columns):
    return [float(len(completion_text(c)) % 2 == 0) for c in completions]


def world_inputs(data: dpo.DPODataConfig):
    problems = sample_problems("train", data.num_prompts, data.levels, data.seed)
    sampling = SamplingParams(
        temperature=data.temperature, n=data.samples_per_prompt, max_new_tokens=data.max_new_tokens
    )
    return [to_prompt(problem) for problem in problems], sampling


def reference_world_pairs(data, engine, model, stage_dir, *, generator, is_correct=is_correct):
    """The DPO recipe's world pair stage before `sample_pairs` replaced it: per shard one generate
    call seeded `seed * 1_000_003 + first index`, the answer check, `correct_vs_incorrect` with
    `Random(f"{seed}|{prompt.id}")`."""
    problems = sample_problems("train", data.num_prompts, data.levels, data.seed)
    _, sampling = world_inputs(data)
    provenance = {"generator": generator, "seed": data.seed, "template": dpo.PAIRS_TEMPLATE}

    def make_pairs(chunk):
        prompts = [to_prompt(problem) for _, problem in chunk]
        samples = engine.generate(prompts, replace(sampling, seed=data.seed * 1_000_003 + chunk[0][0]))
        records = []
        for (_, problem), prompt, completions in zip(chunk, prompts, samples, strict=True):
            scored = [(c, float(is_correct(c.text, problem.answer))) for c in completions]
            group = correct_vs_incorrect(prompt, scored, random.Random(f"{data.seed}|{prompt.id}"))
            records.extend(preference_record(pair, provenance) for pair in group.pairs)
        return records

    fingerprint = compute_fingerprint(
        {
            **provenance,
            "weights": weights_fingerprint(model),
            "problems": [p.id for p in problems],
            "sampling": vars(sampling),
        }
    )
    records = run_stage(
        stage_dir,
        list(enumerate(problems)),
        make_pairs,
        shard_size=SHARD_SIZE,
        fingerprint=fingerprint,
        meta=provenance,
    )
    counts = {
        "num_prompts": len(problems),
        "num_pairs": len(records),
        "pair_yield": len(records) / len(problems),
    }
    return records, counts


def run_both(tmp_path, monkeypatch, model, tokenizer, engine, reward_fn, data, is_correct=is_correct):
    """`(reference_world_pairs records and counts, sample_pairs records and counts)` on the same inputs."""
    expected = reference_world_pairs(
        data, engine, model, tmp_path / "dpo", generator="tiny", is_correct=is_correct
    )
    prompts, sampling = world_inputs(data)
    actual = sample_pairs(
        tmp_path / "pipeline",
        prompts,
        engine,
        sampling,
        reward_fn,
        "correct_vs_incorrect",
        seed=data.seed,
        generator="tiny",
        template=dpo.PAIRS_TEMPLATE,
        weights_fingerprint=weights_fingerprint(model),
        shard_size=SHARD_SIZE,
    )
    return expected, actual


def stage_file(path):
    return json.loads((path / "stage.json").read_text())


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir)


def test_world_case_equals_build_world_pairs_on_a_model(tiny, tmp_path, monkeypatch):
    model, tokenizer = tiny
    data = dpo.DPODataConfig(num_prompts=10, samples_per_prompt=4, max_new_tokens=12, seed=3)
    engine = HFEngine(model, tokenizer, batch_size=data.generation_batch_size)
    (expected, expected_counts), (actual, counts) = run_both(
        tmp_path,
        monkeypatch,
        model,
        tokenizer,
        engine,
        parity_reward,
        data,
        is_correct=lambda text, answer: len(text) % 2 == 0,
    )
    assert 0 < len(expected) <= 10 and actual == expected and counts == expected_counts
    assert stage_file(tmp_path / "pipeline") == stage_file(tmp_path / "dpo")  # same fingerprint
    # so a directory the recipe wrote is read back by the pipeline stage without sampling
    prompts, sampling = world_inputs(data)
    idle = ScriptedEngine(lambda prompt, j: pytest.fail("a complete stage must not sample"))
    again, _ = sample_pairs(
        tmp_path / "dpo",
        prompts,
        idle,
        sampling,
        parity_reward,
        "correct_vs_incorrect",
        seed=3,
        generator="tiny",
        template=dpo.PAIRS_TEMPLATE,
        weights_fingerprint=weights_fingerprint(model),
        shard_size=SHARD_SIZE,
    )
    assert again == expected


def test_world_reward_equals_the_recipe_answer_check(tiny, tmp_path, monkeypatch):
    """With the real answer check (scripted answers, right for some samples, wrong for others)."""
    model, tokenizer = tiny

    def answer(prompt: Prompt, j: int) -> str:
        offset = 0 if (j + len(prompt.id)) % 3 else j
        return (
            f"{prompt.meta['expression']}={int(prompt.answer) + offset} Answer: {int(prompt.answer) + offset}"
        )

    engine = ScriptedEngine(answer)
    data = dpo.DPODataConfig(num_prompts=10, samples_per_prompt=4, seed=5)
    (expected, expected_counts), (actual, counts) = run_both(
        tmp_path, monkeypatch, model, tokenizer, engine, world_answer_reward, data
    )
    assert len(expected) >= 5 and actual == expected and counts == expected_counts


def scripted_prompts() -> list[Prompt]:
    return [
        Prompt(f"p{i}", [{"role": "user", "content": f"q{i}"}], answer=str(i), task="t") for i in range(3)
    ]


def test_scalar_rewards_with_best_vs_worst(tmp_path):
    engine = ScriptedEngine(lambda prompt, j: "x" * (j + 1) if prompt.id != "p2" else "same")
    sampling = SamplingParams(n=3)

    def length_reward(prompts, completions, **columns):
        return [float(len(completion_text(c))) for c in completions]

    records, counts = sample_pairs(
        tmp_path,
        scripted_prompts(),
        engine,
        sampling,
        length_reward,
        best_vs_worst_rule,
        seed=0,
        generator="scripted",
        template="length-pairs@1",
        weights_fingerprint="none",
        shard_size=2,
    )
    assert counts == {"num_prompts": 3, "num_pairs": 2, "pair_yield": 2 / 3}  # p2's samples tie
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in records] == [("xxx", "x")] * 2
    assert records[0]["meta"]["rule"] == "best_vs_worst"
    assert {key: records[0]["meta"][key] for key in ("generator", "seed", "template")} == {
        "generator": "scripted",
        "seed": 0,
        "template": "length-pairs@1",
    }
    assert [call.sampling.seed for call in engine.calls] == [0, 2]  # shard seeds: first prompt index


def test_unscored_samples_are_on_neither_side(tmp_path):
    engine = ScriptedEngine(lambda prompt, j: ["right", "wrong", "garbled"][j])

    def reward(prompts, completions, **columns):
        return [{"right": 1.0, "wrong": 0.0}.get(completion_text(c)) for c in completions]

    records, _ = sample_pairs(
        tmp_path,
        scripted_prompts()[:1],
        engine,
        SamplingParams(n=3),
        reward,
        "correct_vs_incorrect",
        seed=1,
        generator="scripted",
        template="t@1",
        weights_fingerprint="none",
    )
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in records] == [("right", "wrong")]


def test_score_samples_checks_the_reward_count():
    prompts = scripted_prompts()[:2]
    samples = [[Completion(p.id, "a"), Completion(p.id, "bb")] for p in prompts]
    assert score_samples(parity_reward, prompts, samples) == [[0.0, 1.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match="returned 1 rewards for 4 completions"):
        score_samples(lambda prompts, completions, **columns: [1.0], prompts, samples)


def test_another_config_in_the_same_directory_is_an_error(tmp_path):
    arguments = dict(seed=0, generator="g", template="t@1", weights_fingerprint="w")
    engine = ScriptedEngine(lambda prompt, j: "a")
    sample_pairs(
        tmp_path, scripted_prompts(), engine, SamplingParams(), parity_reward, "best_vs_worst", **arguments
    )
    with pytest.raises(ValueError, match="fingerprint"):
        sample_pairs(
            tmp_path,
            scripted_prompts(),
            engine,
            replace(SamplingParams(), n=2),
            parity_reward,
            "best_vs_worst",
            **arguments,
        )
