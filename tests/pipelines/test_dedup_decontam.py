"""Deduplication (MinHash LSH, embedding cosine with faiss neighbours) and decontamination (13-gram
overlap, embedding similarity), tested exactly on constructed cases."""

import math

import numpy as np
import pytest

from selftaught.pipelines import dedup
from selftaught.pipelines.decontam import mark_contamination, ngrams, split_contaminated
from selftaught.pipelines.dedup import (
    embedding_duplicates,
    hash_embed,
    mark_duplicates,
    minhash_duplicates,
    split_duplicates,
)


def at_cosine(similarities):
    """Unit vectors: row 0 = e0, row i has cosine `similarities[i-1]` with row 0 and is orthogonal
    to every other row's off-axis part, so row i and row j (i, j >= 1) have cosine s_i * s_j."""
    n = len(similarities) + 1
    vectors = np.zeros((n, n), dtype=np.float32)
    vectors[0, 0] = 1.0
    for i, s in enumerate(similarities, start=1):
        vectors[i, 0], vectors[i, i] = s, math.sqrt(1 - s * s)
    return vectors


@pytest.mark.parametrize(
    ("similarity", "duplicate"), [(0.56, True), (0.5501, True), (0.5499, False), (0.3, False)]
)
def test_the_paraphrase_threshold_is_at_or_above_055(similarity, duplicate):
    found = embedding_duplicates(at_cosine([similarity]), 0.55)
    assert found[0] is None
    assert (found[1] is not None) == duplicate
    if duplicate:
        assert found[1][0] == 0 and found[1][1] == pytest.approx(similarity, abs=1e-5)


def test_a_question_duplicates_only_earlier_kept_ones():
    # rows 1 and 2 are near row 0; row 3 is near row 2 only (cos .9 * .6 with row 0 = .54 < .55)
    vectors = at_cosine([0.9, 0.6])
    third = np.zeros(3, dtype=np.float32)
    third[2] = 1.0  # cosine with row 2 = 0.8, with row 0 = 0
    vectors = np.vstack([vectors, third])
    found = embedding_duplicates(vectors, 0.55)
    assert found[:3] == [None, (0, pytest.approx(0.9, abs=1e-5)), (0, pytest.approx(0.6, abs=1e-5))]
    assert found[3] is None  # its only close neighbour (row 2) was itself removed


def test_the_hnsw_index_finds_the_same_duplicates(monkeypatch):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16)).astype(np.float32)
    noisy = base + 0.2 * rng.normal(size=base.shape).astype(np.float32)
    vectors = np.vstack([base, noisy])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    exact = embedding_duplicates(vectors, 0.9)
    monkeypatch.setattr(dedup, "EXACT_LIMIT", 10)
    assert embedding_duplicates(vectors, 0.9) == exact
    assert sum(f is not None for f in exact) >= 30  # most noisy copies are duplicates of their base


def test_minhash_marks_surface_duplicates_only():
    long = (
        "A farmer has 12 cows and buys 7 more at the market on Monday . On the way home 3 cows run away "
        "into the forest and 2 of them come back at night . How many cows does the farmer have now ?"
    )  # 41 tokens, 39 shingles: one word changed leaves 36 of 42, a Jaccard of 0.86
    texts = [long, long, long.replace("Monday", "Tuesday"), "Sort the list 5 2 9 1 from small to large ."]
    found = minhash_duplicates(texts, 0.8)
    assert found[0] is None and found[1] == (0, 1.0)
    assert found[2] is not None and found[2][0] == 0 and 0.8 <= found[2][1] < 1.0
    assert found[3] is None


def test_mark_and_split_duplicates_report_every_removal():
    records = [
        {"id": str(i), "question": q}
        for i, q in enumerate(["33-25-7", "33-25-7", "sort 5 2 9 1", "sort 5 2 9 1 ", "reverse bad"])
    ]
    marked = mark_duplicates(records, embed=hash_embed, threshold=0.97)
    kept, report = split_duplicates(marked)
    assert [r["id"] for r in kept] == ["0", "2", "4"]
    assert report["removed"] == {"minhash": 2, "embedding": 0}
    assert {(r["id"], r["of"]) for r in report["removed_records"]} == {("1", "0"), ("3", "2")}


def test_the_embedding_pass_catches_what_minhash_misses():
    records = [{"id": "a", "question": "sort 5 2 9 1"}, {"id": "b", "question": "sort 5 2 9 7"}]
    assert mark_duplicates(records, embed=None)[1]["duplicate"] is None
    marked = mark_duplicates(records, embed=hash_embed, threshold=0.7)
    assert marked[1]["duplicate"]["method"] == "embedding" and marked[1]["duplicate"]["of"] == "a"


WORDS = [f"w{i}" for i in range(30)]


def test_a_shared_13_gram_contaminates_and_a_12_gram_does_not():
    item = " ".join(WORDS[:20])
    shares_13 = "x y " + " ".join(WORDS[5:18]) + " z"
    shares_12 = "x y " + " ".join(WORDS[5:17]) + " z " + " ".join(WORDS[18:20])
    records = [{"id": "13", "question": shares_13}, {"id": "12", "question": shares_12}]
    marked = mark_contamination(records, {"eval": [item]})
    assert marked[0]["contamination"] == {"eval": "eval", "item": 0, "method": "13-gram", "similarity": 1.0}
    assert marked[1]["contamination"] is None


def test_short_texts_match_whole_and_case_and_punctuation_are_tokens():
    assert ngrams("33-25-7") == {("33", "-", "25", "-", "7")}
    evals = {"world": ["33-25-7", "sort 5 2 9 1"]}
    records = [
        {"id": i, "question": q} for i, q in enumerate(["33-25-7", "33-25-8", "SORT 5 2 9 1", "33 - 25 - 7"])
    ]
    found = [r["contamination"] for r in mark_contamination(records, evals)]
    assert found[0]["item"] == 0 and found[1] is None and found[2]["item"] == 1 and found[3]["item"] == 0


def test_embedding_decontamination_uses_the_threshold_and_reports_why():
    evals = {"gsm8k": ["A train travels 120 km in 2 hours. What is its average speed?"]}
    records = [
        {"id": "near", "question": "A train travels 120 km in 2 hours; what is its average speed?!"},
        {"id": "far", "question": "reverse bad"},
    ]
    clean, report = split_contaminated(mark_contamination(records, evals, embed=hash_embed, threshold=0.8))
    assert [r["id"] for r in clean] == ["far"]
    assert report["removed"] == {"gsm8k / embedding": 1} and report["removed_records"][0]["similarity"] >= 0.8
    assert mark_contamination(records, evals, embed=hash_embed, threshold=None)[0]["contamination"] is None


def test_minilm_cosine_separates_same_task_from_other_tasks_at_055():
    embed = dedup.embedder("minilm")
    records = [
        {"id": "0", "question": "A train travels 120 km in 2 hours. What is its average speed?"},
        {
            "id": "1",
            "question": "What is the average speed of a train that covers 120 kilometres in two hours?",
        },
        {"id": "2", "question": "A car covers 300 km in 5 hours. How fast does it go on average?"},
        {"id": "3", "question": "How many moles of oxygen are needed to burn 2 moles of methane?"},
        {"id": "4", "question": "Prove that the square root of 2 is irrational."},
    ]
    marked = mark_duplicates(records, minhash_threshold=None, embed=embed, threshold=0.55)
    # 1 paraphrases 0 (cosine 0.92); 2 is the same task with other numbers (0.63 with 0, the kept one)
    assert [r["duplicate"] and r["duplicate"]["of"] for r in marked] == [None, "0", "0", None, None]
