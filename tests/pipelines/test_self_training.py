"""Self-training scorers and selection: majority vote over final answers, the policy's yes/no
self-score (checked against a direct computation), best / worst and the r >= 0 filter."""

import random

import pytest
import torch

from selftaught.data.chat import render_conversation
from selftaught.pipelines.natural_reasoning import VERIFY
from selftaught.pipelines.self_training import best_and_worst, majority_scores, self_scores, training_records
from selftaught.world.reasoning_tasks import extract_answer


def test_majority_scores_mark_the_majority_answer_and_leave_unparsed_unscored():
    texts = ["x Answer: 4", "Answer: 5", "y Answer: 4", "garbage"]
    assert majority_scores(texts, extract_answer) == [1.0, 0.0, 1.0, None]
    assert majority_scores(["Answer: 1", "Answer: 2"], extract_answer) == [None, None]  # a tie is no majority
    assert majority_scores(["?", "!"], extract_answer) == [None, None]


def test_best_and_worst():
    rng = random.Random(0)
    assert best_and_worst([0.0, 1.0, 0.0, 1.0], rng, majority=True)[0] == 1
    assert best_and_worst([0.0, 1.0, 0.0, 1.0], rng, majority=True)[1] in (0, 2)
    assert best_and_worst([1.0, 1.0], rng, majority=True) == (0, None)
    assert best_and_worst([-0.5, 2.0, None, -3.0], rng, majority=False) == (1, 3)
    assert best_and_worst([0.5, 0.5], rng, majority=False) == (0, None)
    assert best_and_worst([None, None], rng, majority=False) == (None, None)


def test_the_filter_drops_questions_whose_best_self_score_is_negative():
    scored = [
        {"id": "a", "question": "qa", "samples": ["s0", "s1"], "scores": {"self-score": [0.3, -1.0]}},
        {"id": "b", "question": "qb", "samples": ["t0", "t1"], "scores": {"self-score": [-0.2, -0.1]}},
        {"id": "c", "question": "qc", "samples": ["u0", "u1"], "scores": {"self-score": [None, None]}},
    ]
    rft, dpo, counts = training_records(scored, scorer="self-score", filter_threshold=None, seed=0)
    assert [r["messages"][1]["content"] for r in rft] == ["s0", "t1"]
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in dpo] == [
        ("s0", "s1"),
        ("t1", "t0"),
    ]
    rft, dpo, counts = training_records(scored, scorer="self-score", filter_threshold=0.0, seed=0)
    assert [r["id"] for r in rft] == ["a"] and [p["id"] for p in dpo] == ["a"]
    assert counts == {
        "num_questions": 3,
        "num_unscored": 1,
        "num_filtered": 1,
        "num_no_pair": 0,
        "num_rft": 1,
        "num_dpo": 1,
    }


def test_self_score_is_log_p_yes_minus_log_p_no_of_the_reply(tiny_model_dir):
    from selftaught.models.io import load_model

    model, tokenizer = load_model(tiny_model_dir)
    questions, responses = ["33-25-7", "sort 3 1"], ["33-25=8 8-7=1 Answer: 1", "min 3 Answer: 3 1"]
    got = self_scores(model, tokenizer, questions, responses, batch_size=3)

    def reply_logp(question, response, word):
        messages = [
            *VERIFY.render_messages({"question": question, "response": response}),
            {"role": "assistant", "content": word},
        ]
        ids, mask = render_conversation(tokenizer, messages)
        logits = model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
        positions = [i for i, m in enumerate(mask) if m][:-1]  # the reply, not its end-of-turn marker
        return sum(logits[i - 1, ids[i]].item() for i in positions)

    expected = [
        reply_logp(q, r, "yes") - reply_logp(q, r, "no") for q, r in zip(questions, responses, strict=True)
    ]
    assert got == pytest.approx(expected, abs=1e-4)


def test_selection_quality_against_known_answers():
    from selftaught.pipelines.self_training import auc, selection_quality

    assert auc([2.0, 3.0], [1.0, 2.0]) == (1 + 1 + 1 + 0.5) / 4 and auc([1.0], []) is None
    scored = [
        {
            "question": "q",
            "samples": ["Answer: 1", "Answer: 2", "Answer: 1"],
            "scores": {"majority": [1.0, 0.0, 1.0], "self-score": [0.5, 0.9, -1.0]},
        },
        {
            "question": "q",
            "samples": ["Answer: 2", "Answer: 1"],
            "scores": {"majority": [None, None], "self-score": [0.1, 0.2]},
        },
    ]
    quality = selection_quality(scored, lambda q, t: t == "Answer: 1", ["majority", "self-score"], seed=0)
    assert quality["sample_accuracy"] == 3 / 5
    assert quality["majority"] == {"best_correct": 1.0, "worst_correct": 0.0}
    # self-score picks "Answer: 2" (0.9) then "Answer: 1" (0.2); worst "Answer: 1" (-1.0), "Answer: 2" (0.1)
    assert quality["self-score"]["best_correct"] == 0.5 and quality["self-score"]["worst_correct"] == 0.5
    assert quality["self-score"]["auc"] == auc([0.5, -1.0, 0.2], [0.9, 0.1])
