"""DivPO's pair rule: quality pools, diversity criteria, the pick and its tie-breaking, the judge's
strict parse, and the reduction to best-vs-worst at rho = 0 with a constant criterion."""

import random

import numpy as np
import pytest

from selftaught.selection.diversity import (
    Criterion,
    DiversityJudge,
    DivPOConfig,
    PoolRule,
    Units,
    completion_units,
    divpo_pairs,
    embedding_distance,
    model_probability,
    parse_choice,
    quality_pools,
    word_frequency,
)
from selftaught.selection.pairs import SkipReason, best_vs_worst
from selftaught.selection.rollouts import RolloutGroup
from selftaught.train.rollouts import TaskConfig, build_pair_rule
from selftaught.types import Completion, Prompt

PROMPT = Prompt(id="p", messages=[{"role": "user", "content": "Make a persona."}])


def pool(texts: list[str], logprobs: list[list[float]] | None = None) -> list[Completion]:
    return [
        Completion(prompt_id="p", text=text, logprobs=None if logprobs is None else logprobs[i])
        for i, text in enumerate(texts)
    ]


@pytest.mark.parametrize(
    ("rewards", "rule", "rho", "good", "bad"),
    [
        # range: r_max 1, r_min 0 -> good r >= 1 - rho, bad r <= rho
        ([0.0, 0.2, 0.5, 0.9, 1.0], PoolRule.RANGE, 0.0, [4], [0]),
        ([0.0, 0.2, 0.5, 0.9, 1.0], PoolRule.RANGE, 0.3, [3, 4], [0, 1]),
        ([0.0, 0.2, 0.5, 0.9, 1.0], PoolRule.RANGE, 0.5, [2, 3, 4], [0, 1, 2]),
        # range on [2, 6]: good >= 6 - 0.25 * 4 = 5, bad <= 3
        ([2.0, 3.0, 4.0, 5.0, 6.0], PoolRule.RANGE, 0.25, [3, 4], [0, 1]),
        # binary rewards (persona validity): any rho < 1 gives valid vs invalid
        ([1, 0, 1, 1, 0], PoolRule.RANGE, 0.3, [0, 2, 3], [1, 4]),
        # quantile (linear): 0.75-quantile of [0,1,2,3,4] is 3, 0.25-quantile is 1
        ([4.0, 0.0, 2.0, 1.0, 3.0], PoolRule.QUANTILE, 0.25, [0, 4], [1, 3]),
        ([4.0, 0.0, 2.0, 1.0, 3.0], PoolRule.QUANTILE, 0.0, [0], [1]),
        # absolute: >= 0.5 good, < 0.5 bad
        ([0.4, 0.5, 0.9, 0.1], PoolRule.ABSOLUTE, 0.0, [1, 2], [0, 3]),
        # unscored samples are in neither pool
        ([1.0, None, 0.0, None], PoolRule.RANGE, 0.0, [0], [2]),
        # all equal or nothing scored: no pools
        ([0.5, 0.5], PoolRule.RANGE, 0.3, [], []),
        ([None, None], PoolRule.RANGE, 0.3, [], []),
    ],
)
def test_quality_pools(rewards, rule, rho, good, bad):
    assert quality_pools(rewards, rule, rho, threshold=0.5) == (good, bad)


def test_probability_is_the_sample_nll_and_needs_logprobs():
    completions = pool(["a", "b"], [[-0.5, -1.0], [-0.25]])
    assert model_probability(PROMPT, completions) == [1.5, 0.25]
    with pytest.raises(ValueError, match="needs token logprobs, and sample 0 of prompt 'p'"):
        model_probability(PROMPT, pool(["a"]))


def test_frequency_is_minus_the_mean_pool_share_of_a_samples_words():
    # "ava" is in 3 of 4 samples, "oslo" in 2, "rome" in 1, "baker" in 4, "cook" 0
    completions = pool(["Ava Oslo baker", "Ava Oslo baker", "Ava Rome baker", "Zoe Lima baker"])
    scores = word_frequency()(PROMPT, completions)
    assert scores == pytest.approx(
        [-(3 + 2 + 4) / 12, -(3 + 2 + 4) / 12, -(3 + 1 + 4) / 12, -(1 + 1 + 4) / 12]
    )
    assert word_frequency()(PROMPT, pool(["", "a"])) == [-1.0, -0.5]


def test_json_value_units_count_attribute_values_not_keys():
    assert completion_units('{"name": "Ava", "city": "Oslo"}', Units.JSON_VALUES) == {"name=ava", "city=oslo"}
    assert completion_units("not json, Ava", Units.JSON_VALUES) == {"not", "json", "ava"}
    completions = pool(['{"name": "Ava"}', '{"name": "Ava"}', '{"name": "Zoe"}'])
    assert word_frequency(Units.JSON_VALUES)(PROMPT, completions) == pytest.approx([-2 / 3, -2 / 3, -1 / 3])


def test_embedding_distance_is_the_mean_cosine_distance_to_the_others():
    vectors = {"x": [1.0, 0.0], "y": [0.0, 1.0], "x2": [1.0, 0.0]}
    score = embedding_distance(lambda texts: np.array([vectors[t] for t in texts]))
    # x: distances 1 (to y) and 0 (to x2) -> 0.5; y: 1 and 1 -> 1.0
    assert score(PROMPT, pool(["x", "y", "x2"])) == pytest.approx([0.5, 1.0, 0.5])
    assert score(PROMPT, pool(["x"])) == [0.0]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("2", 1),
        (" [3] ", 2),
        ("1.", 0),
        ("4", None),
        ("0", None),
        ("2 or 3", None),
        ("Response 2", None),
        ("", None),
    ],
)
def test_the_judge_answer_must_be_exactly_one_candidate_number(answer, expected):
    assert parse_choice(answer, 3) == expected


def constant(prompt, completions):
    return [0.0] * len(completions)


def test_rho_0_with_a_constant_criterion_is_best_vs_worst():
    config = DivPOConfig(rho=0.0)
    rng = random.Random(0)
    for trial in range(50):
        rewards = random.Random(trial).sample(range(100), 6)  # distinct: one best, one worst
        completions = pool([f"s{i}" for i in range(6)])
        ours = divpo_pairs(PROMPT, completions, rewards, config, rng, score=constant)
        theirs = best_vs_worst(PROMPT, list(zip(completions, rewards, strict=True)))
        assert [(p.chosen.text, p.rejected.text) for p in ours.pairs] == [
            (p.chosen.text, p.rejected.text) for p in theirs.pairs
        ]


def test_chosen_is_the_most_diverse_good_sample_and_rejected_the_least_diverse_bad_one():
    texts = ["g-typical", "g-rare", "b-rare", "b-typical", "g-mid"]
    rewards = [1, 1, 0, 0, 1]
    diversity = {"g-typical": 0.1, "g-rare": 0.9, "b-rare": 0.8, "b-typical": 0.05, "g-mid": 0.5}
    result = divpo_pairs(
        PROMPT,
        pool(texts),
        rewards,
        DivPOConfig(rho=0.3),
        random.Random(0),
        score=lambda p, cs: [diversity[c.text] for c in cs],
    )
    [pair] = result.pairs
    assert (pair.chosen.text, pair.rejected.text) == ("g-rare", "b-typical")
    assert pair.meta["chosen_diversity"] == 0.9 and pair.meta["rejected_diversity"] == 0.05
    assert (pair.meta["num_good"], pair.meta["num_bad"], pair.meta["rule"]) == (3, 2, "divpo")


def test_diversity_ties_go_to_the_reward_then_to_a_seeded_random_choice():
    # rho 0.5 on [0, 1]: good = r >= 0.5 = {0.5, 0.9, 0.9}; bad = r <= 0.5 = {0.0, 0.1, 0.5}
    texts, rewards = ["a", "b", "c", "d", "e", "f"], [0.9, 0.5, 0.9, 0.0, 0.1, 0.0]
    config = DivPOConfig(rho=0.5)
    picks = {
        (pair.chosen.text, pair.rejected.text)
        for seed in range(40)
        for pair in divpo_pairs(
            PROMPT, pool(texts), rewards, config, random.Random(seed), score=constant
        ).pairs
    }
    assert picks == {("a", "d"), ("a", "f"), ("c", "d"), ("c", "f")}  # reward first, then random
    again = divpo_pairs(PROMPT, pool(texts), rewards, config, random.Random(7), score=constant).pairs[0]
    first = divpo_pairs(PROMPT, pool(texts), rewards, config, random.Random(7), score=constant).pairs[0]
    assert (again.chosen.text, again.rejected.text) == (first.chosen.text, first.rejected.text)


@pytest.mark.parametrize(
    ("texts", "rewards", "reason"),
    [
        (["same", "same"], [1, 0], SkipReason.SAME_RESPONSE),
        (["a", "b"], [1, 1], SkipReason.TIED),
        (["a", "b"], [None, None], SkipReason.UNSCORED),
    ],
)
def test_prompts_without_a_pair_are_counted_with_their_reason(texts, rewards, reason):
    result = divpo_pairs(PROMPT, pool(texts), rewards, DivPOConfig(), random.Random(0), score=constant)
    assert (result.pairs, result.skip_reason) == ([], reason)


def test_the_llm_judge_picks_within_each_pool_and_an_unparsed_answer_gives_no_pair():
    asked = []

    def generate(prompts):
        asked.extend(prompts)
        return ["2", "1"]  # the 2nd good sample, the 1st bad sample

    texts, rewards = ["g1", "b1", "g2", "b2"], [1, 0, 1, 0]
    result = divpo_pairs(
        PROMPT, pool(texts), rewards, DivPOConfig(), random.Random(0), judge=DiversityJudge(generate)
    )
    [pair] = result.pairs
    assert (pair.chosen.text, pair.rejected.text) == ("g2", "b1")
    good_prompt = asked[0].messages[0]["content"]
    assert (
        "[1] g1\n[2] g2" in good_prompt and "most diverse" in good_prompt and "Make a persona." in good_prompt
    )
    assert "[1] b1\n[2] b2" in asked[1].messages[0]["content"]
    unparsed = divpo_pairs(
        PROMPT,
        pool(texts),
        rewards,
        DivPOConfig(),
        random.Random(0),
        judge=DiversityJudge(lambda ps: ["2", "b1"]),
    )
    assert (unparsed.pairs, unparsed.skip_reason) == ([], SkipReason.JUDGE_UNPARSED)


def test_the_task_config_builds_the_divpo_rule_for_the_online_loop():
    task = TaskConfig(name="persona", pair_rule="divpo", divpo=DivPOConfig(criterion=Criterion.FREQUENCY))
    rule = build_pair_rule(task)
    completions = pool(["Ava Oslo baker", "Ava Oslo baker", "Zoe Lima cook", "junk"])
    group = RolloutGroup(PROMPT, completions, [1, 1, 1, 0], step=1)
    [pair] = rule(group, random.Random(0)).pairs
    assert (pair.chosen.text, pair.rejected.text) == ("Zoe Lima cook", "junk")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rho": 0.6}, "'divpo.rho' must be in \\[0, 0.5\\]"),
        ({"rho": -0.1}, "'divpo.rho' must be in \\[0, 0.5\\]"),
        ({"criterion": Criterion.JUDGE}, "'divpo.judge_model' must be a model spec"),
    ],
)
def test_bad_divpo_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DivPOConfig(**kwargs)
