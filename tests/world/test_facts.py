"""The RAG world's knowledge base: deterministic facts with a 60% known share, train/test questions
whose passages state the answer about 60% of the time (and never name the person otherwise), the
prompt modes, the programmatic judge, the base model's conversations and the RA-DIT records."""

import collections

import pytest

from selftaught.data.catalog import load_records
from selftaught.evals.rag import format_cells, label_rates
from selftaught.world.facts import (
    JUDGE_PREFERENCE,
    KNOWN_SHARE,
    NUM_PASSAGES,
    REFUSAL,
    REFUSE_RULE,
    RELATIONS,
    Fact,
    entities,
    facts,
    label,
    qa_records,
    questions,
    sft_conversations,
    user_turn,
)


def test_facts_are_deterministic_with_the_known_share():
    table = facts(0)
    assert table == facts(0) != facts(1)
    assert len(table) == len(entities()) * len(RELATIONS) == 1000
    assert sum(f.known for f in table) == round(KNOWN_SHARE * len(table))
    assert len({(f.entity, f.relation) for f in table}) == len(table)
    assert all(f.value in RELATIONS[f.relation][2] for f in table)
    assert len(set(entities())) == len(entities())


def test_questions_split_the_facts_and_passages_state_the_answer_sixty_percent_of_the_time():
    train, test = questions("train"), questions("test")
    assert len(train) + len(test) == len(facts()) and not {q.id for q in train} & {q.id for q in test}
    for split in (train, test):
        assert 0.5 < sum(q.present for q in split) / len(split) < 0.7
    for q in train + test:
        assert len(q.passages) == NUM_PASSAGES
        assert (q.fact.statement in q.passages) == q.present
        if not q.present:  # an absent answer's person is in no passage
            assert not any(p.startswith(q.fact.entity + " ") for p in q.passages)
    assert questions("test") == test
    with pytest.raises(ValueError, match="split"):
        questions("valid")


def test_prompt_modes_and_the_judge():
    q = questions("test")[0]
    assert user_turn(q, "closed") == q.fact.question
    assert user_turn(q, "rag").startswith("Passages: " + q.passages[0])
    assert user_turn(q, "refuse") == user_turn(q, "rag") + " " + REFUSE_RULE
    with pytest.raises(ValueError, match="mode"):
        user_turn(q, "open")
    assert [label(t, "Oslo") for t in ("Oslo", "oslo.", " Oslo ", "unknown", "Unknown.", "Lima", "")] == [
        "correct",
        "correct",
        "correct",
        "refuse",
        "refuse",
        "incorrect",
        "incorrect",
    ]
    statements = ("Bako lives in Oslo.", "bako lives in oslo", "Bako lives in Lima.", "Bako lives Oslo.")
    assert [label(t, "Oslo") for t in statements] == ["correct", "correct", "incorrect", "incorrect"]
    for fact in facts(0)[:5]:  # every relation's statement gives its value
        assert label(fact.statement, fact.value) == "correct" and label(fact.statement, "x") == "incorrect"
    assert JUDGE_PREFERENCE["correct"] > JUDGE_PREFERENCE["refuse"] > JUDGE_PREFERENCE["incorrect"]


def test_the_base_models_conversations():
    conversations = sft_conversations(3000, seed=0)
    assert conversations == sft_conversations(3000, seed=0)
    table = {f.question: f for f in facts(0)}
    kinds = collections.Counter()
    unknown_with_passages = []
    read_values = collections.defaultdict(list)
    for c in conversations:
        user, answer = c["messages"][0]["content"], c["messages"][1]["content"]
        question = user.split("Question: ")[-1].removesuffix(" " + REFUSE_RULE)
        fact = table[question]
        if not user.startswith("Passages:"):
            kinds["closed"] += 1
            assert fact.known and answer == fact.statement  # closed-book QA teaches known facts only
            continue
        unknown_with_passages.append(not fact.known)
        if not fact.known:  # a fresh value each time: only a passage can tell it
            stated = [v for v in RELATIONS[fact.relation][2] if f"{fact.entity} {_verb(fact)} {v}." in user]
            assert len(stated) <= 1
            if stated:
                read_values[fact.question].append(stated[0])
            fact = Fact(fact.entity, fact.relation, stated[0] if stated else "?", False)
        if user.endswith(REFUSE_RULE):
            kinds["refuse"] += 1
            assert answer == (fact.statement if fact.statement in user else REFUSAL)
        else:
            kinds["rag"] += 1
            assert answer == fact.statement and (
                fact.statement in user or fact.known
            )  # never absent & unknown
    assert kinds["rag"] > kinds["closed"] > kinds["refuse"] > 0
    # unknown facts are over-weighted where passages are shown, so reading is needed (40% of facts)
    assert 0.4 < sum(unknown_with_passages) / len(unknown_with_passages) < 0.5
    # an unknown fact read several times is stated with different values: nothing to memorise
    often = [values for values in read_values.values() if len(values) >= 3]
    assert len(often) > 50
    assert sum(len(set(values)) > 1 for values in often) > 0.9 * len(often)


def _verb(fact: Fact) -> str:
    """The words between a statement's person and its value (`lives in`)."""
    return RELATIONS[fact.relation][0].split("{e} ")[1].split(" {v}")[0]


def test_qa_records_are_ra_dit_records_and_the_sources_serve_them():
    records = qa_records("test")
    assert records == load_records("world:facts-qa:test")
    first = records[0]
    assert set(first) == {"id", "question", "answer", "retrieved_support", "known", "present", "relation"}
    assert [p["text"] for p in first["retrieved_support"]] == list(questions("test")[0].passages)
    assert len(load_records("world:facts-sft", num=10)) == 10
    with pytest.raises(ValueError, match="train and a test split"):
        load_records("world:facts-qa:valid")


def test_label_rates_by_cell_by_hand():
    records = [
        {"present": True, "known": True},
        {"present": True, "known": True},
        {"present": False, "known": False},
        {"present": False, "known": False},
        {"other": 1},  # no cell: counted in `all` only
    ]
    labels = ["correct", "refuse", "incorrect", "refuse", "correct"]
    rates = label_rates(labels, records)
    assert list(rates) == ["all", "present/known", "absent/unknown"]
    assert rates["all"] == {"correct": 0.4, "incorrect": 0.2, "refuse": 0.4, "n": 5}
    assert rates["present/known"] == {"correct": 0.5, "incorrect": 0.0, "refuse": 0.5, "n": 2}
    assert rates["absent/unknown"]["incorrect"] == 0.5
    table = format_cells({"base": rates})
    assert "| base | absent/unknown | 2 | 0.0 | 50.0 | 50.0 |" in table
    with pytest.raises(ValueError, match="one label per record"):
        label_rates(["correct"], records)
    with pytest.raises(ValueError, match="labels must be"):
        label_rates(["right"], records[:1])
