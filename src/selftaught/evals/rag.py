"""Three-way evaluation of retrieval-augmented answers (papers_A.md §4.1 step 8, §4.6).

Each answer gets a label, `correct`, `incorrect` (a hallucination) or `refuse`, from a labeller: the
tiny world's programmatic judge (`world.facts.label`) or an LLM judge. Rates are reported over all
questions and sliced by the records' boolean labels: `present` (a passage states the answer: the
paper's relevance judge) x `known` (the base model knows the fact), the paper's four cells, so a
refusal where the answer is present (a false refusal) is told apart from an appropriate one. The same
questions are asked with and without their passages (the non-RAG degradation the paper measures).

    rates = label_rates(labels, records)        {"all": {...}, "present/known": {...}, ...}
    format_cells(table)                          a markdown table of the cells x labels
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

LABELS = ("correct", "incorrect", "refuse")
CELLS = ("present/known", "present/unknown", "absent/known", "absent/unknown")


def cell_of(record: Mapping[str, Any]) -> str | None:
    """`present/known`, ... from the record's `present` and `known` flags; None without both."""
    if not isinstance(record.get("present"), bool) or not isinstance(record.get("known"), bool):
        return None
    return f"{'present' if record['present'] else 'absent'}/{'known' if record['known'] else 'unknown'}"


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


def format_cells(tables: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A markdown table: one row per (model or setting, cell), the three label rates in percent.
    `tables` maps a row name (e.g. `base, passages`) to `label_rates`' output."""
    lines = ["| model | cell | n | % correct | % incorrect | % refuse |", "|---|---|---|---|---|---|"]
    for name, rates in tables.items():
        for cell, row in rates.items():
            lines.append(
                f"| {name} | {cell} | {int(row['n'])} | "
                + " | ".join(f"{100 * row[label]:.1f}" for label in LABELS)
                + " |"
            )
    return "\n".join(lines)
