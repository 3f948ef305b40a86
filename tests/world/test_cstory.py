"""CSTORY, the constrained stories of adaptive decoding's token-level claim: strict parser, the score
(half the kept constraint, half distinct words) by hand, the data's 70% opener rate, the reward by
name, which tokens open a part, the MATH + STORY + CSTORY sources and eval set, and the sweep rows."""

import statistics

import pytest

from selftaught.data.catalog import load_records
from selftaught.evals.sets import load_eval_set, lpo_reward, temperature_sweep
from selftaught.rewards.registry import build_reward
from selftaught.rewards.rubric import Rubric
from selftaught.types import Completion
from selftaught.world.stories import (
    OPENER_P,
    OPENERS,
    PLACE_WORDS,
    PLACES,
    constrained_instruction,
    constrained_prompts,
    constrained_story_score,
    constraint_kept,
    cstory_quality,
    opener_of,
    opener_positions,
    parse_constrained_story,
    place_of,
    sample_constrained_stories,
)
from selftaught.world.tokenizer import build_tokenizer


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("7 cow hen. 7 pig barn. 7 goat hay", True),
        (" 7 cow hen. 3 pig barn. 7 goat hay\n", True),  # surrounding whitespace; another digit parses
        ("7 cow hen. 7 pig barn", False),  # two parts
        ("7 cow hen. 7 pig barn. 7 goat hay. 7 cow hen", False),  # four parts
        ("7 cow. 7 pig barn. 7 goat hay", False),  # one word in a part
        ("7 cow hen hay. 7 pig barn. 7 goat hay", False),  # three words
        ("x cow hen. 7 pig barn. 7 goat hay", False),  # not a digit
        ("0 cow hen. 7 pig barn. 7 goat hay", False),  # 0 is not an opener
        ("7 cow cat. 7 pig barn. 7 goat hay", False),  # not a story word
        ("7 cow hen.7 pig barn. 7 goat hay", False),  # no space after the period
        ("7 cow hen. 7 pig barn. 7 goat hay.", False),  # a final period
        ("", False),
    ],
)
def test_parser_table(text, ok):
    assert (parse_constrained_story(text) is not None) == ok


@pytest.mark.parametrize(
    ("text", "place", "opener", "expected"),
    [
        ("7 cow hen. 7 pig barn. 7 goat hay", "farm", "7", 0.5 * 1 + 0.5 * 6 / 6),
        ("7 cow hen. 3 pig barn. 7 goat hay", "farm", "7", 0.5 * 2 / 3 + 0.5 * 6 / 6),
        ("7 cow cow. 7 cow cow. 7 cow cow", "farm", "7", 0.5 * 1 + 0.5 * 1 / 6),  # greedy-like repeats
        ("1 cow hen. 2 cow hen. 3 cow hen", "farm", "7", 0.5 * 0 + 0.5 * 2 / 6),
        ("7 cow hen. 7 pig barn. 7 goat hay", "sea", "7", 0.0),  # words of another place
        ("7 cow hen. 7 pig barn", "farm", "7", 0.0),  # does not parse
    ],
)
def test_score_by_hand(text, place, opener, expected):
    assert constrained_story_score(text, place, opener) == pytest.approx(expected)


def test_instruction_and_its_parsers():
    text = constrained_instruction("sea", "4")
    assert text == "Tell a story about the sea. Start each part with 4."
    assert place_of(text) == "sea" and opener_of(text) == "4"
    assert opener_of([{"role": "user", "content": text}]) == "4" and opener_of("Tell a story.") is None
    with pytest.raises(ValueError, match="opener"):
        constrained_instruction("sea", "0")
    with pytest.raises(ValueError, match="place"):
        constrained_instruction("moon", "4")


def test_data_keeps_the_opener_seventy_percent_of_the_time_and_is_deterministic():
    outputs = sample_constrained_stories(3000, seed=0)
    assert outputs == sample_constrained_stories(3000, seed=0) != sample_constrained_stories(3000, seed=1)
    assert all(parse_constrained_story(text) for _, _, text in outputs)
    kept = statistics.mean(constraint_kept(text, opener) for _, opener, text in outputs)
    assert abs(kept - OPENER_P) < 0.02
    assert {place for place, _, _ in outputs} == set(PLACES) and {o for _, o, _ in outputs} == set(OPENERS)
    assert all(
        all(w in PLACE_WORDS[place] for w in parse_constrained_story(text)[1]) for place, _, text in outputs
    )


def test_reward_by_name_reads_columns_or_the_prompt():
    reward = build_reward("cstory_quality")
    prompt = constrained_instruction("farm", "5")
    text = "5 cow hen. 5 pig barn. 2 goat hay"
    assert reward([prompt], [text]) == pytest.approx([0.5 * 2 / 3 + 0.5])
    assert reward(["anything"], [text], place=["farm"], opener=["2"]) == pytest.approx([0.5 / 3 + 0.5])
    assert reward(["Tell a story about the farm."], [text]) == [None]  # no opener: cannot score
    assert cstory_quality([prompt], [[{"role": "assistant", "content": text}]]) == reward([prompt], [text])


def test_opener_positions_on_the_world_tokenizer():
    tokenizer = build_tokenizer()
    text = "7 cow hen. 3 pig barn. 7 goat hay"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    pieces = [tokenizer.decode([t]) for t in ids]
    flags = opener_positions(pieces)
    assert [p for p, f in zip(pieces, flags, strict=True) if f] == ["7", "3", "7"]  # one token per part
    assert sum(flags) == 3 and "".join(pieces) == text


def test_sources_mix_three_tasks():
    records = load_records("world:lpo-cstory-sft", num=300, seed=0)
    firsts = [r["messages"][0]["content"] for r in records]
    cstories = [t for t in firsts if opener_of(t)]
    stories = [t for t in firsts if place_of(t) and not opener_of(t)]
    assert len(records) == 300 and len(cstories) == 100 and len(stories) == 100
    with pytest.raises(ValueError, match="train split only"):
        load_records("world:lpo-cstory-sft:valid", num=3)
    prompts = load_records("world:lpo-cstory-prompts", num=8, seed=0)
    assert [r["task"] for r in prompts] == ["math", "story", "cstory"] * 2 + ["math", "math"]
    assert [(r["place"], r["opener"]) for r in prompts if r["task"] == "cstory"] == [
        ("forest", "1"),
        ("sea", "1"),
    ]
    assert [(r["place"], r["opener"]) for r in constrained_prompts(5)][3:] == [("forest", "2"), ("sea", "2")]


def test_eval_set_and_rubric_score_each_task():
    eval_set = load_eval_set("world:lpo-cstory", per_level=3, seed=0)
    prompts = eval_set.prompts
    assert [p.task for p in prompts] == ["math", "story", "cstory"] * 3

    def text(p):
        if p.task == "math":
            return f"Answer: {p.answer}"
        words = PLACE_WORDS[p.meta["place"]]
        if p.task == "story":
            return " ".join(words[:6])
        return f"{p.meta['opener']} {words[0]} {words[1]}. 9 {words[2]} {words[3]}. {p.meta['opener']} {words[0]} {words[0]}"

    completions = [Completion(p.id, text(p)) for p in prompts]
    rewards = [lpo_reward(p, c) for p, c in zip(prompts, completions, strict=True)]
    assert rewards[:3] == pytest.approx([1.0, 1.0, 0.5 * 2 / 3 + 0.5 * 4 / 6])  # opener 1 != 9
    metrics = eval_set.diversity(completions)
    assert metrics["cstory_kept"] == pytest.approx(2 / 3) and metrics["cstory_reward"] == pytest.approx(
        rewards[2]
    )
    rubric = Rubric(
        {
            t: [build_reward(r)]
            for t, r in [("math", "world_answer"), ("story", "story_quality"), ("cstory", "cstory_quality")]
        }
    )
    assert rubric.score(prompts, completions).values == pytest.approx(rewards)


class _ConstrainedEngine:
    """At temperature 0 keeps every opener and repeats one word; hot, breaks one opener of three and
    uses distinct words."""

    def generate(self, prompts, sampling):
        def text(p):
            if p.task == "math":
                return f"Answer: {p.answer}"
            words = PLACE_WORDS[p.meta["place"]]
            if p.task == "story":
                return " ".join(words[:6])
            d = p.meta["opener"]
            if sampling.temperature == 0:
                return f"{d} {words[0]} {words[0]}. {d} {words[0]} {words[0]}. {d} {words[0]} {words[0]}"
            return f"{d} {words[0]} {words[1]}. {d} {words[2]} {words[3]}. 9 {words[4]} {words[5]}"

        return [[Completion(p.id, text(p), token_ids=[1]) for _ in range(sampling.n)] for p in prompts]


def test_the_sweep_reports_cstory_quality_and_kept_constraint():
    rows = temperature_sweep(_ConstrainedEngine(), (0.0, 1.0), num_prompts=9, seed=0, constrained=True)
    cold, hot = rows
    assert cold["cstory_kept"] == 1.0 and cold["cstory_quality"] == pytest.approx(0.5 + 0.5 / 6)
    assert hot["cstory_quality"] == pytest.approx(0.5 * 2 / 3 + 0.5)  # one opener of 3 is 9 (openers 1-3)
    assert cold["all"] == pytest.approx((1 + 1 + 0.5 + 0.5 / 6) / 3)
    with pytest.raises(ValueError, match="num_prompts"):
        temperature_sweep(_ConstrainedEngine(), (0.0,), num_prompts=2, constrained=True)
