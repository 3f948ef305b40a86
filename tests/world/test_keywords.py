"""The keywords task (DivPO's graded-quality variant): strict parser, the seeded score tables, the graded
reward, Zipf-skewed data with 10% malformed, the world sources and the diversity statistics."""

import math
from collections import Counter

import pytest

from selftaught.data.catalog import load_records
from selftaught.data.prompt_source import load_prompt_source
from selftaught.rewards.registry import build_reward
from selftaught.world.keywords import (
    JUNK_WORDS,
    MALFORMED_KINDS,
    TOPICS,
    WORDS,
    ZIPF_EXPONENT,
    instruction,
    keywords_quality,
    keywords_score,
    keywords_stats,
    largest_pool,
    parse_keywords,
    sample_keywords,
    sample_labelled_keywords,
    topic_of,
    word_distribution,
    word_scores,
)
from selftaught.world.tokenizer import build_tokenizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("owl fern storm moon key", ("owl", "fern", "storm", "moon", "key")),
        ("  tree moss leaf owl deer \n", ("tree", "moss", "leaf", "owl", "deer")),  # surrounding whitespace
        ("owl fern storm moon", None),  # four words
        ("owl fern storm moon key door", None),  # six words
        ("owl fern storm moon owl", None),  # a repeated word
        ("owl fern the moon key", None),  # a word outside the vocabulary
        ("Owl fern storm moon key", None),  # capitalised
        ("owl fern storm moon key.", None),  # punctuation
        ("owl, fern, storm, moon, key", None),  # commas
        ("owl fern  storm moon key", None),  # two spaces
        ("owl\tfern storm moon key", None),  # a tab
        ("owlfern storm moon key door", None),  # glued words
        ("", None),
    ],
)
def test_parser_table(text, expected):
    assert parse_keywords(text) == expected


def test_vocabulary_is_sixty_distinct_short_lowercase_words_and_junk_is_outside():
    assert len(WORDS) == 60 and len(set(WORDS)) == 60
    assert all(w.isascii() and w.isalpha() and w.islower() and 3 <= len(w) <= 6 for w in WORDS)
    assert not set(JUNK_WORDS) & set(WORDS)


def test_score_tables_have_12_top_20_half_and_28_zero_words_per_topic_and_differ_by_topic():
    tables = word_scores()
    assert list(tables) == list(TOPICS)
    for table in tables.values():
        assert set(table) == set(WORDS)
        assert Counter(table.values()) == {1.0: 12, 0.5: 20, 0.0: 28}
    tops = [frozenset(w for w, s in table.items() if s == 1.0) for table in tables.values()]
    assert len(set(tops)) == 4  # a seeded table per topic
    assert word_scores() == tables


def _score_of(topic, level, k):
    """The k-th word (in WORDS order) that scores `level` for `topic`."""
    return [w for w in WORDS if word_scores()[topic][w] == level][k]


def test_quality_is_the_mean_word_score_with_hand_computed_values():
    sea = word_scores()["sea"]
    top = [_score_of("sea", 1.0, k) for k in range(5)]
    half = [_score_of("sea", 0.5, k) for k in range(5)]
    zero = [_score_of("sea", 0.0, k) for k in range(5)]
    cases = [
        (top, 1.0),  # 5 x 1.0
        (top[:4] + half[:1], 0.9),  # (4 + 0.5) / 5
        (top[:2] + half[:2] + zero[:1], 0.6),  # (2 + 1 + 0) / 5
        (half, 0.5),
        (half[:1] + zero[:4], 0.1),
        (zero, 0.0),
    ]
    for words, expected in cases:
        assert sum(sea[w] for w in words) / 5 == pytest.approx(expected)
        assert keywords_score(" ".join(words), "sea") == pytest.approx(expected), words
    assert keywords_score(" ".join(top[:4] + top[:1]), "sea") == 0.0  # a repeat is forced to 0
    assert keywords_score(" ".join(top[:4]), "sea") == 0.0  # four words
    assert keywords_score(" ".join(top[:4] + ["xq"]), "sea") == 0.0  # an unknown word
    other = next(t for t in TOPICS if word_scores()[t][top[0]] != 1.0)
    assert keywords_score(" ".join(top), other) < 1.0  # quality depends on the topic


def test_reward_by_name_reads_the_topic_column_or_the_prompt_text():
    reward = build_reward("keywords_quality")
    assert reward is keywords_quality
    top = " ".join(_score_of("forest", 1.0, k) for k in range(5))
    half = " ".join(_score_of("forest", 0.5, k) for k in range(5))
    forest = [{"role": "user", "content": instruction("forest")}]
    chat = [[{"role": "assistant", "content": text}] for text in (top, half, "owl")]
    assert reward(prompts=[forest] * 3, completions=chat) == [1.0, 0.5, 0.0]  # topic from the text
    assert reward(prompts=[instruction("forest")], completions=[top]) == [1.0]  # a string prompt
    # the topic column wins over the text; a prompt of another task cannot be scored (None)
    scores = reward(prompts=[forest, "What is 2+2?"], completions=[top, top], topic=["sea", None])
    assert scores == [keywords_score(top, "sea"), None] and scores[0] != 1.0
    assert (
        topic_of(instruction("desert")) == "desert"
        and topic_of("Keywords for a story about the moon.") is None
    )
    with pytest.raises(ValueError, match="unknown keywords topic"):
        instruction("moon")


def test_word_distribution_is_zipf_with_a_top_word_head():
    harmonic = sum(k**-ZIPF_EXPONENT for k in range(1, 61))
    for topic, probs in word_distribution().items():
        values = list(probs.values())
        assert set(probs) == set(WORDS) and math.isclose(sum(values), 1.0)
        assert values == sorted(values, reverse=True)
        assert math.isclose(values[0], 1 / harmonic) and 0.24 < values[0] < 0.27
        head = list(probs)[:3]
        assert word_scores()[topic][head[0]] == 1.0  # the head is a top word: DPO can collapse onto it
        assert sum(word_scores()[topic][w] for w in head) >= 2.0
    heads = {next(iter(probs)) for probs in word_distribution().values()}
    assert len(heads) == 4


def test_seed_data_is_skewed_graded_and_about_10_percent_malformed():
    labelled = sample_labelled_keywords(8000, seed=0)
    kinds = Counter(kind for _, _, kind in labelled)
    assert abs(1 - kinds["valid"] / 8000 - 0.1) < 0.017  # 5 binomial standard errors
    assert set(kinds) == {"valid", *MALFORMED_KINDS} and all(110 <= kinds[k] <= 210 for k in MALFORMED_KINDS)
    for _, text, kind in labelled:
        assert (parse_keywords(text) is not None) == (kind == "valid"), (text, kind)
    topics = [t for t, _, _ in labelled]
    assert all(1800 <= count <= 2200 for count in Counter(topics).values())
    stats = keywords_stats([text for _, text, _ in labelled], topics)
    assert abs(stats["validity"] - 0.9) < 0.02
    assert 0.5 < stats["quality"] < 0.6  # graded: mean quality about 0.55 ...
    assert stats["top_share"] < 0.02  # ... and hardly any output at the top (1.0)
    assert 0.14 < stats["head_word_share"] < 0.18  # the head word is in about 80% of the outputs
    assert 4.7 < stats["entropy_1gram_bits"] < 5.2 < math.log2(60)
    assert stats["distinct_words"] == 60
    valid_quality = [keywords_score(x, t) for t, x, k in labelled if k == "valid"]
    assert 0.57 < sum(valid_quality) / len(valid_quality) < 0.63
    assert len({q for q in valid_quality}) >= 9  # graded, not 0/1


def test_sampling_is_deterministic_by_seed_and_checks_its_arguments():
    assert sample_keywords(300, seed=3) == sample_keywords(300, seed=3)
    assert sample_keywords(300, seed=3) != sample_keywords(300, seed=4)
    assert all(parse_keywords(t) for _, t in sample_keywords(500, seed=0, malformed=0.0))
    assert not any(parse_keywords(t) for _, t in sample_keywords(200, seed=0, malformed=1.0))
    with pytest.raises(ValueError, match="malformed must be in"):
        sample_keywords(3, seed=0, malformed=-0.1)


def test_every_output_fits_the_token_budgets():
    tokenizer = build_tokenizer()
    longest = sorted(WORDS, key=lambda w: len(tokenizer(" " + w)["input_ids"]))[-6:]
    valid = len(tokenizer(" ".join(longest[1:]))["input_ids"]) + 1  # + EOS
    six = len(tokenizer(" ".join(longest))["input_ids"]) + 1
    assert valid <= 40 and six <= 48  # KEYWORDS_MAX_NEW_TOKENS of the eval set, world-pretrain


def test_world_sources_give_sft_conversations_and_prompts_with_a_topic_column():
    sft = load_records("world:keywords-sft", num=20, seed=0, levels=[1, 2], bug=0.5)  # other options ignored
    assert len(sft) == 20
    for record, (topic, text) in zip(sft, sample_keywords(20, seed=0), strict=True):
        assert record["messages"] == [
            {"role": "user", "content": instruction(topic)},
            {"role": "assistant", "content": text},
        ]
    prompts = load_records("world:keywords-prompts", num=8, seed=5, levels=[1])
    assert [r["id"] for r in prompts] == [f"keywords-{i}" for i in range(8)]
    assert [r["topic"] for r in prompts] == list(TOPICS) * 2
    assert all(
        r["prompt"] == [{"role": "user", "content": instruction(r["topic"])}] and r["task"] == "keywords"
        for r in prompts
    )
    with pytest.raises(ValueError, match="train split only"):
        load_records("world:keywords-prompts:valid", num=2)


def test_the_online_prompt_source_keeps_the_topic_for_the_reward():
    source = load_prompt_source("world:keywords-prompts", per_step=4, seed=0, pool_size=8)
    batch = source.at(1)
    assert len(batch) == 4 and all(p.task == "keywords" for p in batch)
    assert all(p.meta["topic"] == topic_of(p.messages[-1]["content"]) for p in batch)


def test_keywords_stats_counts_quality_and_per_topic_pool_diversity():
    top = [_score_of("city", 1.0, k) for k in range(6)]
    a = " ".join(top[:5])  # quality 1.0
    b = " ".join(top[1:6])  # 1.0, one new word
    texts = [a, a, b, "junk", a, a]
    topics = ["city"] * 6
    stats = keywords_stats(texts, topics, pool_size=2)  # pools (a, a), (b, junk), (a, a)
    assert stats["num_samples"] == 6 and stats["validity"] == 5 / 6
    assert stats["quality"] == pytest.approx(5 / 6) and stats["top_share"] == 5 / 6
    assert stats["distinct_words"] == 6 and stats["distinct_1"] == pytest.approx(6 / 25)
    assert stats["head_word_share"] == pytest.approx(5 / 25)  # top[1] is in all five valid outputs
    counts = [4, 5, 5, 5, 5, 1]  # top[0] in 4 outputs, top[1..4] in 5, top[5] in 1
    assert stats["entropy_1gram_bits"] == pytest.approx(-sum(c / 25 * math.log2(c / 25) for c in counts))
    assert stats["unique_1grams"] == pytest.approx((5 + 5 + 5) / 3)
    assert stats["unique_ratio"] == pytest.approx(5 / 10)
    # two topics: diversity is per topic, then averaged; pools never mix topics
    mixed = keywords_stats([a, a, a, b], ["city", "sea", "city", "sea"], pool_size=2)
    assert mixed["distinct_words"] == (5 + 6) / 2 and mixed["unique_1grams"] == pytest.approx((5 + 6) / 2)
    assert largest_pool(["city"] * 20 + ["sea"] * 3) == 3 and largest_pool(["city"] * 40) == 16
    with pytest.raises(ValueError, match="pool_size must be in"):
        keywords_stats([a, a, b], ["city", "city", "sea"], pool_size=2)
    with pytest.raises(ValueError, match="one topic per text"):
        keywords_stats([a], [])
    assert keywords_stats(["junk"] * 2, ["sea"] * 2, pool_size=1)["entropy_1gram_bits"] == 0.0
