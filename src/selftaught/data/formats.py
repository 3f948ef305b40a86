"""TRL dataset records <-> the library's records and training examples, in one place.

Column vocabulary (TRL's, plus GSM8K's original release):
- prompt-only (RL, generation): `prompt` as text or messages, or `messages` (the assistant turns
  dropped), or GSM8K `question`; optional `id`, `answer` (the reference a verifier reads), `task`;
  every other column goes to `Prompt.meta` and so reaches reward functions as a keyword argument.
- SFT: `messages` (conversational), `prompt` + `completion`, or GSM8K `question` + `answer`.
- preferences: `prompt` + `chosen` + `rejected`, or GSM8K records, which become pairs of the worked
  solution against the same solution with a wrong final number (`gsm8k_preference_records`).
"""

from __future__ import annotations

import random
from typing import Any

from selftaught.data import gsm8k
from selftaught.data.chat import (
    emphasis_weights,
    render_conversation,
    render_prompt_completion,
    validate_messages,
)
from selftaught.data.sources import json_type, require_columns
from selftaught.types import Completion, Message, Prompt

Example = tuple[list[int], list[bool]]
WeightedExample = tuple[list[int], list[bool], list[float]]
"""An example with per-token loss weights (`train.batching.WeightedExample`)."""
"""`(input_ids, loss_mask)` of one training sequence."""
PROMPT_COLUMNS = ("id", "prompt", "messages", "question", "answer", "task")
"""Columns `prompt_from_record` reads itself; the others become `Prompt.meta`."""


def prompt_from_record(record: dict[str, Any], index: int, source: str, *, num_shots: int = 0) -> Prompt:
    """One prompt-only record as a `Prompt` (column vocabulary: module doc).

    GSM8K records get the number after `####` as `answer` and, with `num_shots` > 0, the few-shot
    raw-text prompt for base models (task `gsm8k`).
    """
    pid = str(record.get("id", index))
    meta = {k: v for k, v in record.items() if k not in PROMPT_COLUMNS}
    task = str(record.get("task", "default"))
    if gsm8k.is_gsm8k_record(record):
        check_gsm8k_record(record, f"{source}: record {index}")
        question = record["question"]
        text: str | None = gsm8k.few_shot_prompt(question, num_shots) if num_shots else None
        messages = [{"role": "user", "content": question}]
        reference = gsm8k.reference_answer(record["answer"])
        return Prompt(pid, messages, text=text, answer=reference, task=record.get("task", "gsm8k"), meta=meta)
    answer = None if record.get("answer") is None else str(record["answer"])
    where = f"{source}: record {index}"
    if isinstance(record.get("messages"), list) or ("messages" in record and "prompt" not in record):
        _check_messages(record["messages"], f"{where} `messages`")
        messages = [m for m in record["messages"] if m.get("role") != "assistant"] or record["messages"]
        return Prompt(pid, messages, answer=answer, task=task, meta=meta)
    if "prompt" not in record:
        raise ValueError(
            f"{where} has no `prompt` (text or messages), `messages` or `question` column; "
            f"it has {sorted(record)}"
        )
    check_prompt(record["prompt"], where)
    if isinstance(record["prompt"], list):
        return Prompt(pid, record["prompt"], answer=answer, task=task, meta=meta)
    return Prompt(pid, [], text=record["prompt"], answer=answer, task=task, meta=meta)


def check_prompt(value: Any, where: str) -> None:
    """A ValueError naming the record (`where`) unless `value` is a non-empty string or a valid list
    of messages: a TRL `prompt` column."""
    if isinstance(value, list):
        _check_messages(value, f"{where} `prompt`")
    elif not isinstance(value, str):
        raise ValueError(f"{where}: `prompt` must be a string or a list of messages, got {json_type(value)}")
    elif not value.strip():
        raise ValueError(f"{where} has an empty `prompt`; remove or fix it")


def prompts_from_records(records: list[dict[str, Any]], source: str, *, num_shots: int = 0) -> list[Prompt]:
    """Every record as a `Prompt` (see `prompt_from_record`)."""
    return [prompt_from_record(r, i, source, num_shots=num_shots) for i, r in enumerate(records)]


def prompt_record(prompt: Prompt) -> dict[str, Any]:
    """A `Prompt` as a TRL prompt-only record; `prompt_from_record` reads it back unchanged."""
    record: dict[str, Any] = {
        "id": prompt.id,
        "prompt": prompt.text if prompt.text is not None else prompt.messages,
    }
    if prompt.answer is not None:
        record["answer"] = prompt.answer
    return {**record, "task": prompt.task, **prompt.meta}


def as_chat(prompt: Prompt) -> Prompt:
    """`prompt` with its raw `text` (if any) as one user turn, so that it is rendered with the chat
    template; a chat prompt is returned as it is."""
    if prompt.text is None:
        return prompt
    return Prompt(
        prompt.id,
        [{"role": "user", "content": prompt.text}],
        answer=prompt.answer,
        task=prompt.task,
        meta=prompt.meta,
    )


def prompt_completion_record(prompt: Prompt, completion: Completion) -> dict[str, Any]:
    """A sample as a TRL prompt/completion record, followed by the `Completion`'s own fields
    (`prompt_id`, `text`, `token_ids`, `logprobs`, `finish_reason`, ...).

    A raw-text prompt (sent without a chat template) gives the standard format, `prompt` and
    `completion` strings; a chat prompt gives the conversational one, `prompt` as its messages and
    `completion` as one assistant turn. Either way the record says what the model was given, and
    `prompt_from_record` reads its `prompt` back as the same generation input."""
    if prompt.text is not None:
        head: dict[str, Any] = {"prompt": prompt.text, "completion": completion.text}
    else:
        head = {"prompt": prompt.messages, "completion": [{"role": "assistant", "content": completion.text}]}
    return {**head, **completion.to_dict()}


def trl_prompt(value: Any, index: int, where: str | None = None) -> Prompt:
    """A TRL prompt value (a string: one user turn; or a message list) as a `Prompt` with id `index`;
    `where` names it in the error (default `prompts[index]`)."""
    if isinstance(value, str):
        return Prompt(id=str(index), messages=[{"role": "user", "content": value}])
    if isinstance(value, list):
        _check_messages(value, f"prompts[{index}]" if where is None else f"{where} `prompt`")
        return Prompt(id=str(index), messages=value)
    what = f"prompts[{index}]" if where is None else f"{where}: `prompt`"
    raise ValueError(f"{what} must be a string or a list of messages, got {json_type(value)}")


def sft_example(record: dict[str, Any], tokenizer: Any, where: str) -> Example:
    """One training example from an SFT record (`messages`, `prompt` + `completion`, or GSM8K); a
    ValueError that names the record (`where`) when it cannot be one."""
    if "messages" in record:
        _check_messages(record["messages"], f"{where} `messages`")
        return _located(where, render_conversation, tokenizer, record["messages"])
    if "prompt" in record and "completion" in record:
        check_prompt(record["prompt"], where)
        _check_response(record["completion"], "completion", where)
        return _located(
            where, render_prompt_completion, tokenizer, record["prompt"], record["completion"], where=where
        )
    if gsm8k.is_gsm8k_record(record):
        check_gsm8k_record(record, where)
        return render_conversation(tokenizer, gsm8k.conversation(record))
    raise ValueError(
        f"{where}: expected `messages`, `prompt` + `completion`, or `question` + `answer` columns, "
        f"got {sorted(record)}"
    )


def sft_examples(
    records: list[dict[str, Any]],
    tokenizer: Any,
    source: str,
    max_length: int,
    emphasis: dict[str, float] | None = None,
) -> list[Example | WeightedExample]:
    """Tokenised examples truncated to `max_length`; those left with no trained token are dropped (and
    the drop is printed); an error when none is left. With `emphasis` (regex -> weight), each example
    also carries its tokens' loss weights (`data.chat.emphasis_weights`)."""
    if not records:
        raise ValueError(f"{source} holds no records")
    examples: list[Example | WeightedExample] = []
    for i, record in enumerate(records):
        ids, mask = sft_example(record, tokenizer, f"{source} record {i}")
        if not any(mask[:max_length]):
            continue
        if emphasis:
            weights = emphasis_weights(tokenizer, ids, mask, emphasis)
            examples.append((ids[:max_length], mask[:max_length], weights[:max_length]))
        else:
            examples.append((ids[:max_length], mask[:max_length]))
    if not examples:
        raise ValueError(f"{source} gave no example with trained tokens within max_length {max_length}")
    if len(examples) < len(records):
        print(
            f"{source}: {len(records) - len(examples)} of {len(records)} examples had no trained tokens "
            f"within max_length {max_length} and were dropped"
        )
    return examples


def is_preference_records(records: list[dict[str, Any]]) -> bool:
    """Whether `records` are preference pairs (TRL's `chosen` or `rejected` column, or GSM8K records)."""
    return bool(records) and (
        bool({"chosen", "rejected"} & records[0].keys()) or gsm8k.is_gsm8k_record(records[0])
    )


def preference_records(records: list[dict[str, Any]], source: str, seed: int) -> list[dict[str, Any]]:
    """TRL preference records (checked), or GSM8K records turned into pairs (`gsm8k_preference_records`)."""
    if records and gsm8k.is_gsm8k_record(records[0]):
        for index, record in enumerate(records):
            check_gsm8k_record(record, f"{source}: record {index}")
        return gsm8k_preference_records(records, seed, source)
    check_preference_records(records, source)
    return records


def check_preference_records(records: list[dict[str, Any]], source: str) -> None:
    """A ValueError naming the first bad record of `source` unless each has a `prompt` (a non-empty
    string or messages) and non-empty `chosen` and `rejected` responses (strings or message lists)."""
    require_columns(records, ["prompt", "chosen", "rejected"], source)
    for index, record in enumerate(records):
        where = f"{source}: record {index}"
        check_prompt(record["prompt"], where)
        for column in ("chosen", "rejected"):
            _check_response(record[column], column, where)


check_gsm8k_record = gsm8k.check_record
"""A ValueError naming the record unless it is a well-formed GSM8K record (`gsm8k.check_record`)."""


def _check_response(value: Any, column: str, where: str) -> None:
    """A response column (`completion`, `chosen`, `rejected`): a non-empty string or messages."""
    if isinstance(value, list):
        _check_messages(value, f"{where} `{column}`")
    elif not isinstance(value, str):
        raise ValueError(
            f"{where}: `{column}` must be a string or a list of messages, got {json_type(value)}"
        )
    if not _response_text(value).strip():
        raise ValueError(f"{where} has an empty `{column}` response; remove or fix it")


def _located(location: str, render: Any, /, *args: Any, **kwargs: Any) -> Example:
    """`render(*args, **kwargs)`, its ValueError prefixed with the record (`location`) unless it names it."""
    try:
        return render(*args, **kwargs)
    except ValueError as err:
        if str(err).startswith(location):
            raise
        raise ValueError(f"{location}: {err}") from None


def _check_messages(messages: list[Any], where: str) -> None:
    try:
        validate_messages(messages)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _response_text(value: Any) -> str:
    """The text of a preference response: a string, or the last message's content."""
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    return value if isinstance(value, str) else str(value)


def gsm8k_preference_records(
    records: list[dict[str, Any]], seed: int, source: str = "GSM8K"
) -> list[dict[str, Any]]:
    """Pairs from GSM8K (`question`, `answer`): the same worked solution with the right final number
    (chosen) and with a wrong one (rejected).

    Both responses are the reference reasoning followed by "The answer is N." (the SFT rendering);
    the rejected N is the true one plus a seeded nonzero offset in [-10, 10]. Only the final number
    differs, so the preference is unambiguous and verifiable: a small, cheap set for checking DPO on
    a real model, not a training set of interest.
    """
    rng = random.Random(seed)
    pairs = []
    for index, record in enumerate(records):
        answer = gsm8k.reference_answer(record["answer"])
        if not answer.lstrip("-").isdigit():
            raise ValueError(
                f"{source}: record {index}: GSM8K final answer {answer!r} is not an integer; "
                "preference pairs change the final number"
            )
        wrong = int(answer) + rng.choice([d for d in range(-10, 11) if d])
        pairs.append(
            {
                "prompt": [{"role": "user", "content": record["question"]}],
                "chosen": [_assistant(gsm8k.solution(record["answer"]))],
                "rejected": [_assistant(gsm8k.solution(record["answer"], str(wrong)))],
                "meta": {
                    "source_index": index,
                    "answer": answer,
                    "rule": "gsm8k_wrong_final_number",
                    "seed": seed,
                },
            }
        )
    return pairs


def _assistant(content: str) -> Message:
    return {"role": "assistant", "content": content}
