"""Contrasting pairs for the Self-Taught Evaluator from real instructions (papers_A §5.1 steps 1-2).

Stages (each a resumable `stages.generate` / `stages.parse` under `out_dir`, a rerun reuses them):
  1. classify   (`keep` not empty) an LLM puts each instruction in one of `CATEGORIES`
                (`ste-classify@1`, one line `Category: <name>`); only the kept categories go on
                (the paper keeps reasoning); unreadable replies are dropped and counted
  2. respond    y_w: the generator's answer to the instruction x (`ste-respond@1`)
  3. worse      `modified_instruction` (the paper's main method, `ste-worse-response@1`): the
                generator sees x and y_w and writes a modified instruction x' close to x, then a
                good answer y_l to x' that is not a good answer to x, between fixed markers;
                `direct_bad` (`ste-bad-response@1`): a plausible but subtly bad answer to x.
                A reply without its markers is dropped and counted
Output: TRL preference records `{id, prompt, chosen: y_w, rejected: y_l, mode, category,
modified_instruction, provenance}`, the synthetic label y_w > y_l. The A/B position is drawn
later, per pair, by the flow (`chosen_first_share`). GSM8K-style "answer mismatch" pairs need no
generator: give the flow a GSM8K file as `pairs`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selftaught.data.templates import PromptTemplate, register_template
from selftaught.engines.base import Engine, SamplingParams
from selftaught.pipelines.stages import Record, generate, parse

CATEGORIES = ("coding", "math", "knowledge & reasoning", "social studies", "creative writing", "other")
"""The classifier's labels (the paper's list includes coding, maths, knowledge & reasoning, social
studies and others)."""
MODES = ("modified_instruction", "direct_bad")

CLASSIFY = register_template(
    PromptTemplate(
        "ste-classify",
        1,
        user=(
            "Classify the user instruction below into exactly one of these categories: "
            + ", ".join(CATEGORIES)
            + ".\nReply with one line, `Category: <category>`.\n\nInstruction:\n{instruction}"
        ),
        slots=("instruction",),
    )
)
RESPOND = register_template(PromptTemplate("ste-respond", 1, user="{instruction}", slots=("instruction",)))
MODIFIED_START, MODIFIED_ANSWER_START, MODIFIED_ANSWER_END = (
    "[User Question Modified]",
    "[The start of Assistant's answer to the modified instruction]",
    "[The end of Assistant's answer to the modified instruction]",
)
WORSE = register_template(
    PromptTemplate(
        "ste-worse-response",
        1,
        user=(
            "Below are a user question and an assistant's answer to it. First, write a modified user "
            "question that is highly relevant to the original question but not semantically identical "
            "to it. Then write a high-quality answer to the modified question that is a good response to "
            "the modified question but NOT a good response to the original question. Use exactly this "
            f"format:\n{MODIFIED_START}\n<the modified question>\n{MODIFIED_ANSWER_START}\n<the answer>\n"
            f"{MODIFIED_ANSWER_END}\n\n[User Question]\n{{instruction}}\n\n[The start of Assistant's "
            "answer]\n{response}\n[The end of Assistant's answer]"
        ),
        slots=("instruction", "response"),
    )
)
BAD_START, BAD_END = "[The start of the bad answer]", "[The end of the bad answer]"
BAD = register_template(
    PromptTemplate(
        "ste-bad-response",
        1,
        user=(
            "Below is a user question. Write an answer that looks plausible but is worse than a good "
            "answer in a way a careful reader would notice: a wrong fact or step, a missed part of the "
            f"question, or an unhelpful reply. Use exactly this format:\n{BAD_START}\n<the answer>\n"
            f"{BAD_END}\n\n[User Question]\n{{instruction}}"
        ),
        slots=("instruction",),
    )
)

_CATEGORY = re.compile(r"^\s*Category:\s*(.+?)\s*\.?\s*$", re.MULTILINE | re.IGNORECASE)


def parse_category(text: str) -> str | None:
    """The last `Category: <name>` line naming one of `CATEGORIES` (any case), else None."""
    found = [m.group(1).strip().lower() for m in _CATEGORY.finditer(text)]
    return found[-1] if found and found[-1] in CATEGORIES else None


def _between(text: str, start: str, end: str | None) -> str | None:
    head, found, rest = text.partition(start)
    if not found:
        return None
    if end is not None:
        rest, found, _ = rest.partition(end)
        if not found:
            return None
    return rest.strip() or None


def parse_modified(text: str) -> dict[str, str] | None:
    """`{"instruction": x', "response": y_l}` from the worse-response reply, or None when a marker
    or either part is missing (the paper drops those examples)."""
    instruction = _between(text, MODIFIED_START, MODIFIED_ANSWER_START)
    response = _between(text, MODIFIED_ANSWER_START, MODIFIED_ANSWER_END)
    return (
        None
        if instruction is None or response is None
        else {"instruction": instruction, "response": response}
    )


def parse_bad(text: str) -> dict[str, str] | None:
    """`{"response": y_l}` between the bad-answer markers, or None."""
    response = _between(text, BAD_START, BAD_END)
    return None if response is None else {"response": response}


def synthesize_pairs(
    out_dir: str | os.PathLike[str],
    instructions: Sequence[Record],
    engine: Engine,
    *,
    generator: str,
    mode: str = "modified_instruction",
    keep: Sequence[str] = ("knowledge & reasoning",),
    seed: int = 0,
    max_new_tokens: int = 1024,
    temperature: float = 0.7,
    top_p: float = 0.9,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The preference records of `instructions` (each with `id` and `instruction`), and counts."""
    if mode not in MODES:
        raise ValueError(f"pair mode must be one of {', '.join(MODES)}, got {mode!r}")
    unknown = sorted(set(keep) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"keep categories {unknown} are not among {list(CATEGORIES)}")
    out = Path(out_dir)
    records: list[Record] = [{"id": str(r["id"]), "instruction": str(r["instruction"])} for r in instructions]
    counts = {"num_instructions": len(records)}
    greedy = SamplingParams(temperature=0.0, max_new_tokens=32)
    sampling = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    if keep:
        records = generate(
            out / "classify",
            records,
            engine,
            CLASSIFY,
            greedy,
            generator=generator,
            seed=seed,
            desc="classify",
        )
        records, _ = parse(out / "classify-parsed", records, parse_category, parser_name="category@1")
        for record in records:
            record["category"] = record.pop("parsed")[0]
            del record["completions"]
        counts["num_unclassified"] = sum(r["category"] is None for r in records)
        records = [r for r in records if r["category"] in keep]
    counts["num_kept_category"] = len(records)
    records = generate(
        out / "respond",
        records,
        engine,
        RESPOND,
        sampling,
        generator=generator,
        seed=seed,
        output_field="chosen",
    )
    for record in records:
        record["response"] = record["chosen"][0]["text"].strip()
    records = [r for r in records if r["response"]]
    template, parser = (WORSE, parse_modified) if mode == "modified_instruction" else (BAD, parse_bad)
    records = generate(
        out / "worse",
        records,
        engine,
        template,
        sampling,
        generator=generator,
        seed=seed,
        output_field="worse",
    )
    records, _ = parse(out / "worse-parsed", records, parser, parser_name=f"{template.name}@1", field="worse")
    pairs = [_pair(r, mode) for r in records if r["parsed"][0] is not None]
    counts |= {"num_unparsed_worse": len(records) - len(pairs), "num_pairs": len(pairs)}
    return pairs, counts


def _pair(record: Record, mode: str) -> dict[str, Any]:
    worse = record["parsed"][0]
    return {
        "id": record["id"],
        "prompt": record["instruction"],
        "chosen": record["response"],
        "rejected": worse["response"],
        "mode": mode,
        "category": record.get("category"),
        "modified_instruction": worse.get("instruction"),
        "provenance": record["provenance"],
    }
