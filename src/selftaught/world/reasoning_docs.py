"""Documents, a scripted annotator, a scripted question writer and an oracle teacher for
NaturalReasoning's tiny world (papers_A.md §1.6), over the families of `world.reasoning_tasks`.

A document names its family's topic in its first line (`Notes on unit conversion.`) and is one of
three kinds: `worked` (facts and one or two problems with worked solutions: high reasoning
density), `facts` (facts about the topic only) or `noise` (sentences of other topics' facts and
no topic line). The scripted functions read only the text an LLM would see, so the pipeline's
prompts, parsers and counts are the same for them as for a real model:

    score_reply(text)        the four axes of the annotation prompt, as `Axis: n` lines (1-5), from
                             the worked solutions found in the text (checked against the oracle)
    question_reply(text, r)  `Question: <a NEW question of the document's family>` and `Answer: <its
                             answer>` when the text shows a worked solution, else `Answer: none`
    teacher_reply(question)  the oracle's worked solution (`world.reasoning_tasks.solve`)
"""

from __future__ import annotations

import random
import re
from typing import Any

from selftaught.world.reasoning_tasks import (
    FAMILIES,
    TRAIN_FAMILIES,
    draw_question,
    extract_answer,
    solution_text,
    solve,
)

KINDS = ("worked", "facts", "noise")
AXES = ("completeness", "complexity", "correctness", "reasoning")
WORKED = re.compile(r"^Problem: (.+)\nSolution: (.+)$", re.MULTILINE)
TOPIC = re.compile(r"^Notes on (.+)\.$", re.MULTILINE)


def make_document(family: str, kind: str, rng: random.Random, *, wrong: float = 0.0) -> str:
    """One document of `family` and `kind`; a worked solution's answer is wrong with prob. `wrong`."""
    spec = FAMILIES[family]
    if kind == "noise":
        others = [fact for name in FAMILIES if name != family for fact in FAMILIES[name].facts]
        return " ".join(rng.sample(others, 3))
    lines = [f"Notes on {spec.title}.", " ".join(rng.sample(spec.facts, min(2, len(spec.facts))))]
    if kind == "worked":
        for _ in range(rng.randint(1, 2)):
            question = spec.draw(rng)
            solution = solve(question)
            assert solution is not None, question
            steps, answer = solution
            if rng.random() < wrong:
                answer = _wrong_answer(family, answer, rng)
            lines += [f"Problem: {question}", f"Solution: {solution_text((steps, answer))}"]
    return "\n".join(lines)


def documents(
    *,
    num: int = 1000,
    families: tuple[str, ...] | list[str] = TRAIN_FAMILIES,
    kinds: dict[str, float] | None = None,
    wrong: float = 0.1,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """`num` documents, families in turn, kinds drawn with weights `kinds` (default: half worked, a
    quarter each facts and noise); records `{id, document, family, kind}`."""
    weights = kinds or {"worked": 0.5, "facts": 0.25, "noise": 0.25}
    unknown = sorted(set(weights) - set(KINDS)) + sorted(set(families) - set(FAMILIES))
    if unknown:
        raise ValueError(
            f"unknown document kinds or families {unknown}; kinds {KINDS}, families {list(FAMILIES)}"
        )
    rng = random.Random(f"reasoning-docs|{seed}")
    records = []
    for index in range(num):
        family = families[index % len(families)]
        kind = rng.choices(list(weights), weights=list(weights.values()))[0]
        text = make_document(family, kind, rng, wrong=wrong)
        records.append({"id": f"doc-{seed}-{index}", "document": text, "family": family, "kind": kind})
    return records


def eval_questions(
    *,
    split: str = "test",
    num: int = 100,
    families: tuple[str, ...] | list[str] = tuple(FAMILIES),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """`num` distinct questions of each family from `split`: `{id, question, answer, family, messages}`
    (`messages`: the question as the user turn, the form the student answers)."""
    records = []
    for family in families:
        rng, seen = random.Random(f"reasoning-eval|{family}|{split}|{seed}"), set[str]()
        for _ in range(num * 50):
            if len(seen) == num:
                break
            question = draw_question(family, rng, split)
            if question in seen:
                continue
            seen.add(question)
            answer = solve(question)[1]  # type: ignore[index]
            records.append(
                {
                    "id": f"{family}-{split}-{len(seen) - 1}",
                    "question": question,
                    "answer": answer,
                    "family": family,
                    "messages": [{"role": "user", "content": question}],
                }
            )
    return records


# ------------------------------------------------------------------------- scripted responses


def score_reply(text: str) -> str:
    """The scripted annotator's ratings of the document in `text` (1-5 on each of `AXES`).

    completeness 5 when a problem comes with its answer, 2 with facts on a topic, else 1;
    complexity 1 + the most steps of a worked solution (at most 5); correctness 5 when every
    worked answer is the oracle's, 1 when one is not, 3 with nothing to check; reasoning 1 + the
    number of steps shown (at most 5)."""
    worked = WORKED.findall(text)
    steps = [len(s.split("Answer:")[0].split()) for _, s in worked]
    right = [solve(q) is not None and extract_answer(s) == solve(q)[1] for q, s in worked]  # type: ignore[index]
    ratings = {
        "completeness": 5 if worked else 2 if TOPIC.search(text) else 1,
        "complexity": min(5, 1 + max(steps, default=0)),
        "correctness": 3 if not worked else 5 if all(right) else 1,
        "reasoning": min(5, 1 + sum(steps)),
    }
    return "\n".join(f"{axis.capitalize()}: {value}" for axis, value in ratings.items())


def question_reply(text: str, rng: random.Random) -> str:
    """The scripted writer's reply: a new question from the generator of the document's topic (its
    answer when the document shows a worked solution, else `none`); a refusal without a topic."""
    topic = TOPIC.search(text)
    family = next((f.name for f in FAMILIES.values() if topic and f.title == topic.group(1)), None)
    if family is None:
        return "I cannot write a question about this text."
    question = draw_question(family, rng)
    solution = solve(question)
    answer = solution[1] if WORKED.search(text) and solution else "none"
    return f"Question: {question}\nAnswer: {answer}"


def teacher_reply(question: str) -> str:
    """The oracle teacher's worked solution, or `I do not know.` for a question of no family."""
    solution = solve(question.strip())
    return "I do not know." if solution is None else solution_text(solution)


def corrupt_solution(question: str, rng: random.Random) -> str:
    """A wrong worked solution of `question`: the oracle's steps with a wrong final answer, or the
    solution of another question of the same family."""
    solution = solve(question)
    if solution is None:
        raise ValueError(f"corrupt_solution: {question!r} is no family's question")
    family = next(name for name in FAMILIES if FAMILIES[name].solve(question) is not None)
    steps, answer = solution
    if rng.random() < 0.5:
        return solution_text((steps, _wrong_answer(family, answer, rng)))
    for _ in range(100):
        other = solve(FAMILIES[family].draw(rng))
        if other is not None and other[1] != answer:
            return solution_text(other)
    return solution_text((steps, _wrong_answer(family, answer, rng)))


def _wrong_answer(family: str, answer: str, rng: random.Random) -> str:
    """An answer of the family's form that differs from `answer`."""
    if answer in ("yes", "no"):
        return "no" if answer == "yes" else "yes"
    if answer in ("T", "F"):
        return "F" if answer == "T" else "T"
    if answer.isdigit():
        return str(int(answer) + rng.choice((-10, -1, 1, 10)) if int(answer) >= 10 else int(answer) + 1)
    words = answer.split()
    if len(words) > 1:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words) if words != answer.split() else " ".join(words[::-1]) + " 0"
    return answer[::-1] if answer[::-1] != answer else answer + "a"
