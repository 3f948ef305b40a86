"""Rates over an LLM judge's labels: answers it never labelled are left out of the rates and counted
as `unparsed` beside them, by cell; records without a `known` flag are sliced by `present` alone."""

import pytest

from selftaught.evals.rag import cell_of, format_cells, judged_rates, label_rates


def test_unparsed_labels_are_counted_beside_the_rates():
    records = [
        {"present": True, "known": True},
        {"present": True, "known": True},
        {"present": False, "known": False},
        {"other": 1},
    ]
    rates = judged_rates(["correct", None, None, "refuse"], records)
    assert rates["all"] == {"correct": 0.5, "incorrect": 0.0, "refuse": 0.5, "n": 2, "unparsed": 2}
    assert rates["present/known"] == {"correct": 1.0, "incorrect": 0.0, "refuse": 0.0, "n": 1, "unparsed": 1}
    assert rates["absent/unknown"] == {"correct": 0.0, "incorrect": 0.0, "refuse": 0.0, "n": 0, "unparsed": 1}
    table = format_cells({"base": rates})
    assert table.splitlines()[0].endswith("| % refuse | unparsed |")
    assert "| base | all | 2 | 50.0 | 0.0 | 50.0 | 2 |" in table
    assert "unparsed" not in format_cells({"base": label_rates(["correct"], records[:1])})
    with pytest.raises(ValueError, match="labels must be"):
        label_rates([None], records[:1])  # label_rates stays strict
    with pytest.raises(ValueError, match="one label per record"):
        judged_rates([None], records)


def test_records_without_a_known_flag_are_sliced_by_relevance_alone():
    assert cell_of({"present": True}) == "present" and cell_of({"present": False}) == "absent"
    assert cell_of({"present": None, "known": True}) is None
    rates = judged_rates(
        ["correct", "refuse", None], [{"present": True}, {"present": False}, {"present": None}]
    )
    assert list(rates) == ["all", "present", "absent"] and rates["all"]["unparsed"] == 1
