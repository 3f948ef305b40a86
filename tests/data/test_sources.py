"""Dataset sources: JSONL errors name file and line, every format reads back what was written."""

import logging

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selftaught.data.shards import run_stage
from selftaught.data.sources import read_jsonl, read_jsonl_report, read_records, require_columns, write_jsonl

RECORDS = [
    {"prompt": "2+3?", "chosen": "5", "rejected": "6"},
    {"prompt": "café ☕", "chosen": "oui", "rejected": "non"},
    {"prompt": "9-4?", "chosen": "5", "rejected": "4"},
]


def write_lines(path, lines: list[str], final_newline: bool = True) -> None:
    path.write_text("\n".join(lines) + ("\n" if final_newline else ""), encoding="utf-8")


def test_jsonl_round_trip_keeps_unicode_and_creates_parents(tmp_path):
    path = tmp_path / "a" / "b" / "pairs.jsonl"
    write_jsonl(path, RECORDS)
    assert read_jsonl(path) == RECORDS
    assert "café ☕" in path.read_text(encoding="utf-8")
    assert [p.name for p in path.parent.iterdir()] == ["pairs.jsonl"]


def test_write_jsonl_is_atomic(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, RECORDS)

    def failing_records():
        yield RECORDS[0]
        raise RuntimeError("generator died")

    with pytest.raises(RuntimeError):
        write_jsonl(path, failing_records())
    assert read_jsonl(path) == RECORDS
    assert [p.name for p in tmp_path.iterdir()] == ["pairs.jsonl"]


@pytest.mark.parametrize(
    ("lines", "final_newline", "expected"),
    [
        (['{"a": 1}', "", '{"a": 2,}'], True, r":3: invalid JSON"),
        (['{"a": 1}', "[1, 2]"], True, r":2: expected a JSON object per line, got list"),
        (['{"a": 1}', '"text"'], True, r":2: expected a JSON object per line, got str"),
        (['{"a": 1}', '{"a": 2'], False, r":2: invalid JSON .*looks truncated"),
    ],
)
def test_malformed_jsonl_names_file_and_line(tmp_path, lines, final_newline, expected):
    path = tmp_path / "bad.jsonl"
    write_lines(path, lines, final_newline)
    with pytest.raises(ValueError, match=f"bad.jsonl{expected}"):
        read_jsonl(path)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid UTF-8"):
        read_jsonl(path)


def test_count_mode_reports_skipped_lines(tmp_path, caplog):
    path = tmp_path / "mixed.jsonl"
    write_lines(path, ['{"a": 1}', "not json", "", "[3]", '{"a": 2}', '{"a": '], final_newline=False)
    records, report = read_jsonl_report(path, on_error="count")
    assert records == [{"a": 1}, {"a": 2}]
    assert (report.num_records, report.num_malformed) == (2, 3)
    assert [error.split(": ")[0] for error in report.errors] == [f"{path}:{n}" for n in (2, 4, 6)]
    with caplog.at_level(logging.WARNING):
        assert read_jsonl(path, on_error="count") == records
    assert "skipped 3 malformed line(s)" in caplog.text


def test_limit_and_byte_order_mark(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"a": 2}\n{"a": 3}\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert read_records(path, limit=2) == [{"a": 1}, {"a": 2}]


def test_parquet_round_trip(tmp_path):
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), path)
    assert read_records(path) == RECORDS
    assert read_records(path, limit=2) == RECORDS[:2]
    assert read_records(path, limit=0) == []


def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    datasets.disable_progress_bars()
    train, test = datasets.Dataset.from_list(RECORDS[:2]), datasets.Dataset.from_list(RECORDS[2:])
    train.save_to_disk(str(tmp_path / "dataset"))
    datasets.DatasetDict(train=train, test=test).save_to_disk(str(tmp_path / "dict"))
    assert read_records(tmp_path / "dataset") == RECORDS[:2]
    assert read_records(tmp_path / "dataset", limit=1) == RECORDS[:1]
    assert read_records(tmp_path / "dict", split="test") == RECORDS[2:]
    with pytest.raises(ValueError, match=r"has splits \['test', 'train'\]; pass split="):
        read_records(tmp_path / "dict")
    with pytest.raises(ValueError, match="single Dataset without splits"):
        read_records(tmp_path / "dataset", split="train")


def test_hub_source_calls_load_dataset_with_split(monkeypatch):
    calls = []

    def fake_load_dataset(name, split=None):
        calls.append((name, split))
        return datasets.Dataset.from_list(RECORDS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert read_records("hf:org/pairs", split="train", limit=2) == RECORDS[:2]
    assert calls == [("org/pairs", "train")]


def test_completed_stage_directory(tmp_path):
    run_stage(tmp_path / "stage", RECORDS, lambda chunk: chunk, shard_size=2, fingerprint="f", desc="test")
    assert read_records(tmp_path / "stage") == RECORDS
    assert read_records(tmp_path / "stage", limit=1) == RECORDS[:1]
    (tmp_path / "stage" / "manifest.json").unlink()
    with pytest.raises(ValueError, match="incomplete stage"):
        read_records(tmp_path / "stage")


def test_unknown_sources_list_what_is_accepted(tmp_path):
    with pytest.raises(ValueError, match=r"does not exist; expected a \.jsonl file, a \.parquet file"):
        read_records(tmp_path / "missing.jsonl")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="is not a readable dataset; expected"):
        read_records(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="is not a readable dataset"):
        read_records(tmp_path)
    write_jsonl(tmp_path / "a.jsonl", RECORDS)
    with pytest.raises(ValueError, match="split='train' only applies"):
        read_records(tmp_path / "a.jsonl", split="train")
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'count'"):
        read_records(tmp_path / "a.jsonl", on_error="skip")


def test_require_columns_names_record_and_column():
    records = [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "a"}]
    require_columns(records[:1], ["prompt", "chosen", "rejected"], "pairs.jsonl")
    with pytest.raises(
        ValueError, match=r"pairs.jsonl: record 1 has no column 'rejected' \(it has \['chosen', 'prompt'\]\)"
    ):
        require_columns(records, ["prompt", "chosen", "rejected"], "pairs.jsonl")
