"""System-prompt optimisation (papers_A §4.1 step 2) on a scripted model whose answers get better
with every `+` in the system prompt: the top-k prompts are kept and rewritten, a missing score counts
0 and is counted, the critiques show each example's own passages and its lowest-scoring answers, every
prompt ever produced is scored on the held-out examples and written best first, and a run resumes
after a crash at the step it was in, with the same result as an uninterrupted one."""

import json

import pytest

from selftaught.data.catalog import load_records
from selftaught.engines.base import SamplingParams
from selftaught.engines.scripted import ScriptedEngine
from selftaught.pipelines.prompt_optimization import (
    PromptOptimizer,
    critiqued,
    split_examples,
    top_prompts,
)
from selftaught.pipelines.rag_candidates import (
    PASSAGES,
    with_passages,
)

RECORDS = with_passages(load_records("world:facts-qa:test")[:8])
BY_QUESTION = {r["question"]: r for r in RECORDS}
TRAIN, HELD_OUT = split_examples(RECORDS, 3, 2, 0)
UNSCORED = TRAIN[0]["question"]
"""The scorer never gives this training question's answers a score."""


def _script(prompt, j):
    """Answers echo the system prompt's `+` count; the scorer gives it (plus a per-question offset);
    a rewrite adds `+` (sample 1) or `-` (sample 0) behind a "Here is ...:" lead-in."""
    kind = prompt.id.rsplit("|", 1)[1]
    last = prompt.messages[-1]["content"]
    if kind == "score":
        question = last.split("Question: ", 1)[1].split("\n", 1)[0]
        if question == UNSCORED:
            return "A fine answer."
        plus = last.split("Prediction: ", 1)[1].split("\n", 1)[0].count("+")
        return f"Close enough.\nScore: {min(9, plus + RECORDS.index(BY_QUESTION[question]) % 3)}"
    if kind.startswith("critique"):
        return "Be more precise."
    if kind == "rewrite":
        current = last.split("The current system prompt:\n\n", 1)[1].split("\n\nReply", 1)[0]
        return f'Here is the improved prompt: "{current}{"+" if j else "-"}"'
    return f"answer {prompt.messages[0]['content'].count('+') * '+'}"


def _optimizer(engine, **kwargs):
    settings = dict(steps=2, beam=4, topk=2, n_train=3, n_eval=2, user=PASSAGES, rag=True)
    return PromptOptimizer(
        engine, sampling=SamplingParams(temperature=0.5, max_new_tokens=32), **settings | kwargs
    )


def test_the_search_keeps_the_best_prompts_rewrites_them_and_ranks_all_on_held_out(tmp_path):
    engine = ScriptedEngine(_script)
    ranked = _optimizer(engine).optimize(tmp_path / "p", RECORDS, "Answer.", seed=0)
    step0 = json.loads((tmp_path / "p" / "step-0" / "done.json").read_text())["result"]
    step1 = json.loads((tmp_path / "p" / "step-1" / "done.json").read_text())["result"]
    assert [r["prompt"] for r in step0["rewrites"]] == ["Answer.-", "Answer.+"]  # lead-in and quotes gone
    assert step1["kept"] == [1, 0]  # "Answer.+" scores higher: kept first
    assert [r["prompt"] for r in step1["rewrites"]] == ["Answer.+-", "Answer.++", "Answer.--", "Answer.-+"]
    assert all(
        p["num_unparsed"] == 1 for p in step0["prompts"] + step1["prompts"]
    )  # UNSCORED is a train example
    # every prompt ever produced, scored on the held-out examples, best first
    assert sorted(r["prompt"] for r in ranked) == sorted(
        ["Answer.", "Answer.-", "Answer.+", "Answer.+-", "Answer.++", "Answer.--", "Answer.-+"]
    )
    assert ranked[0]["prompt"] == "Answer.++" and ranked[0]["step"] == 2
    assert [r["score"] for r in ranked] == sorted((r["score"] for r in ranked), reverse=True)
    written = [json.loads(line) for line in (tmp_path / "p" / "prompts.jsonl").read_text().splitlines()]
    assert written == ranked and top_prompts(ranked, 3) == tuple(r["prompt"] for r in ranked[:3])
    # rewrites sampled beam // topk at T 1.0; answers at T 0.5
    rewrite_calls = [c for c in engine.calls if c.prompts[0].id.endswith("rewrite")]
    assert {(c.sampling.n, c.sampling.temperature) for c in rewrite_calls} == {(2, 1.0)}
    assert engine.calls[0].sampling.temperature == 0.5


def test_a_missing_score_counts_zero_and_is_counted(tmp_path):
    engine = ScriptedEngine(_script)
    optimizer = _optimizer(engine, steps=1)
    train = TRAIN
    scored, rows = optimizer.score_prompts(["Answer.+"], train, seed=0)
    offsets = [RECORDS.index(r) % 3 for r in train]
    expected = [None if r["question"] == UNSCORED else 1 + o for r, o in zip(train, offsets, strict=True)]
    assert [row["score"] for row in rows[0]] == expected
    assert scored[0]["num_unparsed"] == expected.count(None)
    assert scored[0]["score"] == sum(v or 0 for v in expected) / 3


def test_critiques_show_the_lowest_scoring_examples_with_their_own_passages(tmp_path):
    engine = ScriptedEngine(_script)
    _optimizer(engine, steps=1).optimize(tmp_path / "p", RECORDS, "Answer.", seed=0)
    train = TRAIN
    critiques = [c for c in engine.calls if "|critique-" in c.prompts[0].id]
    assert len(critiques) == 2  # beam // topk examples, one turn each, in one conversation
    shown = []
    for call in critiques:
        text = call.prompts[0].messages[-1]["content"]
        question = text.split("Question: ", 1)[1].split("\n", 1)[0]
        record = BY_QUESTION[question]
        assert f"[1] {record['retrieved_support'][0]['text']}" in text  # its own passages
        shown.append(record)
    assert critiques[1].prompts[0].messages[-2] == {"role": "assistant", "content": "Be more precise."}
    scores = {r["id"]: 0 if r["question"] == UNSCORED else RECORDS.index(r) % 3 for r in train}
    assert [scores[r["id"]] for r in shown] == sorted(scores.values())[:2]


def test_critiqued_examples_are_the_lowest_scores_ties_in_order():
    row = [{"score": 5}, {"score": None}, {"score": 2}, {"score": 2}]
    assert critiqued(row, 3) == [1, 2, 3]


def test_a_crashed_run_resumes_to_the_result_of_an_uninterrupted_one(tmp_path):
    reference = _optimizer(ScriptedEngine(_script)).optimize(tmp_path / "a", RECORDS, "Answer.", seed=0)

    def crash_in_step_1(prompt, j):
        if prompt.id.endswith("|rewrite") and "Answer.+" in prompt.messages[-1]["content"]:
            raise RuntimeError("killed")
        return _script(prompt, j)

    with pytest.raises(RuntimeError, match="killed"):
        _optimizer(ScriptedEngine(crash_in_step_1)).optimize(tmp_path / "b", RECORDS, "Answer.", seed=0)
    assert (tmp_path / "b" / "step-0" / "done.json").is_file()
    assert not (tmp_path / "b" / "step-1" / "done.json").is_file()
    engine = ScriptedEngine(_script)
    assert _optimizer(engine).optimize(tmp_path / "b", RECORDS, "Answer.", seed=0) == reference
    assert len(engine.calls[0].prompts) == 2 * 3  # step 1's answers first: step 0 was read back
    again = ScriptedEngine(_script)
    assert _optimizer(again).optimize(tmp_path / "b", RECORDS, "Answer.", seed=0) == reference
    assert again.calls == []  # every step and the held-out scoring read back


def test_the_split_is_disjoint_seeded_and_too_few_records_is_an_error():
    train, held_out = split_examples(RECORDS, 5, 3, seed=1)
    assert not {r["id"] for r in train} & {r["id"] for r in held_out}
    assert split_examples(RECORDS, 5, 3, seed=1) == (train, held_out) != split_examples(RECORDS, 5, 3, seed=2)
    with pytest.raises(ValueError, match="n_train \\+ n_eval = 9 examples, got 8"):
        split_examples(RECORDS, 6, 3, seed=0)


def test_settings_errors_name_the_setting():
    engine = ScriptedEngine(_script)
    with pytest.raises(ValueError, match="beam must be >= topk"):
        PromptOptimizer(engine, beam=2, topk=5)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        PromptOptimizer(engine, steps=0)
