"""Story-title prompts for real models (`world.titles`, `world:story-title-prompts`): 256 distinct titles
split 192/32/32 with every word in every split, deterministic raw-text records cycling over a split."""

import pytest

from selftaught.data.catalog import load_records
from selftaught.data.prompt_source import load_prompt_source
from selftaught.world.titles import ADJECTIVES, NOUNS, story_title_prompts, titles


def test_the_splits_are_disjoint_and_each_uses_every_word():
    splits = {split: titles(split) for split in ("train", "valid", "test")}
    assert [len(t) for t in splits.values()] == [192, 32, 32]
    every = [t for ts in splits.values() for t in ts]
    assert len(set(every)) == 256 == len(ADJECTIVES) * len(NOUNS)
    for ts in splits.values():
        assert {t.split()[1] for t in ts} == set(ADJECTIVES) and {t.split()[2] for t in ts} == set(NOUNS)
    assert len({t.split()[1] for t in splits["train"][:16]}) >= 12  # a prefix varies the words
    assert titles("test") == titles("test")  # no randomness


def test_records_cycle_over_the_splits_titles_as_raw_text_story_prompts():
    records = story_title_prompts(200, "train")
    assert records[0] == {
        "id": "title-0",
        "prompt": 'Write a short story titled "The Silent Lighthouse".\n\nStory:',
        "task": "story",
        "title": "The Silent Lighthouse",
    }
    assert len({r["prompt"] for r in records}) == 192 and records[192]["title"] == records[0]["title"]
    assert len({r["id"] for r in records}) == 200
    test = story_title_prompts(3, "test")
    assert [r["id"] for r in test] == ["title-test-0", "title-test-1", "title-test-2"]
    assert {r["title"] for r in story_title_prompts(32, "test")} == set(titles("test"))


def test_the_world_source_reads_as_prompts_with_a_title_column():
    assert load_records("world:story-title-prompts", num=5) == story_title_prompts(5)
    assert load_records("world:story-title-prompts:valid", num=4) == story_title_prompts(4, "valid")
    source = load_prompt_source("world:story-title-prompts", per_step=64, seed=0, pool_size=4096, limit=64)
    batch = source.at(1)
    assert len({p.text for p in batch}) == 64 and all(p.task == "story" and p.messages == [] for p in batch)
    assert batch[0].meta["title"] in batch[0].text
    with pytest.raises(ValueError, match="splits"):
        load_records("world:story-title-prompts:dev", num=2)
