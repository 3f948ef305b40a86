"""Preference pairs in TRL's format (`prompt`, `chosen`, `rejected`): writing them, and tokenising them.

A record is conversational (`prompt` a message list, each response a one-message list) or plain
text (three strings), as TRL's preference datasets are; `meta` carries provenance. Tokenised, a pair
is two `(input_ids, loss_mask)` sequences that share the prompt and train the response tokens only.
"""

from __future__ import annotations

from typing import Any

from selftaught.data.chat import render_prompt_completion
from selftaught.types import Pair

Tokens = tuple[list[int], list[bool]]
"""`(input_ids, loss_mask)` of one sequence (`selftaught.train.batching.Example`; data/ is below train/)."""
PairExample = tuple[Tokens, Tokens]
"""`(chosen, rejected)`, each `(input_ids, loss_mask)` with the response tokens trained."""


def preference_record(pair: Pair, provenance: dict[str, Any]) -> dict[str, Any]:
    """A pair in TRL's conversational preference format, with its provenance in `meta`."""
    return {
        "prompt": pair.prompt.messages,
        "chosen": [{"role": "assistant", "content": pair.chosen.text}],
        "rejected": [{"role": "assistant", "content": pair.rejected.text}],
        "meta": {
            "prompt_id": pair.prompt.id,
            "answer": pair.prompt.answer,
            **pair.prompt.meta,
            **pair.meta,
            "chosen_finish_reason": pair.chosen.finish_reason,
            "rejected_finish_reason": pair.rejected.finish_reason,
            **provenance,
        },
    }


def build_pair_examples(
    records: list[dict[str, Any]], tokenizer: Any, max_length: int, source: str = "preferences"
) -> tuple[list[PairExample], int]:
    """Tokenised `(chosen, rejected)` pairs truncated to `max_length`, and the number dropped because
    a side had no response token left; `source` names the records in errors."""
    pairs: list[PairExample] = []
    for index, record in enumerate(records):
        where = f"{source}: record {index}"
        chosen = _truncate(_render_response(record, "chosen", tokenizer, where), max_length)
        rejected = _truncate(_render_response(record, "rejected", tokenizer, where), max_length)
        if any(chosen[1]) and any(rejected[1]):
            pairs.append((chosen, rejected))
    if not pairs:
        raise ValueError(
            f"no preference pair has response tokens within data.max_length={max_length} "
            f"(of {len(records)} records); raise data.max_length or check the data"
        )
    return pairs, len(records) - len(pairs)


def _render_response(record: dict[str, Any], column: str, tokenizer: Any, where: str) -> Tokens:
    """`(input_ids, loss_mask)` of the prompt followed by the `column` response, response trained."""
    return render_prompt_completion(tokenizer, record["prompt"], record[column], where=where, column=column)


def _truncate(example: Tokens, max_length: int) -> Tokens:
    ids, loss_mask = example
    return ids[:max_length], loss_mask[:max_length]
