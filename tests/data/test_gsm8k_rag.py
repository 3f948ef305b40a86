"""The `gsm8k-rag:` sources: passages are the first problems' solutions without calculator notes,
each question split alternates a question whose solution is in the collection with one whose is not,
and the train and test splits share no problem."""

import json

import pytest

from selftaught.data.catalog import is_named, load_records
from selftaught.data.gsm8k_rag import NUM_PASSAGES, NUM_QUESTIONS


def fake_gsm8k(path, num=NUM_PASSAGES + 2 * NUM_QUESTIONS):
    lines = [
        {
            "question": f"Ann has {i} apples and buys 2. How many now?",
            "answer": f"{i}+2=<<{i}+2={i + 2}>>{i + 2}\n#### {i + 2}",
        }
        for i in range(num)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def test_passages_and_questions_in_and_out_of_the_collection(tmp_path):
    source = fake_gsm8k(tmp_path / "train.jsonl")
    passages = load_records(f"gsm8k-rag:passages:{source}")
    assert len(passages) == NUM_PASSAGES
    assert passages[3] == {"id": "gsm8k-solution-3", "text": "3+2=5 The answer is 5."}
    train = load_records(f"gsm8k-rag:train:{source}")
    test = load_records(f"gsm8k-rag:test:{source}", limit=4)
    assert len(train) == 2 * NUM_QUESTIONS and [r["id"] for r in test] == [
        f"gsm8k-{NUM_QUESTIONS}",
        f"gsm8k-{NUM_PASSAGES + NUM_QUESTIONS}",
        f"gsm8k-{NUM_QUESTIONS + 1}",
        f"gsm8k-{NUM_PASSAGES + NUM_QUESTIONS + 1}",
    ]
    assert train[0] == {
        "id": "gsm8k-0",
        "question": "Ann has 0 apples and buys 2. How many now?",
        "answer": "2",
        "gold_passage": "gsm8k-solution-0",
    }
    assert [r["gold_passage"] is None for r in train[:4]] == [False, True, False, True]
    ids = {p["id"] for p in passages}
    assert all(r["gold_passage"] in ids for r in train + test if r["gold_passage"] is not None)
    assert not {r["id"] for r in train} & {r["id"] for r in load_records(f"gsm8k-rag:test:{source}")}
    assert is_named(f"gsm8k-rag:train:{source}") and not is_named(source)


def test_bad_specs_and_short_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"gsm8k-rag:<split>:<GSM8K train.jsonl> with split one of"):
        load_records("gsm8k-rag:valid:x.jsonl")
    short = fake_gsm8k(tmp_path / "short.jsonl", num=10)
    with pytest.raises(ValueError, match="gsm8k-rag needs 320 GSM8K problems, got 10"):
        load_records(f"gsm8k-rag:passages:{short}")
