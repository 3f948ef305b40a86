"""Three-way evaluation of retrieval-augmented answers (papers_A.md §4.1 step 8, §4.6).

Each answer gets a label, `correct`, `incorrect` (a hallucination) or `refuse`, from a labeller: the
tiny world's programmatic judge (`world.facts.label`) or an LLM judge. Rates are reported over all
questions and sliced by the records' boolean labels: `present` (a passage states the answer: the
paper's relevance judge) x `known` (the base model knows the fact), the paper's four cells, so a
refusal where the answer is present (a false refusal) is told apart from an appropriate one. The same
questions are asked with and without their passages (the non-RAG degradation the paper measures).
An LLM judge may never give a parseable label (None): `judged_rates` leaves those answers out of the
rates and reports their count as `unparsed` beside them; `label_rates` itself accepts only labels.

    rates = label_rates(labels, records)        {"all": {...}, "present/known": {...}, ...}
    rates = judged_rates(labels, records)       the same over parsed labels, + `unparsed` per group
    format_cells(table)                          a markdown table of the cells x labels
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

LABELS = ("correct", "incorrect", "refuse")
CELLS = ("present/known", "present/unknown", "absent/known", "absent/unknown", "present", "absent")
"""The four cells; `present` / `absent` alone for records without a `known` flag (real data, whose
`present` comes from the relevance judge)."""


def cell_of(record: Mapping[str, Any]) -> str | None:
    """`present/known`, ... from the record's `present` and `known` flags, `present` or `absent` when
    it has no `known` flag; None without a `present` flag."""
    if not isinstance(record.get("present"), bool):
        return None
    present = "present" if record["present"] else "absent"
    if not isinstance(record.get("known"), bool):
        return present
    return f"{present}/{'known' if record['known'] else 'unknown'}"


def label_rates(labels: Sequence[str], records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Share of each label over all answers (`all`) and in each cell the records have, with the
    count `n`: `{"all": {"correct": .5, "incorrect": .3, "refuse": .2, "n": 200}, "absent/unknown": ...}`."""
    if len(labels) != len(records):
        raise ValueError(f"one label per record: got {len(labels)} labels for {len(records)} records")
    unknown = sorted({label for label in labels} - set(LABELS))
    if unknown:
        raise ValueError(f"labels must be {', '.join(LABELS)}; got {unknown}")
    groups: dict[str, list[str]] = {"all": list(labels)}
    for label, record in zip(labels, records, strict=True):
        cell = cell_of(record)
        if cell is not None:
            groups.setdefault(cell, []).append(label)
    order = ["all", *[c for c in CELLS if c in groups]]
    return {
        name: {
            **{label: groups[name].count(label) / len(groups[name]) for label in LABELS},
            "n": len(groups[name]),
        }
        for name in order
        if groups[name]
    }


def judged_rates(
    labels: Sequence[str | None], records: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, float]]:
    """`label_rates` over the answers that have a label, each group with `unparsed`: how many of its
    answers the judge never labelled (None). A group whose answers are all unparsed has zero rates."""
    if len(labels) != len(records):
        raise ValueError(f"one label per record: got {len(labels)} labels for {len(records)} records")
    parsed = [(label, record) for label, record in zip(labels, records, strict=True) if label is not None]
    rates = label_rates([label for label, _ in parsed], [record for _, record in parsed]) if parsed else {}
    unparsed: dict[str, int] = {"all": 0}
    for label, record in zip(labels, records, strict=True):
        if label is None:
            unparsed["all"] += 1
            cell = cell_of(record)
            if cell is not None:
                unparsed[cell] = unparsed.get(cell, 0) + 1
    empty = {**dict.fromkeys(LABELS, 0.0), "n": 0}
    order = ["all", *[c for c in CELLS if c in rates or c in unparsed]]
    return {name: {**rates.get(name, empty), "unparsed": unparsed.get(name, 0)} for name in order}


def format_cells(tables: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A markdown table: one row per (model or setting, cell), the three label rates in percent.
    `tables` maps a row name (e.g. `base, passages`) to `label_rates`' output, or `judged_rates'`,
    whose `unparsed` counts get a last column."""
    judged = any("unparsed" in row for rates in tables.values() for row in rates.values())
    columns = ["model", "cell", "n", *[f"% {label}" for label in LABELS], *(["unparsed"] if judged else [])]
    lines = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
    for name, rates in tables.items():
        for cell, row in rates.items():
            lines.append(
                f"| {name} | {cell} | {int(row['n'])} | "
                + " | ".join(f"{100 * row[label]:.1f}" for label in LABELS)
                + " |"
                + (f" {int(row.get('unparsed', 0))} |" if judged else "")
            )
    return "\n".join(lines)
