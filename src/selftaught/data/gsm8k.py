"""GSM8K-format data: records `{"question": ..., "answer": "...reasoning...\\n#### 42"}` (the format of
the original release) as prompts, conversations and solutions.

Few-shot prompts use the 8 chain-of-thought exemplars of Wei et al. (2022) (the first `num_shots`)
in "Question: / Answer: ... The answer is N." form, for base models. A solution is the reference
reasoning followed by "The answer is N.", the form the exemplars teach and `evals.gsm8k` reads.
"""

from __future__ import annotations

from typing import Any

from selftaught.data.sources import json_type
from selftaught.types import Message, Prompt

EXEMPLARS: list[tuple[str, str]] = [
    (
        "There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, "
        "there will be 21 trees. How many trees did the grove workers plant today?",
        "There are 15 trees originally. Then there were 21 trees after some more were planted. "
        "So there must have been 21 - 15 = 6. The answer is 6.",
    ),
    (
        "If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
        "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5.",
    ),
    (
        "Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
        "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. "
        "After eating 35, they had 74 - 35 = 39. The answer is 39.",
    ),
    (
        "Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. "
        "How many lollipops did Jason give to Denny?",
        "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. "
        "So he gave Denny 20 - 12 = 8. The answer is 8.",
    ),
    (
        "Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have now?",
        "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. "
        "5 + 4 = 9. The answer is 9.",
    ),
    (
        "There were nine computers in the server room. Five more computers were installed each day, from monday "
        "to thursday. How many computers are now in the server room?",
        "There were originally 9 computers. For each of 4 days, 5 more computers were added. "
        "So 5 * 4 = 20 computers were added. 9 + 20 is 29. The answer is 29.",
    ),
    (
        "Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. "
        "How many golf balls did he have at the end of wednesday?",
        "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. "
        "After losing 2 more, he had 35 - 2 = 33 golf balls. The answer is 33.",
    ),
    (
        "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
        "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. "
        "So she has 23 - 15 dollars left. 23 - 15 is 8. The answer is 8.",
    ),
]

STOP = ["\n\nQuestion:", "\nQuestion:", "\n\n\n"]
"""Stop strings for few-shot generation: the model starts the next exemplar."""


def few_shot_prompt(question: str, num_shots: int = 8) -> str:
    """The few-shot text prompt for one question."""
    if not 0 <= num_shots <= len(EXEMPLARS):
        raise ValueError(f"num_shots must be between 0 and {len(EXEMPLARS)}, got {num_shots}")
    shots = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in EXEMPLARS[:num_shots])
    return f"{shots}Question: {question.strip()}\nAnswer:"


def reference_answer(answer_field: str) -> str:
    """The final answer of a GSM8K `answer` field (the text after `####`)."""
    if "####" not in answer_field:
        raise ValueError(f"GSM8K answer has no '####' final answer: {answer_field[-80:]!r}")
    return answer_field.rsplit("####", 1)[1].strip().replace(",", "")


def check_record(record: dict[str, Any], where: str) -> None:
    """A ValueError naming the record (`where`) unless it has a non-empty string `question` and a
    string `answer` whose `#### N` final line has a non-empty N."""
    for column in ("question", "answer"):
        if column not in record:
            raise ValueError(f"{where} has no {column!r} column (GSM8K records need `question` and `answer`)")
        if not isinstance(record[column], str):
            raise ValueError(f"{where}: GSM8K `{column}` must be a string, got {json_type(record[column])}")
    if not record["question"].strip():
        raise ValueError(f"{where}: GSM8K `question` is empty; remove or fix the record")
    if "####" not in record["answer"]:
        raise ValueError(f"{where}: GSM8K `answer` has no '#### N' final line")
    if not reference_answer(record["answer"]):
        raise ValueError(f"{where}: GSM8K `answer` has nothing after '####'; its final line must be '#### N'")


def is_gsm8k_record(record: dict[str, Any]) -> bool:
    """A GSM8K-format record: `question` + `answer`, and none of TRL's `prompt` / `messages` columns."""
    return {"question", "answer"} <= record.keys() and not {"prompt", "messages"} & record.keys()


def solution(answer_field: str, final: str | None = None) -> str:
    """The worked solution of an `answer` field ending "The answer is N." (`final` replaces N)."""
    reasoning = answer_field.rsplit("####", 1)[0].strip()
    return f"{reasoning}\nThe answer is {reference_answer(answer_field) if final is None else final}."


def conversation(record: dict[str, Any]) -> list[Message]:
    """The question as a user turn and the worked solution as the assistant's reply."""
    return [
        {"role": "user", "content": record["question"]},
        {"role": "assistant", "content": solution(record["answer"])},
    ]


def gsm8k_prompts(records: list[dict], *, num_shots: int = 8, source: str = "gsm8k") -> list[Prompt]:
    """Prompts from GSM8K records (`question`, `answer`), with few-shot `text` and the reference."""
    prompts = []
    for i, record in enumerate(records):
        check_record(record, f"{source}: record {i}")
        prompts.append(
            Prompt(
                id=f"{source}-{i}",
                messages=[{"role": "user", "content": record["question"]}],
                text=few_shot_prompt(record["question"], num_shots),
                answer=reference_answer(record["answer"]),
                task="gsm8k",
                meta={"index": i},
            )
        )
    return prompts
