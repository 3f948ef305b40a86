"""NaturalReasoning's tiny world: every family's oracle solves its own draws, the OOD family composes
two skills, splits never overlap, documents are worked / facts / noise, and the scripted annotator,
writer and teacher read only the text."""

import random

import pytest

from selftaught.world.reasoning_docs import (
    corrupt_solution,
    documents,
    eval_questions,
    question_reply,
    score_reply,
    teacher_reply,
)
from selftaught.world.reasoning_tasks import (
    FAMILIES,
    OOD_FAMILIES,
    TRAIN_FAMILIES,
    extract_answer,
    family_of,
    solve,
    split_of,
)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_solves_its_draws_and_only_its_own(family):
    rng = random.Random(0)
    for _ in range(200):
        question = FAMILIES[family].draw(rng)
        assert family_of(question) == family, question
        steps, answer = solve(question)
        assert steps and extract_answer(teacher_reply(question)) == answer


@pytest.mark.parametrize(
    ("question", "solution"),
    [
        ("33-25-7", "33-25=8 8-7=1 Answer: 1"),
        ("3 m 25 cm in cm", "3*100=300 300+25=325 Answer: 325"),
        ("sort 5 2 9 1", "min 1 min 2 min 5 min 9 Answer: 1 2 5 9"),
        ("T and F or T", "T and F=F F or T=T Answer: T"),
        ("a>c b>a c>d; b to d?", "b>a a>c c>d Answer: yes"),
        ("a>c b>a c>e; b to d?", "b>a a>c c>e Answer: no"),
        ("reverse bad", "d da dab Answer: dab"),
        ("3 m 25 cm + 48 cm in cm", "3*100=300 300+25=325 325+48=373 Answer: 373"),
    ],
)
def test_worked_solutions(question, solution):
    assert teacher_reply(question) == solution


def test_the_ood_family_composes_conversion_and_addition_and_is_not_trained():
    assert OOD_FAMILIES == ("unitsum",) and "unitsum" not in TRAIN_FAMILIES
    steps, _ = solve("2 km 5 m + 47 m in m")
    assert steps[0] == "2*1000=2000" and steps[1:] == ["2000+5=2005", "2005+47=2052"]


def test_text_of_no_family_is_not_solved():
    for text in ("hello", "3 m 25 g in g", "sort", "a>b a>c; a to c?", "T nand F"):
        assert family_of(text) is None and teacher_reply(text) == "I do not know."


def test_eval_questions_come_from_their_split_and_are_distinct():
    records = eval_questions(split="test", num=30)
    assert all(split_of(r["question"]) == "test" for r in records)
    assert len({r["question"] for r in records}) == len(records) == 30 * len(FAMILIES)
    assert all(solve(r["question"])[1] == r["answer"] for r in records)


def test_documents_have_their_kind_and_the_annotator_rates_worked_ones_high():
    docs = documents(num=300, seed=1, wrong=0.0)
    by_kind = {kind: [d for d in docs if d["kind"] == kind] for kind in ("worked", "facts", "noise")}
    assert all(by_kind.values())
    reasoning = {
        k: [int(score_reply(d["document"]).splitlines()[-1].split()[-1]) for d in v]
        for k, v in by_kind.items()
    }
    # a worked solution shows at least one step (one-step arithmetic: 2); facts and noise show none
    assert min(reasoning["worked"]) >= 2 and max(reasoning["facts"] + reasoning["noise"]) == 1
    assert sum(r >= 3 for r in reasoning["worked"]) > 0.8 * len(reasoning["worked"])
    assert "Correctness: 5" in score_reply(by_kind["worked"][0]["document"])


def test_a_wrong_worked_answer_lowers_correctness():
    text = "Notes on adding and subtracting.\nProblem: 33-25-7\nSolution: 33-25=8 8-7=1 Answer: 2"
    assert "Correctness: 1" in score_reply(text)


def test_the_writer_makes_a_new_question_of_the_documents_family():
    worked = "Notes on sorting lists.\nProblem: sort 3 1 2\nSolution: min 1 min 2 min 3 Answer: 1 2 3"
    reply = question_reply(worked, random.Random(0))
    question, answer = reply.removeprefix("Question: ").split("\nAnswer: ")
    assert family_of(question) == "sort" and question != "sort 3 1 2" and answer == solve(question)[1]
    facts_only = "Notes on sorting lists.\nA sorted list goes from small to large."
    assert question_reply(facts_only, random.Random(0)).endswith("\nAnswer: none")
    assert question_reply("A shop adds up prices.", random.Random(0)).startswith("I cannot")


def test_corrupted_solutions_end_in_a_wrong_answer():
    rng = random.Random(0)
    for family in FAMILIES:
        for _ in range(30):
            question = FAMILIES[family].draw(rng)
            assert extract_answer(corrupt_solution(question, rng)) != solve(question)[1], question
