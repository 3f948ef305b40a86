import pytest

from selftaught.types import Completion, Judgment, Pair, Prompt, Score


def test_records_round_trip_through_json():
    prompt = Prompt(id="p1", messages=[{"role": "user", "content": "2+2"}], answer="4", meta={"level": 1})
    chosen = Completion(prompt_id="p1", text="Answer: 4", token_ids=[5, 6], logprobs=[-0.1, -0.2])
    rejected = Completion(prompt_id="p1", text="Answer: 5", finish_reason="length", policy_version=3)
    pair = Pair(prompt=prompt, chosen=chosen, rejected=rejected, meta={"rule": "correct_vs_incorrect"})
    for record in (
        prompt,
        chosen,
        Score(value=None, rationale="no answer"),
        pair,
        Judgment("p1", "[[A]]", "A"),
    ):
        again = type(record).from_json(record.to_json())
        assert again == record
    assert Pair.from_dict(pair.to_dict()).chosen.num_tokens == 2


def test_unknown_fields_are_errors():
    with pytest.raises(ValueError, match="unknown field"):
        Prompt.from_dict({"id": "x", "messages": [], "question": "?"})
