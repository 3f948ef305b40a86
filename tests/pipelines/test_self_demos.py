"""RAG self-demonstrations: the strategy templates render the tiny world's prompts, candidates come
back by strategy in order (and a rerun reads the stage back), the tournament with the world's
gold-aware preference keeps a correct answer over a refusal over a wrong one (the batched rounds give
what one question at a time gives), an LLM judge asks a whole round in one call, and the SFT / DPO /
RA-IT records."""

import random

import pytest

from selftaught.data.catalog import load_records
from selftaught.data.templates import PromptTemplate
from selftaught.engines.base import SamplingParams
from selftaught.engines.scripted import ScriptedEngine
from selftaught.pipelines.rag_candidates import (
    CLOSED,
    PASSAGES,
    REFUSE,
    STRATEGIES,
    SUMMARIZE,
    Strategy,
    generate_candidates,
    strip_lead_in,
    with_passages,
)
from selftaught.pipelines.self_demos import (
    judge_candidates,
    llm_tournament_judge,
    per_question,
    ra_it_records,
    rag_input,
    self_demo_records,
    tournament_rng,
)
from selftaught.selection.tournament import JudgeStats, preference_chooser, run_tournament
from selftaught.world.facts import JUDGE_PREFERENCE, label, questions, user_turn

RECORDS = load_records("world:facts-qa:test")[:6]


def test_the_templates_render_the_worlds_prompts():
    for record, question in zip(with_passages(RECORDS), questions("test")[:6], strict=True):
        values = {"question": record["question"], "passages": record["passages"]}
        for template, mode in ((CLOSED, "closed"), (PASSAGES, "rag"), (REFUSE, "refuse")):
            slots = {k: values[k] for k in template.slots}
            assert template.render_messages(slots)[-1]["content"] == user_turn(question, mode)


def _script(prompt, j):
    """Wrong without passages, right with them when a passage states the answer, refuses on the rule."""
    text = prompt.messages[-1]["content"]
    record = next(r for r in RECORDS if r["id"] == prompt.id)
    if not text.startswith("Passages:"):
        return "Oslo" if j == 0 else "Lima"
    if text.endswith("answer unknown."):
        return "unknown"
    return record["answer"] if record["present"] else "Lima"


def test_candidates_by_strategy_then_a_gold_aware_tournament(tmp_path):
    engine = ScriptedEngine(_script)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=8)
    pool = generate_candidates(tmp_path / "c", RECORDS, engine, STRATEGIES, sampling, generator="s", seed=0)
    assert [c["source"] for c in pool[0]["candidates"]] == [
        f"{name}{k}" for name in ("NoRag", "Rag", "RagRefuse") for k in range(3)
    ]
    calls = len(engine.calls)
    assert (
        generate_candidates(tmp_path / "c", RECORDS, engine, STRATEGIES, sampling, generator="s", seed=0)
        == pool
    )
    assert len(engine.calls) == calls  # read back, not regenerated

    def chooser_for(record, stats):
        scores = [JUDGE_PREFERENCE[label(c["text"], record["answer"])] for c in record["candidates"]]
        return preference_chooser(scores)

    judged, counts = judge_candidates(
        tmp_path / "t", pool, per_question(chooser_for), judge="world-gold", seed=0
    )
    assert counts["num_records"] == 6 and counts["num_dropped"] == 0 and counts["num_judge_calls"] == 6 * 4
    for record in judged:
        expected = "correct" if record["present"] or record["answer"] in ("Oslo", "Lima") else "refuse"
        assert label(record["prediction"], record["answer"]) == expected
        assert record["candidates"][record["winner"]]["source"] == record["winner_source"]
    sft, dpo = self_demo_records(judged)
    assert len(sft) == 6
    for conversation, record in zip(sft, judged, strict=True):
        assert conversation["messages"][0] == rag_input(record)[0]  # always the RAG input
        assert conversation["messages"][-1]["content"] == record["prediction"]
    assert all(p["chosen"] != p["rejected"] for p in dpo)
    assert {p["id"].rsplit("-", 1)[0] for p in dpo} <= {r["id"] for r in judged}


def test_dropped_questions_give_no_training_record(tmp_path):
    pool = [
        {**r, "candidates": [{"text": t, "source": f"Rag{k}", "num_tokens": 1} for k, t in enumerate("abc")]}
        for r in with_passages(RECORDS[:2])
    ]
    judged, counts = judge_candidates(
        tmp_path / "t", pool, per_question(lambda r, stats: lambda indices: None), judge="never", seed=0
    )
    assert counts["num_dropped"] == 2 and all(r["winner"] is None and r["prediction"] is None for r in judged)
    assert self_demo_records(judged) == ([], [])


def test_ra_it_uses_the_gold_answer_in_the_given_style_for_every_question():
    records = ra_it_records(RECORDS, style=lambda r: f"The answer is {r['answer']}, as the records show.")
    assert len(records) == len(RECORDS)
    assert (
        records[0]["messages"][-1]["content"] == f"The answer is {RECORDS[0]['answer']}, as the records show."
    )
    assert records[0]["messages"][0]["content"].startswith("Passages: ")
    one = ra_it_records(RECORDS, ndocs=1)[0]["messages"][0]["content"]  # the passages the demos see
    assert one == rag_input(with_passages(RECORDS, 1)[0])[0]["content"]


def test_records_without_passages_are_a_clear_error():
    with pytest.raises(ValueError, match=r"record 0 \(id 'x'\) needs `retrieved_support`"):
        with_passages([{"id": "x", "question": "q"}])


def _pool(num_passages=6):
    """Two questions, three candidates each, with more passages than the judge may see."""
    return [
        {
            **r,
            "retrieved_support": [{"text": f"passage {k} of {r['id']}"} for k in range(num_passages)],
            "candidates": [{"text": f"cand-{k}", "source": f"Rag{k}", "num_tokens": 1} for k in range(3)],
        }
        for r in RECORDS[:2]
    ]


def test_the_llm_judge_sees_gold_four_passages_and_the_bracket_in_order_and_retries(tmp_path):
    """Both questions' brackets go out in one call per attempt; only the unparsed ones are asked
    again, with the next seed, each sampled from its own stream (`per_prompt_seeds`)."""
    replies = {10: "I cannot decide.", 11: "Best: Prediction 7", 12: "Best: Prediction 2"}
    engine = ScriptedEngine(lambda prompt, j: replies[engine.calls[-1].sampling.seed])
    sampling = SamplingParams(temperature=0.5, max_new_tokens=64, seed=10)
    pool = _pool()
    judged, counts = judge_candidates(
        tmp_path / "t", pool, llm_tournament_judge(engine, sampling), judge="llm", seed=0
    )
    assert counts["num_dropped"] == 0 and counts["num_judge_calls"] == 2  # one bracket each
    assert (counts["num_judge_replies"], counts["num_judge_unparsed"], counts["num_judge_failed"]) == (
        6,
        4,
        0,
    )
    assert [call.sampling.seed for call in engine.calls] == [10, 11, 12]  # a retry samples anew
    assert all(len(call.prompts) == 2 and call.sampling.per_prompt_seeds for call in engine.calls)
    for record, prompt in zip(judged, engine.calls[0].prompts, strict=True):
        indices = [int(i) for i in prompt.id.rsplit("bracket-", 1)[1].split("-")]
        assert prompt.id.startswith(f"{record['id']}|") and record["winner"] == indices[1]  # Prediction 2
        text = prompt.messages[-1]["content"]
        assert f"Gold answer: {record['answer']}" in text
        assert "passage 3 of" in text and "passage 4 of" not in text  # the first 4 passages only
        shown = [text.index(f"Prediction {k}: cand-{i}") for k, i in enumerate(indices, start=1)]
        assert shown == sorted(shown)
        assert text.rstrip().endswith("Best: Prediction k")


def test_a_judge_that_never_parses_drops_the_question_and_is_counted(tmp_path):
    engine = ScriptedEngine(lambda prompt, j: "Prediction 2 is best")
    judge_for = llm_tournament_judge(engine, SamplingParams(temperature=1.0), retries=5)
    judged, counts = judge_candidates(tmp_path / "t", _pool(), judge_for, judge="llm", seed=0)
    assert counts["num_dropped"] == 2 and all(r["prediction"] is None for r in judged)
    assert (counts["num_judge_replies"], counts["num_judge_unparsed"], counts["num_judge_failed"]) == (
        12,
        12,
        2,
    )
    assert len(engine.calls) == 6  # 1 + 5 retries, both questions in each
    again, recount = judge_candidates(tmp_path / "t", _pool(), judge_for, judge="llm", seed=0)
    assert (again, recount) == (judged, counts) and len(engine.calls) == 6  # read back with its counts


def _many(num_records=5, num_candidates=9):
    return [
        {**r, "candidates": [{"text": f"c{k}", "source": f"Rag{k}"} for k in range(num_candidates)]}
        for r in with_passages(load_records("world:facts-qa:test")[:num_records])
    ]


def test_a_round_is_one_engine_call_for_every_question_and_retries_ask_only_the_unparsed(tmp_path):
    """Five questions of nine candidates: round one asks the 5 x 3 brackets in one call, the finals
    in another; only the unparsed replies are asked again. Question 0 never parses (dropped after its
    round, without holding up the others); question 1's first reply to every bracket is off."""
    records = _many()
    never, once = f"{records[0]['id']}|", f"{records[1]['id']}|"
    seen = set()

    def script(prompt, j):
        first = prompt.id not in seen
        seen.add(prompt.id)
        if prompt.id.startswith(never) or (prompt.id.startswith(once) and first):
            return "Best: Prediction 9"  # out of range: unparsed
        return "Best: Prediction 1"

    engine = ScriptedEngine(script)
    judged, counts = judge_candidates(
        tmp_path / "t",
        records,
        llm_tournament_judge(engine, SamplingParams(temperature=1.0), retries=1),
        judge="llm",
        seed=0,
    )
    assert [len(call.prompts) for call in engine.calls] == [15, 3 + 3, 4, 1]
    assert counts["num_dropped"] == 1 and judged[0]["winner"] is None
    assert all(r["winner"] is not None for r in judged[1:])
    assert [r["judge_calls"] for r in judged] == [3, 4, 4, 4, 4]  # the dropped question: its first round
    assert [(r["judge_replies"], r["judge_unparsed"], r["judge_failed"]) for r in judged[:3]] == [
        (6, 6, 3),
        (8, 4, 0),
        (4, 0, 0),
    ]


def test_the_batched_world_judge_picks_what_one_question_at_a_time_picks(tmp_path):
    """On the tiny world's questions with candidates of mixed labels (many ties, so the shuffle
    decides), the batched rounds give each question the winner, source and judge calls that
    `run_tournament` gives it alone with the same generator."""
    world = with_passages(load_records("world:facts-qa:train", limit=60))
    draw = random.Random(7)
    pool = []
    for record in world:
        texts = [
            draw.choice([record["answer"], "unknown", "Lima", "Oslo"]) for _ in range(draw.randint(1, 10))
        ]
        pool.append({**record, "candidates": [{"text": t, "source": f"Rag{k}"} for k, t in enumerate(texts)]})

    def chooser_for(record, stats):
        return preference_chooser(
            [JUDGE_PREFERENCE[label(c["text"], record["answer"])] for c in record["candidates"]]
        )

    judged, counts = judge_candidates(tmp_path / "t", pool, per_question(chooser_for), judge="world", seed=3)
    for record, result in zip(pool, judged, strict=True):
        alone = run_tournament(
            [c["text"] for c in record["candidates"]],
            chooser_for(record, JudgeStats()),
            rng=tournament_rng(3, record["id"]),
        )
        assert (result["winner"], result["judge_calls"]) == (alone.winner, alone.judge_calls)
        assert result["prediction"] == record["candidates"][alone.winner]["text"]
    assert len({r["winner"] for r in judged}) > 3 and counts["num_dropped"] == 0


def test_system_prompts_one_per_sample_and_the_summarize_turn(tmp_path):
    """Sample j of a strategy with system prompts answers under `systems[j]` (its own stage), the
    follow-up turn continues each reply's own conversation, and the candidate is the parsed final
    answer with the system prompt and the first reply recorded; a rerun reads every stage back."""

    def script(prompt, j):
        if prompt.messages[-1]["content"] == SUMMARIZE.user:
            first = prompt.messages[-2]["content"]
            return f"Here is the final answer: {first.split('|')[0]}"
        system = prompt.messages[0]["content"] if prompt.messages[0]["role"] == "system" else "none"
        return f"{_script(prompt, j)}|under {system}"

    strategies = [
        Strategy("NoRag", CLOSED, samples=3, systems=("Be brief.", "Be {exact}."), follow_up=SUMMARIZE),
        Strategy("RagRefuse", REFUSE, samples=2, follow_up=SUMMARIZE),
    ]
    engine = ScriptedEngine(script)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=8)
    pool = generate_candidates(tmp_path / "c", RECORDS, engine, strategies, sampling, generator="s", seed=0)
    candidates = pool[0]["candidates"]
    assert [c["source"] for c in candidates] == ["NoRag0", "NoRag1", "NoRag2", "RagRefuse0", "RagRefuse1"]
    assert [c.get("system_prompt") for c in candidates] == [
        "Be brief.",
        "Be {exact}.",
        "Be brief.",
        None,
        None,
    ]
    assert candidates[1]["first_turn"] == "Oslo|under Be {exact}."  # braces kept as written
    assert [c["text"] for c in candidates] == ["Oslo", "Oslo", "Oslo", "unknown", "unknown"]
    follow_ups = [c for c in engine.calls if c.prompts[0].messages[-1]["content"] == SUMMARIZE.user]
    assert len(follow_ups) == 2 and all(c.sampling.n == 1 for c in follow_ups)
    conversation = follow_ups[0].prompts[1].messages  # NoRag1 of the first question
    assert [m["role"] for m in conversation] == ["system", "user", "assistant", "user"]
    assert conversation[2]["content"] == candidates[1]["first_turn"]
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "NoRag-follow-up",
        "NoRag0",
        "NoRag1",
        "NoRag2",
        "RagRefuse",
        "RagRefuse-follow-up",
    ]
    calls = len(engine.calls)
    assert (
        generate_candidates(tmp_path / "c", RECORDS, engine, strategies, sampling, generator="s", seed=0)
        == pool
    )
    assert len(engine.calls) == calls


def test_without_system_prompts_or_follow_up_a_candidate_is_as_before(tmp_path):
    engine = ScriptedEngine(_script)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=8)
    pool = generate_candidates(
        tmp_path / "c", RECORDS[:1], engine, STRATEGIES, sampling, generator="s", seed=0
    )
    assert all(set(c) == {"text", "source", "num_tokens"} for c in pool[0]["candidates"])
    assert all(p.messages[0]["role"] == "user" for call in engine.calls for p in call.prompts)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("Here is the final answer: Oslo", "Oslo"),
        ("Here's my answer:\n\nOslo lies in Norway.", "Oslo lies in Norway."),
        ('here is the new system prompt: "Answer briefly."', "Answer briefly."),
        ("Oslo: the capital.", "Oslo: the capital."),
        ("The answer. Here is why: it is", "The answer. Here is why: it is"),
        ("  Oslo \n", "Oslo"),
    ],
)
def test_a_leading_here_is_is_stripped(text, parsed):
    assert strip_lead_in(text) == parsed


def test_a_strategy_with_a_system_turn_of_its_own_takes_no_system_prompts():
    with_system = PromptTemplate("t-sys", 1, user="{question}", slots=("question",), system="S")
    with pytest.raises(ValueError, match="has a system turn of its own"):
        Strategy("X", with_system, systems=("Be brief.",))
    with pytest.raises(ValueError, match="must be a fixed text"):
        Strategy("X", CLOSED, follow_up=CLOSED)
