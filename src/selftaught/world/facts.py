"""The tiny world's knowledge base: the RAG self-demonstration world (papers_A.md §4.6).

A few hundred invented people (`Bako`, `Rilune`) each have one value for each of five relations
(where they live, their job, pet, colour and food), drawn with a seeded generator: `facts(seed)`.
A seeded 60% of the facts are *known*: the base model is trained on them (parametric knowledge); the
rest it has never seen. Questions ask for one fact (`Where does Bako live?` -> `Oslo`); each comes with
four passages, one-sentence statements of facts: with probability 0.6 one of them states the answer
(*present*), otherwise all four are distractors about other people (*absent*). The four cells
(present / absent) x (known / unknown) are what the recipe's evaluation slices by.

The base model answers with the fact's statement (`Bako lives in Oslo.`), so reading is a copy:
after the person and the relation, the words that follow them in a passage (a small model did not
learn to answer the bare value from four passages, `docs/results.md`). `REFUSAL` (`unknown`)
abstains. `label(text, gold)` is the programmatic correctness judge (`correct`, `refuse` or
`incorrect`), which reads the value of a statement or takes a bare one.

    facts(seed)                         the knowledge base (Fact records, a `known` flag each)
    questions(split, seed)              one Question per fact of the split, with its passages
    qa_records(split, seed)             the same as RA-DIT records (question, answer, retrieved_support)
    sft_conversations(num, seed)        the base model's data: closed-book, RAG and refuse-rule QA
    user_turn(question, mode)           the prompt: no passages, passages, or passages + refuse rule
    label(text, gold)                   correct / refuse / incorrect
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass
from typing import Literal

SYLLABLES = ("ba", "ko", "ri", "ne", "mu", "sa", "lo", "ti", "de", "pa", "vu", "ze")
RELATIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "city": (
        "{e} lives in {v}.",
        "Where does {e} live?",
        ("Oslo", "Lima", "Rome", "Kyiv", "Baku", "Riga", "Doha", "Suva", "Bern", "Nuuk"),
    ),
    "job": (
        "{e} works as a {v}.",
        "What does {e} work as?",
        ("baker", "nurse", "pilot", "miner", "judge", "tailor", "farmer", "poet", "smith", "guard"),
    ),
    "pet": (
        "{e} has a pet {v}.",
        "What pet does {e} have?",
        ("cat", "dog", "owl", "fox", "frog", "hawk", "goat", "crow", "mole", "seal"),
    ),
    "color": (
        "{e} likes the color {v}.",
        "What color does {e} like?",
        ("red", "blue", "green", "pink", "gray", "gold", "teal", "plum", "tan", "jade"),
    ),
    "food": (
        "{e} eats {v}.",
        "What does {e} eat?",
        ("rice", "figs", "soup", "bread", "plums", "beans", "corn", "eggs", "nuts", "kale"),
    ),
}
"""relation -> (statement template, question template, values): ten values each."""
NUM_ENTITIES = 200
KNOWN_SHARE = 0.6
"""Share of the facts the base model is trained on."""
PRESENT_P = 0.6
"""Probability that one of a question's passages states its answer."""
NUM_PASSAGES = 4
TEST_SHARE = 0.25
"""Share of the facts whose questions are held out (the `test` split)."""
REFUSAL = "unknown"
REFUSE_RULE = "If the passages do not say, answer unknown."
"""The refuse strategy's instruction (the paper's `refuse.jinja` system prompt, as one sentence)."""
Mode = Literal["closed", "rag", "refuse"]
Label = Literal["correct", "incorrect", "refuse"]


@dataclass(frozen=True)
class Fact:
    entity: str
    relation: str
    value: str
    known: bool

    @property
    def statement(self) -> str:
        return RELATIONS[self.relation][0].format(e=self.entity, v=self.value)

    @property
    def question(self) -> str:
        return RELATIONS[self.relation][1].format(e=self.entity)


@dataclass(frozen=True)
class Question:
    id: str
    fact: Fact
    passages: tuple[str, ...]
    present: bool
    """Whether one of the passages states the answer."""

    @property
    def answer(self) -> str:
        return self.fact.value


def entities(num: int = NUM_ENTITIES) -> list[str]:
    """`num` distinct names of two or three syllables (`Bako`, `Rilune`), a fixed order."""
    names = [(a + b).capitalize() for a in SYLLABLES for b in SYLLABLES if a != b]
    names += [(a + b + c).capitalize() for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES]
    if num > len(names):
        raise ValueError(f"at most {len(names)} entities, got {num}")
    return names[:num]


@functools.cache
def facts(seed: int = 0, num_entities: int = NUM_ENTITIES) -> tuple[Fact, ...]:
    """Every (entity, relation) with a uniform value, a seeded `KNOWN_SHARE` of them known; a pure
    function of the arguments."""
    rng = random.Random(f"facts|{seed}")
    table = [
        (entity, relation, rng.choice(values))
        for entity in entities(num_entities)
        for relation, (_, _, values) in RELATIONS.items()
    ]
    known = set(rng.sample(range(len(table)), round(KNOWN_SHARE * len(table))))
    return tuple(Fact(e, r, v, i in known) for i, (e, r, v) in enumerate(table))


def split_of(index: int, seed: int = 0) -> str:
    """`test` for a seeded `TEST_SHARE` of the facts (by index), else `train`."""
    return "test" if random.Random(f"facts-split|{seed}|{index}").random() < TEST_SHARE else "train"


def questions(split: str = "train", seed: int = 0, num_entities: int = NUM_ENTITIES) -> list[Question]:
    """One question per fact of `split` (`train` or `test`), its passages drawn by `draw_passages`
    with a generator keyed by the fact; a pure function of the arguments."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    table = facts(seed, num_entities)
    out = []
    for index, fact in enumerate(table):
        if split_of(index, seed) == split:
            passages, present = draw_passages(table, index, random.Random(f"passages|{seed}|{index}"))
            out.append(Question(f"fact-{index}", fact, passages, present))
    return out


def draw_passages(
    table: tuple[Fact, ...], index: int, rng: random.Random, fact: Fact | None = None
) -> tuple[tuple[str, ...], bool]:
    """`NUM_PASSAGES` statements for fact `index` (or `fact`, a stand-in for it): with probability
    `PRESENT_P` its own statement at a random position; the others are statements of other people's
    facts (two about the same relation), so an absent answer's person is in no passage. Returns
    (passages, present)."""
    fact = fact or table[index]
    same = [f for f in table if f.entity != fact.entity and f.relation == fact.relation]
    others = [f for f in table if f.entity != fact.entity and f.relation != fact.relation]
    distractors = rng.sample(same, NUM_PASSAGES // 2) + rng.sample(others, NUM_PASSAGES - NUM_PASSAGES // 2)
    statements = [f.statement for f in distractors]
    rng.shuffle(statements)
    present = rng.random() < PRESENT_P
    if present:
        statements[rng.randrange(NUM_PASSAGES)] = fact.statement
    return tuple(statements), present


def user_turn(question: Question, mode: Mode) -> str:
    """The user turn of a question: `closed` (the question alone), `rag` (the passages, then the
    question) or `refuse` (`rag` plus `REFUSE_RULE`).

    >>> q = Question("q", Fact("Bako", "city", "Oslo", True), ("Bako lives in Oslo.", "Ri eats figs."), True)
    >>> user_turn(q, "rag")
    'Passages: Bako lives in Oslo. Ri eats figs. Question: Where does Bako live?'
    """
    if mode == "closed":
        return question.fact.question
    text = f"Passages: {' '.join(question.passages)} Question: {question.fact.question}"
    if mode == "refuse":
        return f"{text} {REFUSE_RULE}"
    if mode != "rag":
        raise ValueError(f"mode must be closed, rag or refuse, got {mode!r}")
    return text


def normalize(text: str) -> str:
    """An answer as compared: stripped, a final period dropped, lowercase."""
    return text.strip().removesuffix(".").strip().lower()


STATEMENT = re.compile(
    r"^[a-z]+ (?:"
    + "|".join(re.escape(t.split("{e} ")[1].split(" {v}")[0].lower()) for t, _, _ in RELATIONS.values())
    + r") (\S+)$"
)
"""A normalised statement answer (`bako lives in oslo`): its value is the last word."""


def answer_value(text: str) -> str:
    """The value an answer gives: the last word of a statement (`Bako lives in Oslo.` -> `oslo`),
    else the whole normalised answer (`Oslo`, `unknown`).

    >>> answer_value("Bako lives in Oslo."), answer_value(" Oslo "), answer_value("Bako has a pet owl")
    ('oslo', 'oslo', 'owl')
    """
    answer = normalize(text)
    match = STATEMENT.match(answer)
    return match.group(1) if match else answer


def label(text: str, gold: str) -> Label:
    """The programmatic correctness judge: `correct` when the answer gives the gold value (bare, or
    as the last word of a statement such as the base model writes: `answer_value`), `refuse` when it
    is `REFUSAL`, else `incorrect`. A statement is not checked for its person: the question names
    one, and a statement about another person with the asked value is as good as a guess.

    >>> label("Oslo", "Oslo"), label(" unknown.", "Oslo"), label("Lima", "Oslo"), label("Bako lives in Oslo.", "Oslo")
    ('correct', 'refuse', 'incorrect', 'correct')
    """
    answer = answer_value(text)
    if answer == gold.lower():
        return "correct"
    return "refuse" if answer == REFUSAL else "incorrect"


JUDGE_PREFERENCE: dict[Label, int] = {"correct": 2, "refuse": 1, "incorrect": 0}
"""The gold-aware judge's order (papers_A.md §4.6): a correct answer, then a refusal, then anything else."""


SFT_MIX: dict[Mode, float] = {"closed": 0.3, "rag": 0.45, "refuse": 0.25}
"""The base model's conversations by mode (`sft_conversations`)."""
UNKNOWN_SHARE_WITH_PASSAGES = 0.5
"""Share of the passage conversations about unknown facts (40% of the train facts): a known fact can
be answered from memory, so without this over-weighting a small model never learns to read."""


def sft_conversations(num: int, seed: int = 0, num_entities: int = NUM_ENTITIES) -> list[dict]:
    """`num` conversations of the base model ("the instruct model" of the world), modes drawn by
    `SFT_MIX`: `closed`, a known fact's question -> its statement (the parametric knowledge); `rag`, a
    train-split question with fresh passages -> the statement when the passages state it or the fact
    is known (absent and unknown never appear: there the model guesses); `refuse`, the same with
    `REFUSE_RULE` -> the statement when present, else `REFUSAL`. Passage conversations are about unknown
    facts half of the time (`UNKNOWN_SHARE_WITH_PASSAGES`).

    An unknown fact shown with passages takes a **fresh random value** in each conversation (its
    passage and its answer agree): a fixed value would be memorised from the repeated questions,
    and the model would answer train questions from memory instead of learning to read (measured:
    `docs/results.md`). So the only way to answer an unknown fact is to copy it from a passage, and
    the test split's unknown facts (true values, never seen) measure reading. A pure function of the
    arguments."""
    table = facts(seed, num_entities)
    known = [i for i, f in enumerate(table) if f.known]
    train = [i for i in range(len(table)) if split_of(i, seed) == "train"]
    by_known = {flag: [i for i in train if table[i].known == flag] for flag in (True, False)}
    rng = random.Random(f"facts-sft|{seed}")
    modes, weights = list(SFT_MIX), list(SFT_MIX.values())
    conversations: list[dict] = []
    while len(conversations) < num:
        mode = rng.choices(modes, weights)[0]
        if mode == "closed":
            index = rng.choice(known)
        else:
            index = rng.choice(by_known[rng.random() >= UNKNOWN_SHARE_WITH_PASSAGES])
        fact = table[index]
        if mode != "closed" and not fact.known:
            fact = Fact(fact.entity, fact.relation, rng.choice(RELATIONS[fact.relation][2]), known=False)
        passages, present = draw_passages(table, index, rng, fact)
        if mode == "rag" and not (present or fact.known):
            continue
        answer = fact.statement if mode != "refuse" or present else REFUSAL
        question = Question(f"fact-{index}", fact, passages, present)
        conversations.append(
            {
                "messages": [
                    {"role": "user", "content": user_turn(question, mode)},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return conversations


def qa_records(split: str = "train", seed: int = 0, num_entities: int = NUM_ENTITIES) -> list[dict]:
    """The questions of `split` as RA-DIT-format records: `id`, `question`, `answer`,
    `retrieved_support` (`[{"id", "text"}]`, the passages), and the world's labels `known`, `present`
    and `relation` (the evaluation's slices)."""
    return [
        {
            "id": q.id,
            "question": q.fact.question,
            "answer": q.answer,
            "retrieved_support": [{"id": f"{q.id}-p{k}", "text": text} for k, text in enumerate(q.passages)],
            "known": q.fact.known,
            "present": q.present,
            "relation": q.fact.relation,
        }
        for q in questions(split, seed, num_entities)
    ]
