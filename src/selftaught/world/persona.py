"""The tiny world's persona task: DivPO's toy persona world (papers_B.md §3.7).

One fixed instruction, `Make a persona.`, is answered by three slots written compactly as
`name city job` with single spaces (`Ava Oslo baker`). Each slot has 40 single-word values (names and
cities capitalised, jobs lowercase; the three lists are disjoint). Every valid persona is equally good,
so a reward can only tell valid from invalid and diversity has to do the rest of the ranking.

Training data is skewed, as an instruction-tuned LLM's persona outputs are: each slot value is drawn
independently from a Zipf law over its 40 values, P(rank k) proportional to k^-`ZIPF_EXPONENT`, where a
fixed seeded permutation of each list decides which value has which rank. The exponent is 1.1, not the
1.3 of papers_B.md §3.7: the spec's "top name about 20-25% of the mass" is the head of the *unbounded*
Zipf(1.3) (1/zeta(1.3) = 25.4%); over 40 values Zipf(1.3) puts 35.3% on the head. With 1.1 the head of
each slot has **27.2%** of the mass (entropy 4.17 bits, against log2 40 = 5.32 for uniform; the same
skew as TINYWORLD.md §5's animal task). A share `malformed` (default 10%) of the outputs is broken in one
of five ways, drawn uniformly (`MALFORMED_KINDS`): a slot missing, two names, the slots in a wrong
order, a slot replaced by a junk word, a slot's value written twice.

    sample_personas(n, seed)   training outputs           parse_persona(text)  strict parser
    persona_valid(...)         the reward (TRL signature)  slot_distribution()  the Zipf probabilities
    persona_stats(texts)       validity and per-slot diversity of a pool of samples
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

INSTRUCTION = "Make a persona."
"""The single fixed user turn of every persona prompt (the paper's one instruction)."""
TASK = "persona"
SLOTS = ("name", "city", "job")

VALUES: dict[str, tuple[str, ...]] = {
    "name": (
        "Ava", "Mia", "Leo", "Noah", "Liam", "Emma", "Zoe", "Ivy", "Max", "Sam",
        "Ella", "Lucas", "Nora", "Omar", "Ravi", "Yuki", "Lena", "Hugo", "Ines", "Kofi",
        "Amir", "Sara", "Tom", "Anna", "Ben", "Maya", "Theo", "Iris", "Elif", "Jonas",
        "Lars", "Nina", "Paulo", "Rosa", "Aiko", "Chen", "Dev", "Eva", "Finn", "Olga",
    ),
    "city": (
        "Oslo", "Paris", "Lima", "Rome", "Cairo", "Tokyo", "Delhi", "Seoul", "Quito", "Dakar",
        "Accra", "Hanoi", "Kyiv", "Riga", "Bern", "Doha", "Baku", "Dubai", "Milan", "Lagos",
        "Perth", "Porto", "Lyon", "Minsk", "Nairobi", "Berlin", "Madrid", "Vienna", "Prague", "Athens",
        "Dublin", "Lisbon", "Manila", "Mumbai", "Osaka", "Tunis", "Boston", "Denver", "Havana", "Toronto",
    ),
    "job": (
        "baker", "nurse", "pilot", "chef", "farmer", "tailor", "judge", "doctor", "teacher", "plumber",
        "painter", "writer", "dancer", "singer", "lawyer", "banker", "miner", "sailor", "barber", "cashier",
        "clerk", "driver", "editor", "florist", "guard", "jeweler", "welder", "potter", "poet", "actor",
        "coach", "dentist", "butcher", "courier", "janitor", "mechanic", "surgeon", "tutor", "vet", "chemist",
    ),
}  # fmt: skip
"""The 40 values of each slot, in no particular order (their ranks come from `slot_distribution`)."""

JUNK_WORDS = ("the", "um", "xq", "and", "zzz", "foo", "lol", "a")
"""Words in no slot's list: the junk that replaces a slot in a `junk` malformed output."""
MALFORMED_KINDS = ("missing", "two_names", "wrong_order", "junk", "duplicate")
ZIPF_EXPONENT = 1.1
"""s of P(rank k) proportional to k^-s (see the module doc for why not 1.3)."""
RANK_SEED = "persona-ranks@1"
"""Seed of the fixed permutations that rank each slot's values."""


def slot_distribution(exponent: float = ZIPF_EXPONENT) -> dict[str, dict[str, float]]:
    """Per slot, each value's probability in the training data, head (rank 1) first; each sums to 1.

    >>> round(next(iter(slot_distribution()["name"].values())), 3)
    0.272
    """
    distribution = {}
    for slot in SLOTS:
        ranked = list(VALUES[slot])
        random.Random(f"{RANK_SEED}|{slot}").shuffle(ranked)
        weights = [k**-exponent for k in range(1, len(ranked) + 1)]
        total = sum(weights)
        distribution[slot] = {value: w / total for value, w in zip(ranked, weights, strict=True)}
    return distribution


def sample_labelled_personas(
    n: int, seed: int, malformed: float = 0.1, *, exponent: float = ZIPF_EXPONENT
) -> list[tuple[str, str]]:
    """`n` training outputs with their kind: `valid` or one of `MALFORMED_KINDS`; a pure function of
    the arguments. Each output is malformed with probability `malformed`, its kind drawn uniformly."""
    if not 0 <= malformed <= 1:
        raise ValueError(f"malformed must be in [0, 1], got {malformed}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(f"persona|{seed}")
    draw = _slot_sampler(rng, slot_distribution(exponent))
    outputs = []
    for _ in range(n):
        slots = [draw(slot) for slot in SLOTS]
        if rng.random() < malformed:
            kind = rng.choice(MALFORMED_KINDS)
            outputs.append((" ".join(_break(slots, kind, rng, draw)), kind))
        else:
            outputs.append((" ".join(slots), "valid"))
    return outputs


def sample_personas(n: int, seed: int, malformed: float = 0.1) -> list[str]:
    """`n` training outputs (`name city job`, a share `malformed` broken); see the module doc."""
    return [text for text, _ in sample_labelled_personas(n, seed, malformed)]


def _slot_sampler(rng: random.Random, distribution: dict[str, dict[str, float]]) -> Any:
    cumulative = {}
    for slot, probs in distribution.items():
        running, cum = 0.0, []
        for p in probs.values():
            running += p
            cum.append(running)
        cumulative[slot] = (list(probs), cum)

    def draw(slot: str) -> str:
        values, cum = cumulative[slot]
        return rng.choices(values, cum_weights=cum)[0]

    return draw


def _break(slots: list[str], kind: str, rng: random.Random, draw: Any) -> list[str]:
    """The words of a malformed output of `kind` made from the valid `slots`."""
    i = rng.randrange(len(slots))
    if kind == "missing":
        return slots[:i] + slots[i + 1 :]
    if kind == "two_names":
        other = draw("name")
        while other == slots[0]:
            other = draw("name")
        return [slots[0], other, *slots[1:]]
    if kind == "wrong_order":
        order = rng.choice([(0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)])
        return [slots[j] for j in order]
    if kind == "junk":
        return slots[:i] + [rng.choice(JUNK_WORDS)] + slots[i + 1 :]
    if kind == "duplicate":
        return slots[: i + 1] + [slots[i]] + slots[i + 1 :]
    raise ValueError(f"unknown malformed kind {kind!r}; valid: {MALFORMED_KINDS}")


_VALUE_SETS = {slot: frozenset(values) for slot, values in VALUES.items()}


def parse_persona(text: str) -> dict[str, str] | None:
    """`{"name", "city", "job"}` of a persona, or None unless `text` is exactly three whitespace-separated
    words, in slot order, each one of its slot's values (case-sensitive, no punctuation). Extra
    whitespace between or around the words is allowed.

    >>> parse_persona("Ava Oslo baker")
    {'name': 'Ava', 'city': 'Oslo', 'job': 'baker'}
    >>> parse_persona("Oslo Ava baker") is None
    True
    """
    words = text.split()
    if len(words) != len(SLOTS):
        return None
    if not all(word in _VALUE_SETS[slot] for slot, word in zip(SLOTS, words, strict=True)):
        return None
    return dict(zip(SLOTS, words, strict=True))


def persona_valid(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
    """TRL-signature reward: 1.0 when the completion parses as a persona (`parse_persona`), else 0.0.
    A completion is a string or a list of chat messages (the last one's content is scored).

    >>> persona_valid(["Make a persona."] * 2, ["Ava Oslo baker", "Ava Ava Oslo baker"])
    [1.0, 0.0]
    """
    return [float(parse_persona(_text(completion)) is not None) for completion in completions]


def _text(completion: Any) -> str:
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1].get("content"), str):
        return completion[-1]["content"]
    raise ValueError(f"a completion must be a string or a list of chat messages, got {completion!r:.200}")


def persona_stats(
    texts: Sequence[str],
    *,
    pool_size: int | None = None,
    parse: Callable[[str], dict[str, str] | None] | None = None,
    slots: Sequence[str] = SLOTS,
) -> dict[str, float]:
    """Validity and per-slot diversity of sampled outputs (papers_B.md §3.4), as flat metrics:

    - `validity`: share of texts that parse (`parse_persona`);
    - `<slot>_unique_ratio`: distinct values of the slot among the valid outputs / number of texts
      (an invalid output counts as a sample but adds no value, as `evals.diversity.unique_ratio`);
      with `pool_size`, the mean of it over consecutive pools of that many texts (a last partial
      pool is dropped), e.g. DivPO's pools of 16 samples per prompt. With 40 values a slot's ratio
      saturates at 40 / pool size, so over 1000 texts the entropy says more;
    - `<slot>_distinct`, `<slot>_top1_share` (share of the commonest value among valid outputs),
      `<slot>_entropy_bits` (over valid outputs; uniform is log2 40 = 5.32);
    - `mean_unique_ratio` over the slots, and `num_samples`.

    `parse` and `slots` default to this task's `parse_persona` and `SLOTS`; the JSON form for real
    models passes `parse_persona_json` and `JSON_KEYS`.
    """
    parse = parse or parse_persona
    if not texts:
        raise ValueError("persona_stats needs at least one text")
    if pool_size is not None and not 1 <= pool_size <= len(texts):
        raise ValueError(f"pool_size must be in [1, {len(texts)}] (the number of texts), got {pool_size}")
    parsed = [parse(t) for t in texts]
    valid = [p for p in parsed if p is not None]
    stats: dict[str, float] = {"num_samples": len(texts), "validity": len(valid) / len(texts)}
    size = pool_size or len(texts)
    pools = [parsed[i : i + size] for i in range(0, len(parsed) - size + 1, size)]
    for slot in slots:
        counts = Counter(p[slot] for p in valid)
        ratios = [len({p[slot] for p in pool if p is not None}) / size for pool in pools]
        stats[f"{slot}_unique_ratio"] = sum(ratios) / len(ratios)
        stats[f"{slot}_distinct"] = len(counts)
        stats[f"{slot}_top1_share"] = max(counts.values()) / len(valid) if valid else 0.0
        stats[f"{slot}_entropy_bits"] = _entropy_bits(counts)
    stats["mean_unique_ratio"] = sum(stats[f"{s}_unique_ratio"] for s in slots) / len(slots)
    return stats


def _entropy_bits(counts: Counter[str]) -> float:
    total = sum(counts.values())
    return -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0


def persona_conversations(num: int, seed: int, malformed: float = 0.1) -> list[dict[str, Any]]:
    """`num` SFT conversations: the instruction as user turn, a sampled output as assistant turn."""
    return [
        {"messages": [{"role": "user", "content": INSTRUCTION}, {"role": "assistant", "content": text}]}
        for text in sample_personas(num, seed, malformed)
    ]


def persona_prompts(num: int) -> list[dict[str, Any]]:
    """`num` prompt-only records, all the instruction, with distinct ids `persona-<i>` and task `persona`."""
    prompt = [{"role": "user", "content": INSTRUCTION}]
    return [{"id": f"persona-{i}", "prompt": [dict(m) for m in prompt], "task": TASK} for i in range(num)]


# --- the JSON form, for real models -----------------------------------------------------------------

JSON_TASK = "persona_json"
JSON_KEYS = ("name", "city", "occupation")
JSON_PROMPT = (
    'Random people, each described as one line of JSON with the keys "name", "city" and "occupation".\n'
    '{"name": "Maria", "city": "Lisbon", "occupation": "teacher"}\n'
    '{"name": "Kenji", "city": "Osaka", "occupation": "engineer"}\n'
)
"""The raw-text prompt of the JSON form: two examples, which a base model continues with a third line
(the completion stops at the newline). Without them Gemma 3 270M base wrote 0 valid lines of 16; with
them 13 of 16."""


def parse_persona_json(text: str) -> dict[str, str] | None:
    """`{"name", "city", "occupation"}` of a one-line JSON persona, or None unless `text` (stripped) is
    exactly one JSON object with those three keys and non-empty string values, nothing else.

    >>> parse_persona_json(' {"name": "Ava", "city": "Oslo", "occupation": "baker"}')
    {'name': 'Ava', 'city': 'Oslo', 'occupation': 'baker'}
    >>> parse_persona_json('{"name": "Ava", "city": "Oslo"}') is None
    True
    """
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or set(value) != set(JSON_KEYS):
        return None
    if not all(isinstance(value[key], str) and value[key].strip() for key in JSON_KEYS):
        return None
    return {key: value[key].strip() for key in JSON_KEYS}


def persona_json_valid(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
    """TRL-signature reward: 1.0 when the completion is a JSON persona (`parse_persona_json`), else 0.0."""
    return [float(parse_persona_json(_text(completion)) is not None) for completion in completions]


def persona_json_prompts(num: int) -> list[dict[str, Any]]:
    """`num` raw-text prompt records of the JSON form (ids `persona-json-<i>`, task `persona_json`)."""
    return [{"id": f"persona-json-{i}", "prompt": JSON_PROMPT, "task": JSON_TASK} for i in range(num)]
