"""The persona task (DivPO's toy world): strict parser, Zipf-skewed data with 10% malformed, the reward,
the world sources, and the diversity statistics."""

import math
from collections import Counter

import pytest

from selftaught.data.catalog import load_records
from selftaught.data.prompt_source import load_prompt_source
from selftaught.rewards.registry import build_reward
from selftaught.world import persona
from selftaught.world.persona import (
    INSTRUCTION,
    JUNK_WORDS,
    MALFORMED_KINDS,
    SLOTS,
    VALUES,
    ZIPF_EXPONENT,
    parse_persona,
    persona_stats,
    persona_valid,
    sample_labelled_personas,
    sample_personas,
    slot_distribution,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ava Oslo baker", {"name": "Ava", "city": "Oslo", "job": "baker"}),
        ("Olga Toronto chemist", {"name": "Olga", "city": "Toronto", "job": "chemist"}),
        ("  Ava   Oslo\tbaker \n", {"name": "Ava", "city": "Oslo", "job": "baker"}),  # extra whitespace
        ("Ava Oslo", None),  # missing job
        ("Ava baker", None),  # missing city
        ("Oslo baker", None),  # missing name
        ("Ava Mia Oslo baker", None),  # two names
        ("Oslo Ava baker", None),  # wrong order
        ("Ava baker Oslo", None),  # wrong order
        ("baker Oslo Ava", None),  # wrong order
        ("Ava the baker", None),  # junk word in place of a slot
        ("Ava Oslo baker lol", None),  # trailing junk word
        ("Ava Oslo Oslo baker", None),  # duplicated slot
        ("Ava Ava Oslo baker", None),  # duplicated name
        ("ava Oslo baker", None),  # wrong case
        ("Ava Oslo baker.", None),  # punctuation
        ("Ava,Oslo,baker", None),  # not whitespace-separated
        ("Ava Oslo Mia", None),  # a name in the job slot
        ("", None),
    ],
)
def test_parser_table(text, expected):
    assert parse_persona(text) == expected


def test_slot_lists_are_forty_disjoint_ascii_words_and_junk_is_in_none():
    words = [v for values in VALUES.values() for v in values]
    assert [len(VALUES[slot]) for slot in SLOTS] == [40, 40, 40]
    assert len(set(words)) == 120
    assert all(w.isascii() and w.isalpha() for w in words)
    assert all(v[0].isupper() for slot in ("name", "city") for v in VALUES[slot])
    assert all(v.islower() for v in VALUES["job"])
    assert not set(JUNK_WORDS) & set(words)


def test_slot_distribution_is_zipf_with_a_head_share_of_about_27_percent():
    distribution = slot_distribution()
    harmonic = sum(k**-ZIPF_EXPONENT for k in range(1, 41))
    for slot in SLOTS:
        probs = list(distribution[slot].values())
        assert set(distribution[slot]) == set(VALUES[slot])
        assert math.isclose(sum(probs), 1.0)
        assert probs == sorted(probs, reverse=True)
        assert math.isclose(probs[0], 1 / harmonic) and 0.25 < probs[0] < 0.30
        assert math.isclose(probs[0] / probs[1], 2**ZIPF_EXPONENT)
    heads = [next(iter(distribution[slot])) for slot in SLOTS]
    assert heads != [VALUES[slot][0] for slot in SLOTS]  # a seeded permutation, not list order
    assert slot_distribution() == distribution


def test_samples_follow_the_zipf_head_and_are_about_10_percent_malformed():
    labelled = sample_labelled_personas(10_000, seed=0)
    kinds = Counter(kind for _, kind in labelled)
    assert abs(1 - kinds["valid"] / 10_000 - 0.1) < 0.015  # 5 binomial standard errors
    assert set(kinds) == {"valid", *MALFORMED_KINDS}
    assert all(140 <= kinds[k] <= 260 for k in MALFORMED_KINDS)  # a uniform mix: about 200 each
    for text, kind in labelled:
        assert (parse_persona(text) is not None) == (kind == "valid"), (text, kind)
        assert " ".join(text.split()) == text  # compact: single spaces
    valid = [parse_persona(text) for text, kind in labelled if kind == "valid"]
    for slot in SLOTS:
        head, p_head = next(iter(slot_distribution()[slot].items()))
        share = sum(p[slot] == head for p in valid) / len(valid)
        assert abs(share - p_head) < 0.025, (slot, share, p_head)
    assert all(parse_persona(t) is not None for t in sample_personas(1000, seed=0, malformed=0.0))
    assert all(parse_persona(t) is None for t in sample_personas(200, seed=0, malformed=1.0))


def test_sampling_is_deterministic_by_seed():
    assert sample_personas(500, seed=3) == sample_personas(500, seed=3)
    assert sample_personas(500, seed=3) != sample_personas(500, seed=4)
    assert load_records("world:persona-sft", num=50, seed=1) == load_records(
        "world:persona-sft", num=50, seed=1
    )
    assert load_records("world:persona-sft", num=50, seed=1) != load_records(
        "world:persona-sft", num=50, seed=2
    )
    with pytest.raises(ValueError, match="malformed must be in"):
        sample_personas(3, seed=0, malformed=1.5)


def test_reward_scores_validity_by_name_with_trl_signature():
    reward = build_reward("persona_valid")
    assert reward is persona_valid
    completions = ["Ava Oslo baker", "Ava Oslo", "Oslo Ava baker", "Ava Oslo baker baker"]
    assert reward(prompts=[INSTRUCTION] * 4, completions=completions, task=["persona"] * 4) == [
        1.0,
        0.0,
        0.0,
        0.0,
    ]
    chat = [[{"role": "assistant", "content": "Mia Lima nurse"}], [{"role": "assistant", "content": "x"}]]
    assert reward(prompts=[[{"role": "user", "content": INSTRUCTION}]] * 2, completions=chat) == [1.0, 0.0]


def test_world_sources_give_sft_conversations_and_distinct_prompt_ids():
    sft = load_records("world:persona-sft", num=20, seed=0, levels=[1, 2], bug=0.5)  # other options ignored
    assert len(sft) == 20
    for record in sft:
        user, assistant = record["messages"]
        assert user == {"role": "user", "content": INSTRUCTION} and assistant["role"] == "assistant"
    assert [r["messages"][1]["content"] for r in sft] == sample_personas(20, seed=0)
    prompts = load_records("world:persona-prompts", num=8, seed=5, levels=[1])
    assert [r["id"] for r in prompts] == [f"persona-{i}" for i in range(8)]
    assert all(
        r["prompt"] == [{"role": "user", "content": INSTRUCTION}] and r["task"] == "persona" for r in prompts
    )
    with pytest.raises(ValueError, match="train split only"):
        load_records("world:persona-prompts:valid", num=2)


def test_the_online_prompt_source_draws_persona_prompts_from_a_pool_of_pool_size():
    source = load_prompt_source("world:persona-prompts", per_step=4, seed=0, pool_size=6, levels=(1, 2, 3))
    assert len(source.pool) == 6 and len({p.id for p in source.pool}) == 6
    batch = source.at(1)
    assert len(batch) == 4 and all(
        p.task == "persona" and p.messages[-1]["content"] == INSTRUCTION for p in batch
    )


def test_persona_stats_counts_validity_and_slot_diversity():
    texts = ["Ava Oslo baker", "Ava Lima baker", "Mia Oslo baker", "junk", "Ava Oslo"]
    stats = persona_stats(texts)
    assert stats["num_samples"] == 5 and stats["validity"] == 0.6
    assert stats["name_distinct"] == 2 and stats["name_unique_ratio"] == 2 / 5
    assert stats["job_distinct"] == 1 and stats["job_top1_share"] == 1.0 and stats["job_entropy_bits"] == 0.0
    assert math.isclose(stats["name_top1_share"], 2 / 3)
    assert math.isclose(stats["city_entropy_bits"], -(2 / 3) * math.log2(2 / 3) - (1 / 3) * math.log2(1 / 3))
    assert math.isclose(stats["mean_unique_ratio"], (2 / 5 + 2 / 5 + 1 / 5) / 3)
    pooled = persona_stats(texts[:4], pool_size=2)  # pools (Ava, Ava) and (Mia, junk)
    assert pooled["name_unique_ratio"] == (1 / 2 + 1 / 2) / 2
    assert persona_stats(["Mia Oslo baker", "Ava Oslo baker"], pool_size=1)["name_unique_ratio"] == 1.0
    with pytest.raises(ValueError, match="at least one text"):
        persona_stats([])


def test_stats_of_the_training_data_show_the_skew():
    stats = persona_stats(sample_personas(4000, seed=0))
    assert abs(stats["validity"] - 0.9) < 0.03
    for slot in SLOTS:
        assert 0.23 < stats[f"{slot}_top1_share"] < 0.31
        assert 3.9 < stats[f"{slot}_entropy_bits"] < 4.4 < math.log2(40)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ' {"name": "Ava", "city": "Oslo", "occupation": "baker"}',
            {"name": "Ava", "city": "Oslo", "occupation": "baker"},
        ),
        (
            '{"occupation": "baker", "city": "Oslo", "name": "Ava"}',
            {"name": "Ava", "city": "Oslo", "occupation": "baker"},
        ),
        ('{"name": "Ava", "city": "Oslo"}', None),  # a key missing
        ('{"name": "Ava", "city": "Oslo", "occupation": "baker", "age": "3"}', None),  # an extra key
        ('{"name": "", "city": "Oslo", "occupation": "baker"}', None),  # an empty value
        ('{"name": 3, "city": "Oslo", "occupation": "baker"}', None),  # not a string
        ('{"name": "Ava", "city": "Oslo", "occupation": "baker"} and more', None),  # trailing text
        ('{"name": "Ava", "city": "Oslo", "occupation": "bak', None),  # truncated
        ("Ava Oslo baker", None),
    ],
)
def test_the_json_form_parses_exactly_one_object_with_the_three_keys(text, expected):
    assert persona.parse_persona_json(text) == expected
    assert persona.persona_json_valid(["p"], [text]) == [float(expected is not None)]


def test_json_prompts_are_raw_text_with_distinct_ids_and_stats_read_the_json_form():
    records = persona.persona_json_prompts(3)
    assert [r["id"] for r in records] == ["persona-json-0", "persona-json-1", "persona-json-2"]
    assert {r["prompt"] for r in records} == {persona.JSON_PROMPT} and {r["task"] for r in records} == {
        "persona_json"
    }
    texts = [
        '{"name": "Ava", "city": "Oslo", "occupation": "baker"}',
        '{"name": "Mia", "city": "Oslo", "occupation": "x"}',
        "junk",
        "junk",
    ]
    stats = persona.persona_stats(texts, parse=persona.parse_persona_json, slots=persona.JSON_KEYS)
    assert (
        stats["validity"] == 0.5
        and stats["name_unique_ratio"] == 2 / 4
        and stats["city_unique_ratio"] == 1 / 4
    )
