"""The System 2 distillation world (papers_A §3.5): one model, two formats under control tokens.

Every question is asked in two formats, selected by a control token at the start of the user turn:

- `<s1> x` -> the answer directly (System 1: a few tokens);
- `<s2> x` -> a scratchpad, then `Answer: y` (System 2: many more tokens).

Three tasks:

- `letters` (distillable): `last letters: tiger moon apple cat` -> `rnet`, 4-6 words from `WORDS`.
  The System 1 data is written by a *fast heuristic* that misreads long words (>= `LONG_WORD`
  letters: it takes their first letter instead of the last), so System 1 learns a systematic error;
  the System 2 scratchpad spells each word's last letter (`tiger r moon n ... Answer: rnet`) but
  slips on a word with probability `s2_noise` (a random wrong letter, carried to the answer), so
  sampled System 2 outputs are noisy while the greedy one is mostly right. One pass can compute
  the answer (one lookup per word), so System 1 can learn it from System 2's curated outputs.
- `swaps` (not distillable, the GSM8K analogue): `ball c swaps ab cd be ...` -> where the ball
  ends, after 5-7 swaps of five cups `a`-`e`. The scratchpad tracks the ball swap by swap
  (`ab:c cd:d be:d Answer: d`); one forward pass of a shallow model cannot compose the swaps.
  Its System 1 data is clean: what System 1 lacks is depth, not data.
- `judge` (position-swap curation): `judge last letters: tiger moon A: rn B: rx` -> `[[A]]` or
  `[[B]]`: which candidate is the words' last letters. The other candidate has one letter changed.
  The System 1 judge's data checks only the first letter and says A when it cannot tell (a position
  bias: the same pair in the other order gets the other verdict); the System 2 judge checks each
  letter of both candidates (`tiger r A+ B+ moon n A+ B- A=yes B=no [[A]]`) with the same slips.

Splits are disjoint by a hash of the question (`split_of`), so no test question is trained on.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

TASKS = ("letters", "swaps", "judge")
SPLITS = ("train", "valid", "test")
CONTROL = {"s1": "<s1>", "s2": "<s2>"}
"""The control tokens: written at the start of the user turn (`<s1> last letters: ...`)."""
WORDS = (
    "cat dog sun moon star tree leaf rock sand wave fish bird frog lamp door road ship king ring "
    "bell hill lake rain snow wind fire gold iron salt milk rice corn bean plum pear lime kiwi "
    "tiger apple river house horse cloud stone grape lemon mango olive onion bread chair table "
    "planet garden forest island pencil mirror window basket candle button rabbit monkey turtle "
    "dragon castle bridge bottle carpet orange banana cherry"
).split()
"""The vocabulary of the letters and judge tasks (lower case, 3-6 letters)."""
LONG_WORD = 6
"""System 1's heuristic misreads words of at least this many letters."""
CUPS = "abcde"


@dataclass(frozen=True)
class Question:
    """One question of the world, with its gold answer and the parts its solutions are built from."""

    task: str
    text: str
    """The question without a control token, e.g. `last letters: tiger moon`."""
    answer: str
    """Gold: `rn` (letters), `d` (swaps), `A` or `B` (judge)."""
    words: tuple[str, ...] = ()
    start: str = ""
    swaps: tuple[str, ...] = ()
    candidates: tuple[str, str] = ("", "")
    """judge: the two candidates as shown (A, B)."""

    @property
    def id(self) -> str:
        return f"s2w-{self.task}-{_sha1(self.text)[:12]}"


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def split_of(text: str) -> str:
    """`test` for 10% of questions, `valid` for 10%, else `train`, by a hash of the question text."""
    bucket = int(_sha1(text)[:8], 16) % 100
    return "test" if bucket < 10 else "valid" if bucket < 20 else "train"


def last_letters(words: tuple[str, ...]) -> str:
    return "".join(word[-1] for word in words)


def heuristic_letters(words: tuple[str, ...]) -> str:
    """System 1's fast heuristic: the last letter, but the first one of a long word."""
    return "".join(word[0] if len(word) >= LONG_WORD else word[-1] for word in words)


def track(start: str, swaps: tuple[str, ...]) -> list[str]:
    """The ball's cup after each swap."""
    positions, cup = [], start
    for swap in swaps:
        cup = swap[1] if cup == swap[0] else swap[0] if cup == swap[1] else cup
        positions.append(cup)
    return positions


def _draw(task: str, rng: random.Random) -> Question:
    if task == "swaps":
        start = rng.choice(CUPS)
        swaps = tuple("".join(rng.sample(CUPS, 2)) for _ in range(rng.randint(5, 7)))
        text = f"ball {start} swaps {' '.join(swaps)}"
        return Question(task, text, track(start, swaps)[-1], start=start, swaps=swaps)
    words = tuple(rng.sample(WORDS, rng.randint(4, 6) if task == "letters" else rng.randint(3, 5)))
    if task == "letters":
        return Question(task, f"last letters: {' '.join(words)}", last_letters(words), words=words)
    gold = last_letters(words)
    wrong = _corrupt(gold, rng)
    winner = rng.choice("AB")
    candidates = (gold, wrong) if winner == "A" else (wrong, gold)
    text = f"judge last letters: {' '.join(words)} A: {candidates[0]} B: {candidates[1]}"
    return Question(task, text, winner, words=words, candidates=candidates)


def _corrupt(letters: str, rng: random.Random) -> str:
    i = rng.randrange(len(letters))
    wrong = rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c != letters[i]])
    return letters[:i] + wrong + letters[i + 1 :]


def questions(task: str, split: str, num: int, seed: int = 0) -> list[Question]:
    """`num` distinct questions of `task` in `split`, drawn with `seed` (the same call, the same list)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng, seen = random.Random(f"{task}|{split}|{seed}"), set()
    out: list[Question] = []
    while len(out) < num:
        question = _draw(task, rng)
        if question.text not in seen and split_of(question.text) == split:
            seen.add(question.text)
            out.append(question)
    return out


def swapped(question: Question) -> Question:
    """A judge question with its candidates in the other order (the gold verdict mapped too)."""
    a, b = question.candidates
    text = question.text.rsplit(" A: ", 1)[0] + f" A: {b} B: {a}"
    return Question("judge", text, "B" if question.answer == "A" else "A", question.words, candidates=(b, a))


# --- the training data of the two formats ---------------------------------------------------------


def s1_target(question: Question) -> str:
    """What the System 1 data says (its heuristics, not always the gold answer)."""
    if question.task == "letters":
        return heuristic_letters(question.words)
    if question.task == "judge":
        return f"[[{s1_verdict(question)}]]"
    return question.answer


def s1_verdict(question: Question) -> str:
    """The position-biased heuristic judge: compares the first letter only; A when it cannot tell."""
    first = question.words[0][-1]
    a_ok, b_ok = question.candidates[0][0] == first, question.candidates[1][0] == first
    return "B" if b_ok and not a_ok else "A"


def s2_target(question: Question, rng: random.Random, noise: float) -> str:
    """The scratchpad solution; each step slips with probability `noise` (carried to the answer)."""
    if question.task == "swaps":
        steps, cup = [], question.start
        for swap in question.swaps:
            cup = track(cup, (swap,))[0]
            if rng.random() < noise:
                cup = rng.choice([c for c in CUPS if c != cup])
            steps.append(f"{swap}:{cup}")
        return f"{' '.join(steps)} Answer: {cup}"
    letters = [
        rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c != w[-1]]) if rng.random() < noise else w[-1]
        for w in question.words
    ]
    answer = "".join(letters)
    if question.task == "letters":
        pad = " ".join(f"{w} {c}" for w, c in zip(question.words, letters, strict=True))
        return f"{pad} Answer: {answer}"
    a, b = question.candidates
    checks = " ".join(
        f"{w} {c} A{_mark(a, i, c)} B{_mark(b, i, c)}"
        for i, (w, c) in enumerate(zip(question.words, letters, strict=True))
    )
    verdicts = ["yes" if cand == answer else "no" for cand in question.candidates]
    verdict = "A" if verdicts[0] == "yes" else "B" if verdicts[1] == "yes" else "A"
    return f"{checks} A={verdicts[0]} B={verdicts[1]} [[{verdict}]]"


def _mark(candidate: str, i: int, letter: str) -> str:
    """`+` when the candidate's i-th letter is `letter`, else `-` (the judge's per-letter check)."""
    return "+" if i < len(candidate) and candidate[i] == letter else "-"


def user_turn(question: Question, mode: str) -> str:
    """`<s1> <question>` or `<s2> <question>`."""
    return f"{CONTROL[mode]} {question.text}"


DEFAULT_MIX = {"letters": 0.35, "swaps": 0.25, "judge": 0.4}


def sft_records(
    num: int, seed: int = 0, *, s2_noise: float = 0.08, mix: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """`num` pretraining conversations: tasks drawn by `mix`, each question once as `<s1>` and once as
    `<s2>` (so `num // 2` questions of the train split), System 1 targets from the heuristics."""
    mix = mix or DEFAULT_MIX
    rng = random.Random(f"system2-sft|{seed}")
    tasks = rng.choices(list(mix), weights=list(mix.values()), k=num // 2)
    pools = {task: iter(questions(task, "train", tasks.count(task), seed)) for task in mix}
    records = []
    for task in tasks:
        question = next(pools[task])
        for mode, target in (("s1", s1_target(question)), ("s2", s2_target(question, rng, s2_noise))):
            messages = [
                {"role": "user", "content": user_turn(question, mode)},
                {"role": "assistant", "content": target},
            ]
            records.append({"messages": messages, "task": task, "mode": mode})
    rng.shuffle(records)
    return records


def extract_final(task: str, text: str) -> str | None:
    """The final answer of a System 1 or System 2 output, or None when it has not the form: the text
    after the last `Answer: ` (letters, swaps; a bare answer for System 1), or the `[[A]]` / `[[B]]`
    verdict at the end (judge)."""
    text = text.strip()
    if task == "judge":
        if len(text) >= 5 and text[-5:] in ("[[A]]", "[[B]]") and text.count("[[") == 1:
            return text[-3]
        return None
    answer = text.rsplit("Answer: ", 1)[-1] if "Answer: " in text else text
    if task == "swaps":
        return answer if len(answer) == 1 and answer in CUPS else None
    return answer if answer.isalpha() and answer.islower() and 1 <= len(answer) <= 8 else None


def parse_question(text: str) -> Question:
    """The `Question` a question text states (without its control token); a ValueError otherwise."""
    if text.startswith("ball ") and " swaps " in text:
        start, swaps = text[len("ball ") :].split(" swaps ", 1)
        moves = tuple(swaps.split())
        return Question("swaps", text, track(start, moves)[-1], start=start, swaps=moves)
    if text.startswith("last letters: "):
        words = tuple(text[len("last letters: ") :].split())
        return Question("letters", text, last_letters(words), words=words)
    if text.startswith("judge last letters: ") and " A: " in text and " B: " in text:
        head, candidates = text[len("judge last letters: ") :].rsplit(" A: ", 1)
        a, b = candidates.split(" B: ", 1)
        words, gold = tuple(head.split()), last_letters(tuple(head.split()))
        return Question("judge", text, "A" if a == gold else "B", words=words, candidates=(a, b))
    raise ValueError(f"not a System 2 world question: {text!r}")
