"""Self-consistency: majority answer, vote share with unparsed samples counted, ties, and the share filter."""

import pytest

from selftaught.selection.consistency import Vote, majority_vote, select_consistent, vote_texts
from selftaught.world.arith import extract_answer


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (["4", "4", "5", "4"], Vote("4", 3, 4, 0)),
        (["4", None, None, "5", "4"], Vote("4", 2, 5, 2)),
        ([None, None], Vote(None, 0, 2, 2)),
        ([], Vote(None, 0, 0, 0)),
        # a tie goes to the answer seen first, and is flagged
        (["5", "4", "4", "5"], Vote("5", 2, 4, 0, tied=True)),
        (["4", "5", "5", "4", "6"], Vote("4", 2, 5, 0, tied=True)),
        ([7, 7, 8], Vote(7, 2, 3, 0)),
    ],
)
def test_majority_vote(answers, expected):
    assert majority_vote(answers) == expected


def test_share_counts_unparsed_samples_against_agreement():
    assert majority_vote(["a", "a", None, None]).share == 0.5
    assert majority_vote(["a"] * 8).share == 1.0
    assert Vote(None, 0, 0, 0).share == 0.0


def test_vote_texts_applies_the_extractor():
    texts = ["3+4=7 Answer: 7", "Answer: 7", "Answer: 8", "no answer here"]
    assert vote_texts(texts, extract_answer) == Vote(7, 2, 4, 1)


def test_select_consistent_keeps_unique_majorities_at_or_above_the_share():
    items = ["clear", "weak", "tie", "unparsed", "exact"]
    votes = [
        majority_vote(["a", "a", "a", "b"]),  # 0.75
        majority_vote(["a", "a", "b", None, None, None, None, None]),  # 0.25
        majority_vote(["a", "a", "b", "b"]),  # tie at 0.5
        majority_vote([None, None, None, None]),
        majority_vote(["x", "x", None, "y"]),  # 0.5, exactly the threshold
    ]
    kept, stats = select_consistent(items, votes, min_share=0.5)
    assert [(item, vote.answer) for item, vote in kept] == [("clear", "a"), ("exact", "x")]
    assert stats == {
        "num_items": 5,
        "num_kept": 2,
        "num_no_answer": 1,
        "num_tied": 1,
        "num_below_share": 1,
        "num_unparsed": 10,
    }


def test_select_consistent_rejects_bad_arguments():
    with pytest.raises(ValueError, match="min_share must be in"):
        select_consistent([], [], min_share=1.5)
    with pytest.raises(ValueError, match="one vote per item"):
        select_consistent(["a"], [], min_share=0.5)
