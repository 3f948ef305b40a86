"""The STORY task (adaptive decoding's creative half): strict parser, distinct-words quality with
hand-computed values, the reward, Zipf data drawn with replacement, the LPO mix sources with task
routing, the `world:lpo` eval set and the fixed-temperature sweep."""

import math
from collections import Counter

import pytest

from selftaught.data.catalog import load_records
from selftaught.data.prompt_source import load_prompt_source
from selftaught.evals.sets import (
    fixed_temperature_sweep,
    load_eval_set,
    lpo_diversity,
    lpo_reward,
    temperature_sweep,
)
from selftaught.rewards.registry import build_reward
from selftaught.rewards.rubric import Rubric
from selftaught.types import Completion
from selftaught.world.stories import (
    PLACE_WORDS,
    PLACES,
    ZIPF_EXPONENT,
    expected_quality,
    instruction,
    parse_story,
    place_of,
    sample_stories,
    story_quality,
    story_score,
    story_stats,
    word_distribution,
)
from selftaught.world.tokenizer import build_tokenizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cow hen cow barn pig hay", ("cow", "hen", "cow", "barn", "pig", "hay")),
        ("  cow cow cow cow cow cow \n", ("cow",) * 6),  # surrounding whitespace; repeats parse
        ("cow hen tree wave pig hay", ("cow", "hen", "tree", "wave", "pig", "hay")),  # mixed places parse
        ("cow hen cow barn pig", None),  # five words
        ("cow hen cow barn pig hay dog", None),  # seven words
        ("cow hen cow barn pig cat", None),  # a word outside every place
        ("Cow hen cow barn pig hay", None),  # capitalised
        ("cow hen cow barn pig hay.", None),  # punctuation
        ("cow  hen cow barn pig hay", None),  # two spaces
        ("cow,hen,cow,barn,pig,hay", None),
        ("", None),
    ],
)
def test_parser_table(text, expected):
    assert parse_story(text) == expected


@pytest.mark.parametrize(
    ("text", "place", "expected"),
    [
        ("cow pig hen goat sheep barn", "farm", 6 / 6),  # six distinct
        ("cow hen cow barn pig hay", "farm", 5 / 6),  # one repeat
        ("cow cow hen hen pig pig", "farm", 3 / 6),
        ("cow cow cow cow cow hen", "farm", 2 / 6),
        ("cow cow cow cow cow cow", "farm", 1 / 6),  # greedy's collapse
        ("cow pig hen goat sheep tree", "farm", 0.0),  # a forest word in a farm story
        ("cow pig hen goat sheep barn", "sea", 0.0),  # the wrong place
        ("cow pig hen goat sheep", "farm", 0.0),  # five words
        ("fish fish crab reef gull fish", "sea", 4 / 6),
    ],
)
def test_quality_is_distinct_in_place_words_over_six(text, place, expected):
    assert story_score(text, place) == pytest.approx(expected)


def test_places_have_twelve_disjoint_words_that_tokenize_short():
    assert set(PLACE_WORDS) == set(PLACES) and all(len(set(ws)) == 12 for ws in PLACE_WORDS.values())
    words = [w for ws in PLACE_WORDS.values() for w in ws]
    assert len(set(words)) == 36
    tokenizer = build_tokenizer()
    longest = max(len(tokenizer(" " + w)["input_ids"]) for w in words)
    assert NUM_TOKENS_BUDGET >= 6 * longest + 1  # six words and EOS fit the eval set's 64 tokens


NUM_TOKENS_BUDGET = 64


def test_reward_by_name_reads_the_place_column_or_the_prompt_text():
    reward = build_reward("story_quality")
    assert reward is story_quality
    farm = [{"role": "user", "content": instruction("farm")}]
    chat = [[{"role": "assistant", "content": t}] for t in ("cow pig hen goat sheep barn", "cow " * 6, "x")]
    assert reward(prompts=[farm] * 3, completions=chat) == pytest.approx([1.0, 1 / 6, 0.0])
    assert reward(prompts=[instruction("sea")], completions=["fish fish crab reef gull fish"]) == [4 / 6]
    # the place column wins over the text; a prompt of another task cannot be scored (None)
    scores = reward(
        prompts=[farm, "2+3"], completions=["fish fish crab reef gull fish"] * 2, place=["sea", None]
    )
    assert scores == [4 / 6, None]
    assert place_of(instruction("forest")) == "forest" and place_of("Tell a story about the moon.") is None
    with pytest.raises(ValueError, match="unknown story place"):
        instruction("moon")


def test_word_distribution_is_zipf_and_the_data_quality_is_the_analytic_653():
    harmonic = sum(k**-ZIPF_EXPONENT for k in range(1, 13))
    for place, probs in word_distribution().items():
        values = list(probs.values())
        assert set(probs) == set(PLACE_WORDS[place]) and math.isclose(sum(values), 1.0)
        assert values == sorted(values, reverse=True) and math.isclose(values[0], 1 / harmonic)
    assert round(1 / harmonic, 3) == 0.388  # the head word's share of the draws
    assert expected_quality() == pytest.approx(0.653, abs=5e-4)  # TINYWORLD_JUDGES_LPO.md §2.1
    data = sample_stories(6000, seed=0)
    stats = story_stats([t for _, t in data], [p for p, _ in data])
    assert stats["validity"] == 1.0 and abs(stats["quality"] - expected_quality()) < 0.01
    assert all(1850 <= c <= 2150 for c in Counter(p for p, _ in data).values())
    assert stats["vocab_words"] == 12 and 0.3 < stats["repeat_rate"] < 0.4  # drawn with replacement


def test_sampling_is_deterministic_by_seed():
    assert sample_stories(50, seed=3) == sample_stories(50, seed=3) != sample_stories(50, seed=4)
    with pytest.raises(ValueError, match="n must be"):
        sample_stories(-1, seed=0)


def test_story_stats_by_hand():
    texts = [
        "cow cow cow cow cow cow",
        "cow pig hen goat sheep barn",
        "nope",
        "fish fish crab reef gull fish",
    ]
    stats = story_stats(texts, ["farm", "farm", "farm", "sea"])
    assert stats["num_samples"] == 4 and stats["validity"] == 3 / 4
    assert stats["quality"] == pytest.approx((1 / 6 + 1 + 0 + 4 / 6) / 4)
    assert stats["distinct_words"] == pytest.approx((1 + 6 + 4) / 3)
    assert stats["repeat_rate"] == pytest.approx((5 + 0 + 2) / 18)
    assert stats["vocab_words"] == pytest.approx((6 + 4) / 2)  # farm uses 6 words, sea 4
    assert story_stats(["nope"], ["sea"])["distinct_words"] == 0.0
    with pytest.raises(ValueError, match="one place per text"):
        story_stats(["cow"], [])


def test_lpo_sft_is_half_math_half_story():
    records = load_records("world:lpo-sft", num=400, seed=0, levels=[1], bug=0.9)  # other options ignored
    stories = [r for r in records if place_of(r["messages"][0]["content"])]
    maths = [r for r in records if "level" in r]
    assert len(records) == 400 and len(stories) == 200 and len(maths) == 200
    assert {r["level"] for r in maths} == {1, 2, 3}
    assert all(
        r["messages"][1]["content"].endswith(f"Answer: {eval(r['messages'][0]['content'])}") for r in maths
    )
    assert all(
        story_score(r["messages"][1]["content"], place_of(r["messages"][0]["content"])) > 0 for r in stories
    )
    assert records[:4] != maths[:2] + stories[:2]  # shuffled, not blocked
    assert load_records("world:lpo-sft", num=10, seed=1) != load_records("world:lpo-sft", num=10, seed=0)
    with pytest.raises(ValueError, match="train split only"):
        load_records("world:lpo-sft:valid", num=2)


def test_lpo_prompts_alternate_tasks_and_a_rubric_routes_the_rewards():
    records = load_records("world:lpo-prompts", num=7, seed=0)
    assert [r["task"] for r in records] == ["math", "story"] * 3 + ["math"]
    assert [r["place"] for r in records if r["task"] == "story"] == list(PLACES)
    assert all(r["answer"] and r["split"] == "train" for r in records if r["task"] == "math")
    assert all(
        r["split"] == "test" for r in load_records("world:lpo-prompts:test", num=4) if r["task"] == "math"
    )
    rubric = Rubric({"math": [build_reward("world_answer")], "story": [build_reward("story_quality")]})
    source = load_prompt_source("world:lpo-prompts", per_step=8, seed=0, pool_size=16)
    batch = source.at(1)
    assert {p.task for p in batch} == {"math", "story"}
    completions = [f"Answer: {p.answer}" if p.task == "math" else "cow cow cow cow cow cow" for p in batch]
    expected = [1.0 if p.task == "math" else (1 / 6 if p.meta["place"] == "farm" else 0.0) for p in batch]
    values = rubric.score(
        batch, [Completion(p.id, c) for p, c in zip(batch, completions, strict=True)]
    ).values
    assert values == pytest.approx(expected)


def _complete(prompts, text_of):
    return [Completion(prompt_id=p.id, text=text_of(p)) for p in prompts]


def test_the_lpo_eval_set_scores_mean_reward_and_per_type_rewards():
    eval_set = load_eval_set("world:lpo", per_level=6, seed=0)
    prompts = eval_set.prompts
    assert [p.task for p in prompts] == ["math", "story"] * 6
    assert all(p.meta["split"] == "test" for p in prompts if p.task == "math")
    assert {p.meta["level"] for p in prompts if p.task == "math"} == {1, 2, 3}
    assert eval_set.max_new_tokens == 64 and eval_set.diversity is not None
    story = {
        "forest": "oak oak fox fern tree tree",
        "sea": "fish " * 6,
        "farm": "cow pig hen goat sheep barn",
    }
    completions = _complete(
        prompts, lambda p: f"Answer: {p.answer}" if p.task == "math" else story[p.meta["place"]]
    )
    completions[0] = Completion(prompts[0].id, "Answer: -1")  # one wrong MATH answer
    rewards = [lpo_reward(p, c) for p, c in zip(prompts, completions, strict=True)]
    assert rewards[:6] == pytest.approx([0, 4 / 6, 1, 1 / 6, 1, 1])  # forest, sea, farm in turn
    metrics = eval_set.diversity(completions)
    assert metrics["math_reward"] == pytest.approx(5 / 6)
    assert metrics["story_reward"] == pytest.approx((4 / 6 + 1 / 6 + 1) * 2 / 6)
    assert metrics["story_validity"] == 1.0 and metrics["story_repeat_rate"] == pytest.approx(
        (2 + 5 + 0) / 18
    )
    only_math = lpo_diversity(completions[:1], {p.id: p for p in prompts})
    assert only_math == {"math_reward": 0.0}


def test_eval_config_accepts_world_lpo():
    from selftaught.configs.train import EvalConfig

    assert EvalConfig(data="world:lpo").data == "world:lpo"
    with pytest.raises(ValueError, match="world:lpo"):
        EvalConfig(data="world:lpo2")


class _FixedEngine:
    """Answers MATH right only at temperature 0 and STORY with one word repeated at temperature 0."""

    def generate(self, prompts, sampling):
        def text(p, i):
            if p.task == "math":
                return f"Answer: {p.answer}" if sampling.temperature == 0 else "Answer: -1"
            words = PLACE_WORDS[p.meta["place"]]
            return " ".join(words[0] for _ in range(6)) if sampling.temperature == 0 else " ".join(words[:6])

        return [[Completion(p.id, text(p, i), token_ids=[1]) for i in range(sampling.n)] for p in prompts]


def test_temperature_sweep_rows_by_hand():
    rows = temperature_sweep(_FixedEngine(), (0.0, 1.0), num_prompts=10, seed=0)
    assert rows == [
        {
            "temperature": 0.0,
            "math_accuracy": 1.0,
            "story_quality": pytest.approx(1 / 6),
            "all": pytest.approx(7 / 12),
        },
        {"temperature": 1.0, "math_accuracy": 0.0, "story_quality": 1.0, "all": 0.5},
    ]
    with pytest.raises(ValueError, match="num_prompts"):
        temperature_sweep(_FixedEngine(), (0.0,), num_prompts=1)


def test_fixed_temperature_sweep_on_a_random_tiny_model(tmp_path):
    from selftaught.models.io import save_model
    from selftaught.models.tiny import build_tiny_llama

    tokenizer = build_tokenizer()
    model = build_tiny_llama(
        "xs",
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        seed=0,
    )
    save_model(model, tokenizer, tmp_path / "model")
    rows = fixed_temperature_sweep(tmp_path / "model", (0.0, 0.6), num_prompts=6, seed=0)
    assert [r["temperature"] for r in rows] == [0.0, 0.6]
    for row in rows:
        assert set(row) == {"temperature", "math_accuracy", "story_quality", "all"}
        assert row["math_accuracy"] == 0.0 and row["story_quality"] == 0.0  # an untrained model scores 0
    assert fixed_temperature_sweep(tmp_path / "model", (0.0, 0.6), num_prompts=6, seed=0) == rows
