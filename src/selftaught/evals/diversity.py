"""The diversity metrics of DivPO (Lanchantin et al. 2025, 2501.18101, papers_B.md §3.3-3.4), layer L3.

DivPO claims more diverse outputs at equal quality than DPO. "Diverse" is measured over a pool of
samples for ONE prompt (average the numbers over prompts yourself), with several complementary metrics:

- structured outputs (personas): `unique_ratio` per attribute and their mean (`attribute_unique_ratios`);
- free text (keywords, stories): `distinct_n`, `unique_ngrams`, `ngram_entropy`, `compression_ratio`,
  `self_bleu`;
- model side: `mean_token_nll`, the per-token NLL of the samples (an entropy proxy).

`diversity_report` computes all that apply in one flat dict. `quality_diversity_frontier` and
`plot_frontier` draw the paper's Pareto plot (quality vs diversity across rho / beta / temperature sweeps).

Conventions:
- The n-gram metrics split the lowercased text on whitespace (`text.lower().split()`): punctuation stays
  attached ("cat." != "cat"), so pre-normalise texts if that matters. n-grams never cross text
  boundaries. `self_bleu` keeps sacrebleu's own standard tokenisation (13a, case-sensitive).
- Direction: every metric here is "higher = more diverse" except `self_bleu` (lower = more diverse) and
  `compression_ratio(..., convention="original_over_compressed")` (the paper's, lower = more diverse).
- An empty pool (no texts, no values) is a ValueError: there is nothing to measure. A pool whose texts
  hold no n-gram at all (all shorter than n) has distinct_n 0.0, 0 unique n-grams and entropy 0.0.
- Optional dependencies: sacrebleu (`self_bleu`) and matplotlib (`plot_frontier`) are the `diversity`
  extra, imported only inside the functions that need them.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

FrontierPoint = tuple[str, float, float]
"""(label, quality, diversity): one model or setting, e.g. ("rho=0.3", 0.71, 42.0)."""

CompressionConvention = Literal["compressed_over_original", "original_over_compressed"]

_EXTRA_HINT = "pip install 'selftaught[diversity]'"


# --- structured outputs ----------------------------------------------------------------------------


def unique_ratio(values: Sequence[Hashable | None]) -> float:
    """|distinct non-None values| / |values|, in (0, 1] when any value is present.

    A None value (the attribute is missing, or the whole output did not parse) counts as a sample but
    never as a distinct value: a pool of unparseable outputs is not diverse, so failures lower the ratio
    instead of disappearing. Values compare exactly ("Astrid" != "astrid"); normalise them first if needed.
    Raises ValueError on an empty list.
    """
    if not values:
        raise ValueError("unique_ratio needs at least one value (got an empty list)")
    distinct = {v for v in values if v is not None}
    return len(distinct) / len(values)


def attribute_unique_ratios(
    records: Sequence[Mapping[str, Any] | None], attributes: Sequence[str]
) -> tuple[dict[str, float], float]:
    """(unique ratio per attribute, their mean): the persona metric of DivPO §3.3.

    `records` are the parsed outputs of one prompt's samples, None for an output that did not parse; a
    record without an attribute gives None for it. Both count as samples but not as distinct values
    (see `unique_ratio`). Unhashable values (a JSON list or object) are compared by their JSON text.
    """
    if not attributes:
        raise ValueError("attribute_unique_ratios needs at least one attribute name, e.g. ['name', 'city']")
    per_attribute = {
        name: unique_ratio([_attribute_value(record, name) for record in records]) for name in attributes
    }
    return per_attribute, sum(per_attribute.values()) / len(per_attribute)


def _attribute_value(record: Mapping[str, Any] | None, name: str) -> Hashable | None:
    value = None if record is None else record.get(name)
    if value is None or isinstance(value, Hashable):
        return value
    return json.dumps(value, sort_keys=True)


# --- n-gram statistics -----------------------------------------------------------------------------


def _ngram_counts(texts: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    """Counts of the word n-grams of every text, pooled (n-grams stay inside a text)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not texts:
        raise ValueError("a diversity metric needs at least one text (got an empty list)")
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        words = text.lower().split()
        counts.update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return counts


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al. 2016): distinct word n-grams / total word n-grams over all texts, in [0, 1].

    0.0 when the texts hold no n-gram at all (every text shorter than n words).
    """
    counts = _ngram_counts(texts, n)
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def unique_ngrams(texts: Sequence[str], n: int = 1) -> int:
    """The number of distinct word n-grams over all texts (DivPO's "unique 1-grams" for n = 1).

    Unlike `distinct_n` it is not normalised by length, so longer samples score higher: compare it only
    between pools of the same size and similar lengths (the paper's 5-keyword outputs).
    """
    return len(_ngram_counts(texts, n))


def ngram_entropy(texts: Sequence[str], n: int = 1) -> float:
    """Shannon entropy in bits, -sum_g p(g) log2 p(g), of the word n-gram distribution pooled over texts.

    Maximal (log2 of the number of n-grams) when every n-gram occurs once; 0.0 for one repeated n-gram
    and for texts with no n-gram.
    """
    counts = _ngram_counts(texts, n)
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


# --- whole-text similarity -------------------------------------------------------------------------


def compression_ratio(
    texts: Sequence[str], convention: CompressionConvention = "compressed_over_original"
) -> float:
    """gzip-compressed size / original size (UTF-8 bytes) of the texts joined by newlines.

    Default convention compressed/original: HIGHER = MORE diverse (repetition compresses well), the
    direction of fairseq2's helper (papers_B.md §3.4). The DivPO paper reports the inverse,
    original/compressed, where LOWER = more diverse: pass `convention="original_over_compressed"` for it.
    gzip runs with compresslevel=9 (sizes depend on the level) and mtime=0 (no timestamp, so the
    compressed bytes are reproducible too). gzip's 18 bytes of header and trailer dominate short inputs
    (a ratio above 1 is possible): compare pools of similar total length. Raises ValueError when the
    joined text is empty.
    """
    if not texts:
        raise ValueError("compression_ratio needs at least one text (got an empty list)")
    original = "\n".join(texts).encode("utf-8")
    if not original:
        raise ValueError("compression_ratio got only empty texts: there is nothing to compress")
    compressed = len(gzip.compress(original, compresslevel=9, mtime=0))
    if convention == "compressed_over_original":
        return compressed / len(original)
    if convention == "original_over_compressed":
        return len(original) / compressed
    raise ValueError(
        f"convention must be 'compressed_over_original' or 'original_over_compressed', got {convention!r}"
    )


def self_bleu(texts: Sequence[str], max_n: int = 4) -> float:
    """Self-BLEU (Zhu et al. 2018), in [0, 1]: the mean over texts of the sentence BLEU of each text
    against all the other texts as references. LOWER = MORE diverse (1.0: all texts identical).

    sacrebleu's `BLEU(effective_order=True, max_ngram_order=max_n)` sentence score (its default 13a
    tokenizer, case-sensitive, exp smoothing), divided by 100. effective_order drops the n-gram orders
    a short text does not have, so a 3-word text is not zeroed by its missing 4-grams. Needs at least
    two texts (one text has no references): ValueError otherwise.
    """
    if len(texts) < 2:
        raise ValueError(
            f"self_bleu needs at least two texts (each is scored against the others), got {len(texts)}"
        )
    try:
        from sacrebleu.metrics import BLEU
    except ImportError as err:
        raise ImportError(f"self_bleu needs sacrebleu: {_EXTRA_HINT}") from err
    bleu = BLEU(effective_order=True, max_ngram_order=max_n)
    scores = []
    for i, text in enumerate(texts):
        references = [other for j, other in enumerate(texts) if j != i]
        # sacrebleu gives 100.00000000000004 for identical texts: clamp the float noise into [0, 1]
        scores.append(min(1.0, max(0.0, bleu.sentence_score(text, references).score / 100.0)))
    return sum(scores) / len(scores)


# --- model side ------------------------------------------------------------------------------------


def mean_token_nll(logprobs_per_text: Sequence[Sequence[float] | None]) -> float:
    """Mean per-token negative log-likelihood (nats) over all tokens of all texts: -sum(logprobs) / tokens.

    Inputs are per-token logprobs, e.g. `Completion.logprobs`. Tokens are pooled, so a long sample
    weighs by its length (a per-token rate, like a perplexity's log). Higher = the samples are less
    likely under the generator, a model-side entropy proxy (DivPO's probability criterion). Raises
    ValueError for a None entry (the engine gave no logprobs) or when there is no token at all.
    """
    total, num_tokens = 0.0, 0
    for index, logprobs in enumerate(logprobs_per_text):
        if logprobs is None:
            raise ValueError(
                f"logprobs_per_text[{index}] is None (the engine gave no logprobs): "
                "use an engine that returns them, or leave logprobs out of the report"
            )
        total += sum(logprobs)
        num_tokens += len(logprobs)
    if num_tokens == 0:
        raise ValueError("mean_token_nll needs at least one token logprob (got none)")
    return -total / num_tokens


# --- one report ------------------------------------------------------------------------------------


def diversity_report(
    texts: Sequence[str],
    logprobs: Sequence[Sequence[float] | None] | None = None,
    records: Sequence[Mapping[str, Any] | None] | None = None,
    attributes: Sequence[str] | None = None,
) -> dict[str, float]:
    """Every applicable metric for one prompt's samples, in one flat dict with stable keys:

    distinct_1, distinct_2, unique_1grams, entropy_1gram_bits, compression_ratio (compressed/original,
    higher = more diverse), self_bleu (lower = more diverse; only with >= 2 texts), mean_token_nll (only
    with `logprobs`), unique_ratio_<attribute> and unique_ratio_mean (only with `records` and
    `attributes`, which go together). `logprobs` and `records` are aligned with `texts`.

    Raises ValueError for no texts, all-empty texts (compression), or misaligned inputs.
    """
    report: dict[str, float] = {
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "unique_1grams": float(unique_ngrams(texts, 1)),
        "entropy_1gram_bits": ngram_entropy(texts, 1),
        "compression_ratio": compression_ratio(texts),
    }
    if len(texts) >= 2:
        report["self_bleu"] = self_bleu(texts)
    if logprobs is not None:
        _check_aligned("logprobs", logprobs, texts)
        report["mean_token_nll"] = mean_token_nll(logprobs)
    if (records is None) != (attributes is None):
        raise ValueError("pass records and attributes together (the attribute names to score in records)")
    if records is not None and attributes is not None:
        _check_aligned("records", records, texts)
        per_attribute, mean = attribute_unique_ratios(records, attributes)
        report.update({f"unique_ratio_{name}": ratio for name, ratio in per_attribute.items()})
        report["unique_ratio_mean"] = mean
    return report


def _check_aligned(name: str, values: Sequence[Any], texts: Sequence[str]) -> None:
    if len(values) != len(texts):
        raise ValueError(f"{name} must have one entry per text: got {len(values)} for {len(texts)} texts")


# --- quality vs diversity --------------------------------------------------------------------------


def quality_diversity_frontier(points: Sequence[FrontierPoint]) -> list[FrontierPoint]:
    """The Pareto-optimal points (maximising both quality and diversity), by quality, increasing.

    A point is dropped when another is at least as good on both and strictly better on one; equal points
    are all kept. Along the returned list diversity does not increase. ValueError on a NaN value.
    """
    for label, quality, diversity in points:
        if math.isnan(quality) or math.isnan(diversity):
            raise ValueError(f"frontier point {label!r} has a NaN quality or diversity")

    def dominated(q: float, d: float) -> bool:
        return any(oq >= q and od >= d and (oq > q or od > d) for _, oq, od in points)

    optimal = [point for point in points if not dominated(point[1], point[2])]
    return sorted(optimal, key=lambda point: (point[1], -point[2]))


def plot_frontier(
    series: Mapping[str, Sequence[FrontierPoint]],
    path: str | Path,
    x_label: str = "diversity",
    y_label: str = "quality",
) -> Path:
    """A PNG of quality (y) against diversity (x): one line with markers per series, in the given order
    (e.g. "DivPO rho sweep", "DPO beta sweep", "temperature sweep"), each point labelled. Returns `path`.

    Uses matplotlib's Agg canvas (no pyplot state), so it works headless.
    """
    if not series or not any(series.values()):
        raise ValueError("plot_frontier needs at least one series with at least one point")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"plot_frontier needs matplotlib: {_EXTRA_HINT}") from err
    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    axes = figure.add_subplot()
    for name, points in series.items():
        xs = [diversity for _, _, diversity in points]
        ys = [quality for _, quality, _ in points]
        axes.plot(xs, ys, marker="o", label=name)
        for label, quality, diversity in points:
            axes.annotate(label, (diversity, quality), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    FigureCanvasAgg(figure)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out
