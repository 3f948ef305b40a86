"""Golden values for the DivPO diversity metrics, computed by hand in the comments."""

import math
import random
import string
import sys

import pytest

from selftaught.evals.diversity import (
    attribute_unique_ratios,
    compression_ratio,
    distinct_n,
    diversity_report,
    mean_token_nll,
    ngram_entropy,
    plot_frontier,
    quality_diversity_frontier,
    self_bleu,
    unique_ngrams,
    unique_ratio,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a", "b", "a", None], 2 / 4),  # distinct {a, b}; None is a sample, not a value
        ([None, None], 0.0),
        (["x"], 1.0),
        (["x", "y", "z"], 1.0),
        ([1, 1, 1, 1], 1 / 4),
    ],
)
def test_unique_ratio(values, expected):
    assert unique_ratio(values) == pytest.approx(expected)


def test_unique_ratio_of_no_values_is_an_error():
    with pytest.raises(ValueError, match="at least one value"):
        unique_ratio([])


def test_attribute_unique_ratios_count_unparseable_and_missing_as_samples():
    records = [
        {"name": "Astrid", "city": "Oslo"},
        {"name": "Astrid", "city": "Paris"},
        None,  # did not parse
        {"name": "Bo"},  # no city
        {"name": "Cy", "city": "Oslo"},
    ]
    per_attribute, mean = attribute_unique_ratios(records, ["name", "city"])
    # name: {Astrid, Bo, Cy} / 5 = 0.6; city: {Oslo, Paris} / 5 = 0.4; mean 0.5
    assert per_attribute == pytest.approx({"name": 3 / 5, "city": 2 / 5})
    assert mean == pytest.approx(0.5)
    per_attribute, mean = attribute_unique_ratios(records[:3], ["name", "city"])
    # name: {Astrid} / 3; city: {Oslo, Paris} / 3; mean (1/3 + 2/3) / 2 = 0.5
    assert per_attribute == pytest.approx({"name": 1 / 3, "city": 2 / 3})
    assert mean == pytest.approx(0.5)


def test_attribute_unique_ratios_compare_unhashable_values_by_content():
    records = [{"tags": ["a", "b"]}, {"tags": ["a", "b"]}, {"tags": ["b"]}]
    per_attribute, _ = attribute_unique_ratios(records, ["tags"])
    assert per_attribute == {"tags": pytest.approx(2 / 3)}  # {[a, b], [b]} / 3
    with pytest.raises(ValueError, match="at least one attribute"):
        attribute_unique_ratios(records, [])


@pytest.mark.parametrize(
    ("texts", "n", "expected"),
    [
        (["a b", "a c"], 1, 3 / 4),  # a, b, a, c -> {a, b, c} / 4
        (["a b", "a c"], 2, 2 / 2),  # (a b), (a c)
        (["A b", "a B"], 1, 2 / 4),  # lowercased: a, b, a, b
        (["a a", "a a"], 2, 1 / 2),  # (a a) twice; crossing the boundary would give 1/3
        (["cat. cat"], 1, 2 / 2),  # punctuation stays attached: "cat." != "cat"
        (["a\tb\nc  a"], 1, 3 / 4),  # any whitespace splits
        (["a", "b"], 2, 0.0),  # no bigram at all
    ],
)
def test_distinct_n(texts, n, expected):
    assert distinct_n(texts, n) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("texts", "n", "expected"),
    [
        (["a b", "a c"], 1, 3),
        (["a b", "a c"], 2, 2),
        (["x x x"], 1, 1),
        (["The cat", "the CAT sat"], 1, 3),  # the, cat, sat
    ],
)
def test_unique_ngrams(texts, n, expected):
    assert unique_ngrams(texts, n) == expected


@pytest.mark.parametrize(
    ("texts", "n", "expected"),
    [
        # p(a) = 2/3, p(b) = 1/3: -(2/3 log2 2/3 + 1/3 log2 1/3) = log2 3 - 2/3 = 0.918296
        (["a a b"], 1, math.log2(3) - 2 / 3),
        (["a a", "b"], 1, math.log2(3) - 2 / 3),  # pooled over texts: the same distribution
        (["a b c d"], 1, 2.0),  # uniform over 4: log2 4
        (["a a a"], 1, 0.0),
        (["a b", "a b"], 2, 0.0),  # one bigram, twice
        (["a b", "b a"], 2, 1.0),  # two bigrams, once each
        (["a"], 2, 0.0),  # no bigram
    ],
)
def test_ngram_entropy(texts, n, expected):
    assert ngram_entropy(texts, n) == pytest.approx(expected)
    if texts == ["a a b"]:
        assert ngram_entropy(texts, n) == pytest.approx(0.918, abs=5e-4)


@pytest.mark.parametrize("metric", [distinct_n, unique_ngrams, ngram_entropy])
def test_ngram_metrics_reject_no_texts_and_bad_n(metric):
    with pytest.raises(ValueError, match="at least one text"):
        metric([], 1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        metric(["a b"], 0)


def _random_texts(num: int, length: int) -> list[str]:
    rng = random.Random(0)
    return ["".join(rng.choice(string.ascii_lowercase + " ") for _ in range(length)) for _ in range(num)]


def test_compression_ratio_direction_repetition_compresses_better():
    identical = ["the quick brown fox jumps over the lazy dog"] * 20
    distinct = _random_texts(20, len(identical[0]))
    # default compressed / original: higher = more diverse
    assert compression_ratio(identical) < 0.2 < 0.6 < compression_ratio(distinct)
    # the paper's original / compressed: lower = more diverse
    paper = "original_over_compressed"
    assert compression_ratio(identical, convention=paper) > compression_ratio(distinct, convention=paper)
    assert compression_ratio(distinct) * compression_ratio(distinct, convention=paper) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        # gzip = 10-byte header + deflate + 8-byte trailer (CRC32, size). Deflate of a tiny input is one
        # fixed-Huffman block: 3 header bits, 8 bits per literal byte, 7 bits end-of-block.
        (["a"], (10 + 3 + 8) / 1),  # 3 + 8 + 7 = 18 bits -> 3 bytes; 21 / 1 byte
        (["a", "a"], (10 + 5 + 8) / 3),  # "a\na": 3 + 3 * 8 + 7 = 34 bits -> 5 bytes; 23 / 3 bytes
    ],
)
def test_compression_ratio_golden(texts, expected):
    assert compression_ratio(texts) == pytest.approx(expected)
    assert compression_ratio(texts, convention="original_over_compressed") == pytest.approx(1 / expected)


def test_compression_ratio_rejects_nothing_to_compress_and_unknown_conventions():
    texts = _random_texts(5, 50)
    with pytest.raises(ValueError, match="at least one text"):
        compression_ratio([])
    with pytest.raises(ValueError, match="nothing to compress"):
        compression_ratio([""])
    with pytest.raises(ValueError, match="convention must be"):
        compression_ratio(texts, convention="bigger_is_better")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("texts", "max_n", "expected"),
    [
        (["the cat sat on the mat"] * 3, 4, 1.0),  # identical: every precision 1, no brevity penalty
        (["a b c", "d e f", "g h i"], 4, 0.0),  # disjoint: unigram precision 0
        # each text vs the other: unigrams a, b match of 3 -> 2/3, same length so no brevity penalty
        (["a b c", "a b d"], 1, 2 / 3),
        # bigrams: (a b) matches of (a b), (b c) -> 1/2; geometric mean sqrt(2/3 * 1/2) = sqrt(1/3)
        (["a b c", "a b d"], 2, math.sqrt(1 / 3)),
    ],
)
def test_self_bleu(texts, max_n, expected):
    assert self_bleu(texts, max_n=max_n) == pytest.approx(expected)
    assert 0.0 <= self_bleu(texts, max_n=max_n) <= 1.0


def test_self_bleu_needs_two_texts_and_names_the_extra(monkeypatch):
    with pytest.raises(ValueError, match="at least two texts"):
        self_bleu(["only one"])
    monkeypatch.setitem(sys.modules, "sacrebleu.metrics", None)  # import -> ImportError
    with pytest.raises(ImportError, match=r"selftaught\[diversity\]"):
        self_bleu(["a", "b"])


def test_mean_token_nll_pools_tokens():
    # -(-1 - 2 - 3) / 3 tokens = 2.0 (a mean of per-text means would be (1.5 + 3) / 2 = 2.25)
    assert mean_token_nll([[-1.0, -2.0], [-3.0]]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"logprobs_per_text\[1\] is None"):
        mean_token_nll([[-1.0], None])
    with pytest.raises(ValueError, match="at least one token"):
        mean_token_nll([[], []])


def test_diversity_report_has_stable_keys_and_values():
    texts = ["a b", "a c"]
    records = [{"name": "Astrid"}, {"name": "Astrid"}]
    report = diversity_report(
        texts, logprobs=[[-1.0, -1.0], [-2.0, -2.0]], records=records, attributes=["name"]
    )
    assert set(report) == {
        "distinct_1",
        "distinct_2",
        "unique_1grams",
        "entropy_1gram_bits",
        "compression_ratio",
        "self_bleu",
        "mean_token_nll",
        "unique_ratio_name",
        "unique_ratio_mean",
    }
    assert report["distinct_1"] == pytest.approx(3 / 4)
    assert report["distinct_2"] == pytest.approx(1.0)
    assert report["unique_1grams"] == 3.0
    assert report["entropy_1gram_bits"] == pytest.approx(1.5)  # p = 1/2, 1/4, 1/4: 0.5 + 0.5 + 0.5
    assert report["compression_ratio"] == pytest.approx(compression_ratio(texts))
    assert report["self_bleu"] == pytest.approx(self_bleu(texts))
    assert report["mean_token_nll"] == pytest.approx(1.5)  # 6 / 4
    assert report["unique_ratio_name"] == pytest.approx(0.5) and report["unique_ratio_mean"] == pytest.approx(
        0.5
    )


def test_diversity_report_skips_missing_inputs_and_rejects_bad_ones():
    single = diversity_report(["one text only"])
    assert set(single) == {
        "distinct_1",
        "distinct_2",
        "unique_1grams",
        "entropy_1gram_bits",
        "compression_ratio",
    }
    with pytest.raises(ValueError, match="at least one text"):
        diversity_report([])
    with pytest.raises(ValueError, match="one entry per text"):
        diversity_report(["a", "b"], logprobs=[[-1.0]])
    with pytest.raises(ValueError, match="together"):
        diversity_report(["a", "b"], records=[{}, {}])


def test_quality_diversity_frontier():
    points = [
        ("A", 0.9, 1.0),
        ("B", 0.8, 3.0),
        ("C", 0.5, 5.0),
        ("D", 0.7, 2.0),  # dominated by B (0.8 >= 0.7, 3 >= 2)
        ("E", 0.5, 4.0),  # dominated by C (same quality, less diverse)
        ("F", 0.9, 1.0),  # equal to A: both kept
        ("G", 0.9, 0.5),  # dominated by A
        ("H", 0.4, 5.0),  # dominated by C (same diversity, lower quality)
    ]
    frontier = quality_diversity_frontier(points)
    assert [label for label, _, _ in frontier] == ["C", "B", "A", "F"]  # by quality, increasing
    assert quality_diversity_frontier([]) == []
    with pytest.raises(ValueError, match="NaN"):
        quality_diversity_frontier([("x", math.nan, 1.0)])


def test_plot_frontier_writes_a_png(tmp_path):
    series = {
        "DivPO rho sweep": [("rho=0.1", 0.80, 30.0), ("rho=0.3", 0.75, 42.0)],
        "DPO beta sweep": [("beta=0.05", 0.82, 18.0), ("beta=0.5", 0.70, 25.0)],
        "temperature sweep": [("T=1.0", 0.72, 24.0), ("T=1.5", 0.50, 40.0)],
    }
    path = plot_frontier(series, tmp_path / "plots" / "frontier.png", "unique 1-grams", "ArmoRM")
    assert path == tmp_path / "plots" / "frontier.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    with pytest.raises(ValueError, match="at least one series"):
        plot_frontier({"empty": []}, tmp_path / "empty.png")
