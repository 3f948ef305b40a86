"""Read and write datasets as lists of dict records: JSONL, Parquet, stage directories, HF `datasets`.

Records use the TRL column vocabulary (`messages`; `prompt` / `chosen` / `rejected`; `prompt` plus
extra columns), so the same files move between selftaught, TRL and other tools. Everything ends up
as `list[dict]`: datasets here are prompt pools and generated data, small enough to hold in memory.

A malformed JSONL line is an error naming `path:line`; with `on_error="count"` it is skipped and
counted instead, and the count is reported (`read_jsonl_report`, or a logged warning), never dropped
in silence. Writes are atomic: a file either has all its records or does not exist.
"""

from __future__ import annotations

import codecs
import importlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

logger = logging.getLogger(__name__)

OnError = Literal["raise", "count"]
MAX_REPORTED_ERRORS = 10
ACCEPTED_SOURCES = (
    "a .jsonl file, a .parquet file, a completed stage directory (manifest.json + part-*.jsonl), "
    "a directory written by datasets' save_to_disk, or 'hf:<name>' to load a Hugging Face hub dataset"
)


@dataclass
class ReadReport:
    """What `read_jsonl_report` read from one file."""

    path: str
    num_records: int = 0
    """Records returned."""
    num_malformed: int = 0
    """Lines skipped as not UTF-8, not JSON or not an object (only with `on_error="count"`)."""
    errors: list[str] = field(default_factory=list)
    """The first `MAX_REPORTED_ERRORS` problems, each as `"path:line: reason"`."""


def read_jsonl_report(
    path: str | os.PathLike[str], *, on_error: OnError = "raise", limit: int | None = None
) -> tuple[list[dict[str, Any]], ReadReport]:
    """Records of a JSON-lines file (one object per line, blank lines allowed) and a report.

    A line that is not valid UTF-8, not valid JSON or not a JSON object raises a ValueError
    `"<path>:<line>: <reason>"`; with `on_error="count"` it is skipped and counted in the report.
    `limit` stops reading after that many records.
    """
    _check_on_error(on_error)
    report = ReadReport(path=str(path))
    records: list[dict[str, Any]] = []
    with open(path, "rb") as f:
        for line_number, raw in enumerate(f, start=1):
            if limit is not None and len(records) >= limit:
                break
            if line_number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            try:
                records.append(_parse_line(raw, f"{path}:{line_number}"))
            except ValueError as error:
                if on_error == "raise":
                    raise
                report.num_malformed += 1
                if len(report.errors) < MAX_REPORTED_ERRORS:
                    report.errors.append(str(error))
    report.num_records = len(records)
    return records, report


def read_jsonl(
    path: str | os.PathLike[str], *, on_error: OnError = "raise", limit: int | None = None
) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; see `read_jsonl_report`.

    With `on_error="count"`, skipped lines are logged as a warning with their count and the first
    errors; call `read_jsonl_report` to get them as data.
    """
    records, report = read_jsonl_report(path, on_error=on_error, limit=limit)
    if report.num_malformed:
        logger.warning(
            "%s: skipped %d malformed line(s), kept %d record(s); first errors:\n  %s",
            path,
            report.num_malformed,
            report.num_records,
            "\n  ".join(report.errors),
        )
    return records


def _parse_line(raw: bytes, where: str) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{where}: not valid UTF-8 ({error.reason} at byte {error.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        hint = (
            ""
            if raw.endswith(b"\n")
            else "; it is the last line and has no newline: the file looks truncated"
        )
        raise ValueError(f"{where}: invalid JSON ({error.msg} at column {error.colno}){hint}") from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{where}: expected a JSON object per line, got {type(value).__name__} {value!r:.80}"
        )
    return value


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """Write `path` through `<path>.tmp`, renamed over `path` only when the block completes.

    Parent directories are created. If the block raises, the temporary file is removed and `path`
    is untouched; if the process dies, at most a `.tmp` file is left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Write `records` as UTF-8 JSON lines (non-ASCII kept as is), atomically."""
    with atomic_write(path) as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False))
            f.write("\n")


def read_records(
    source: str | os.PathLike[str],
    *,
    split: str | None = None,
    on_error: OnError = "raise",
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Records of a dataset, whatever its format; `limit` keeps the first `limit`.

    `source` is a `.jsonl` or `.parquet` file, a completed stage directory (see `shards.py`), a
    directory written by `datasets.Dataset.save_to_disk` or `DatasetDict.save_to_disk` (`split`
    picks one of a DatasetDict's splits), or `"hf:<name>"`, which calls
    `datasets.load_dataset(name, split=split)` and so may download from the Hugging Face hub: only
    when the user names such a source. Parquet and `datasets` need the `data` extra.
    `on_error` applies to `.jsonl` files (see `read_jsonl_report`).
    """
    _check_on_error(on_error)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, got {limit}")
    if isinstance(source, str) and source.startswith("hf:"):
        datasets = _import_data_extra("datasets", source)
        return _dataset_records(datasets.load_dataset(source[3:], split=split), None, source, limit)
    path = Path(source)
    kind = _local_kind(path)
    if split is not None and kind != "datasets":
        raise ValueError(
            f"split={split!r} only applies to save_to_disk directories and 'hf:' sources; {path} is a {kind} source"
        )
    if kind == "jsonl":
        return read_jsonl(path, on_error=on_error, limit=limit)
    if kind == "parquet":
        return _read_parquet(path, limit)
    if kind == "stage":
        from selftaught.data.shards import read_stage  # shards imports this module

        return read_stage(path)[:limit]
    datasets = _import_data_extra("datasets", str(path))
    return _dataset_records(datasets.load_from_disk(str(path)), split, str(path), limit)


def _local_kind(path: Path) -> str:
    """`"jsonl"`, `"parquet"`, `"stage"` or `"datasets"`; a ValueError for anything else."""
    if path.is_file() and path.suffix in (".jsonl", ".parquet"):
        return path.suffix[1:]
    if path.is_dir():
        if (path / "manifest.json").is_file():
            return "stage"
        if any(path.glob("part-*.jsonl*")):
            raise ValueError(
                f"{path} is an incomplete stage (part files but no manifest.json, which is written last); "
                "rerun the stage that writes it"
            )
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return "datasets"
    what = "does not exist" if not path.exists() else "is not a readable dataset"
    raise ValueError(f"{path} {what}; expected {ACCEPTED_SOURCES}")


def _read_parquet(path: Path, limit: int | None) -> list[dict[str, Any]]:
    parquet = _import_data_extra("pyarrow.parquet", str(path))
    if limit is None:
        return parquet.read_table(path).to_pylist()
    records: list[dict[str, Any]] = []
    for batch in parquet.ParquetFile(path).iter_batches(batch_size=max(1, min(limit, 65536))):
        if len(records) >= limit:
            break
        records.extend(batch.to_pylist())
    return records[:limit]


def _dataset_records(data: Any, split: str | None, source: str, limit: int | None) -> list[dict[str, Any]]:
    """Rows of a `datasets.Dataset`, or of split `split` of a `DatasetDict`."""
    if isinstance(data, dict):  # a DatasetDict is a dict of split name -> Dataset
        if split not in data:
            raise ValueError(
                f"{source} has splits {sorted(data.keys())}; pass split= one of them (got {split!r})"
            )
        data = data[split]
    elif split is not None:
        raise ValueError(f"{source} is a single Dataset without splits; drop split={split!r}")
    if limit is not None:
        data = data.select(range(min(limit, len(data))))
    return data.to_list()


def _import_data_extra(module: str, source: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"reading {source} needs `{module.split('.')[0]}`: pip install 'selftaught[data]'"
        ) from error


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "count"):
        raise ValueError(f"on_error must be 'raise' or 'count', got {on_error!r}")


def require_columns(records: list[dict[str, Any]], columns: Iterable[str], source: str) -> None:
    """Raise a ValueError naming the first record of `source` that lacks one of `columns`.

    For example a preference file whose records have `prompt` and `chosen` but no `rejected`.
    """
    columns = list(columns)
    for index, record in enumerate(records):
        missing = [column for column in columns if column not in record]
        if missing:
            raise ValueError(
                f"{source}: record {index} has no column {missing[0]!r} (it has {sorted(record)}); "
                f"every record needs {columns}"
            )


def json_type(value: Any) -> str:
    """How a JSON reader would name `value`'s type: null, a boolean, a number, a string, a list, an object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__
