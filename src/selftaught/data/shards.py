"""A pipeline stage written as JSONL shards, resumable after a crash at any point.

`run_stage` maps its inputs to records one fixed-size chunk at a time and writes chunk k to
`part-{k:05d}.jsonl`. A stage directory holds:

    stage.json          written first: the fingerprint, shard size and input count it is computed from
    part-00000.jsonl    records of inputs[0 : shard_size], then the next chunk, ...
    README.md           a dataset card whose YAML header names the shards (`data_files: part-*.jsonl`)
    manifest.json       written last: the stage is complete

A completed stage is a Hugging Face dataset as it stands; load it by its shard pattern, or by its
directory (the card tells `datasets` which files are data):

    datasets.load_dataset("json", data_files=f"{stage_dir}/part-*.jsonl", split="train")
    datasets.load_dataset(stage_dir, split="train")

(`load_dataset("json", data_dir=stage_dir)` reads every file of the directory, the JSON manifest
included, and fails: use one of the two above.) `selftaught` itself reads a stage with `read_stage`
or `data.sources.read_records(stage_dir)`, which check the shards against the manifest.

Every file is written to `<name>.tmp` and renamed when complete, so a killed process leaves at most
a `.tmp` file. On a rerun a stage with a manifest is skipped (its records are read back), and an
incomplete one computes only its missing shards. A directory computed with another fingerprint is
an error, never reused: one stage directory never mixes data of two configurations.

Shards are the unit of work: by default they are computed one after another in this process;
`executor="ray"` (`data/executors.py`) maps the same shard function over the missing shards on
Ray Data. Either way this process writes each shard as it arrives and the manifest last, in the
format above, so a stage started on one executor resumes or is read back on the other.

`run_once` is the same contract for a stage that produces one result rather than records (a trained
model, an evaluation): `started.json` first, `done.json` (fingerprint and result) last.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from selftaught.data.executors import Executor, get_executor
from selftaught.data.sources import atomic_write, read_jsonl, write_jsonl

T = TypeVar("T")

STAGE_FILE = "stage.json"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"
DATA_FILES = "part-*.jsonl"
"""The shards of a stage as a glob (`datasets.load_dataset("json", data_files=f"{stage_dir}/{DATA_FILES}")`)."""
STARTED_FILE = "started.json"
DONE_FILE = "done.json"


def compute_fingerprint(config: Any) -> str:
    """SHA-256 hex digest of `config` (any JSON-serialisable value) as canonical JSON.

    Give it everything a stage's records depend on (model, template version, seed, input ids) and
    pass the result to `run_stage`.
    """
    text = json.dumps(config, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shard_path(out_dir: str | os.PathLike[str], index: int) -> Path:
    """Path of shard `index` of the stage in `out_dir`."""
    return Path(out_dir) / f"part-{index:05d}.jsonl"


def stage_is_complete(out_dir: str | os.PathLike[str]) -> bool:
    """True when the stage in `out_dir` finished (its manifest exists)."""
    return (Path(out_dir) / MANIFEST_FILE).is_file()


def run_stage(
    out_dir: str | os.PathLike[str],
    inputs: Sequence[T],
    fn: Callable[[list[T]], list[dict[str, Any]]],
    *,
    shard_size: int,
    fingerprint: str,
    meta: dict[str, Any] | None = None,
    desc: str = "",
    executor: str | Executor | None = None,
) -> list[dict[str, Any]]:
    """Records of `fn` applied to `inputs` in chunks of `shard_size`, stored as a stage in `out_dir`.

    `fn` takes one chunk (a list of up to `shard_size` inputs) and returns any number of JSON-
    serialisable dict records. `fingerprint` identifies the inputs and configuration (see
    `compute_fingerprint`); `meta` is provenance copied into the manifest. A complete stage is read
    back without calling `fn`; an incomplete one computes only the shards it lacks. The records
    returned are those read back from disk, so a fresh run and a resumed one return equal lists.
    `executor` computes the missing shards (`data.executors.get_executor`: None or "local" in this
    process, "ray" on Ray Data); it does not change what is written.
    """
    out_dir = Path(out_dir)
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    plan = {"fingerprint": fingerprint, "shard_size": shard_size, "num_inputs": len(inputs)}
    if stage_is_complete(out_dir):
        _check_plan(out_dir, _read_json(out_dir / MANIFEST_FILE), plan)
        return read_stage(out_dir)
    _start_stage(out_dir, plan)
    num_shards = math.ceil(len(inputs) / shard_size)
    missing = [index for index in range(num_shards) if not shard_path(out_dir, index).is_file()]
    chunks = ((index, list(inputs[index * shard_size : (index + 1) * shard_size])) for index in missing)

    def write(index: int, records: Any) -> None:
        write_jsonl(shard_path(out_dir, index), _checked_records(records, index))

    get_executor(executor).map_shards(fn, chunks, write, total=num_shards, desc=desc or out_dir.name)
    shards = [read_jsonl(shard_path(out_dir, index)) for index in range(num_shards)]
    manifest = {
        **plan,
        "num_shards": num_shards,
        "num_records_per_shard": [len(shard) for shard in shards],
        "num_records": sum(len(shard) for shard in shards),
        "meta": meta or {},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_card(out_dir, manifest)
    _write_json(out_dir / MANIFEST_FILE, manifest)
    return [record for shard in shards for record in shard]


def read_stage(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of the completed stage in `out_dir`, in input order."""
    out_dir = Path(out_dir)
    if not stage_is_complete(out_dir):
        raise ValueError(
            f"{out_dir} is not a completed stage (no {MANIFEST_FILE}); run the stage that writes it"
        )
    manifest = _read_json(out_dir / MANIFEST_FILE)
    records: list[dict[str, Any]] = []
    for index, expected in enumerate(manifest["num_records_per_shard"]):
        shard = read_jsonl(shard_path(out_dir, index))
        if len(shard) != expected:
            raise ValueError(
                f"{shard_path(out_dir, index)} has {len(shard)} records but {MANIFEST_FILE} says {expected}: "
                "the stage was modified after it completed; delete the directory and rerun"
            )
        records.extend(shard)
    return records


def run_once(
    out_dir: str | os.PathLike[str], fingerprint: str, fn: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The result of `fn()` for the configuration `fingerprint`, computed at most once in `out_dir`.

    For stages that produce a model or an evaluation rather than records. `out_dir/done.json`,
    written atomically and last, holds the fingerprint and the result: when it exists with this
    fingerprint, its result is returned and `fn` is not called. Otherwise `fn` runs (it writes its
    outputs into `out_dir` and may resume from its own checkpoints there), then `done.json` is
    written. `started.json` (the fingerprint, written before `fn` runs) makes an interrupted run of
    another configuration an error too, so `fn` never resumes another configuration's checkpoints.
    `fn` returns a JSON-serialisable dict; what is returned is read back from `done.json`, so a
    fresh run and a skipped one return equal dicts.
    """
    out_dir = Path(out_dir)
    done = out_dir / DONE_FILE
    if done.is_file():
        record = _read_json(done)
        _check_run_fingerprint(out_dir, "a finished", record.get("fingerprint"), fingerprint)
        return record["result"]
    started = out_dir / STARTED_FILE
    if started.is_file():
        _check_run_fingerprint(out_dir, "an interrupted", _read_json(started).get("fingerprint"), fingerprint)
    else:
        _write_json(started, {"fingerprint": fingerprint})
    result = fn()
    if not isinstance(result, dict):
        raise TypeError(f"run_once's fn must return a dict (the stage's result), it returned {result!r:.200}")
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write_json(done, {"fingerprint": fingerprint, "result": result, "created": created})
    return _read_json(done)["result"]


def _check_run_fingerprint(out_dir: Path, what: str, found: Any, fingerprint: str) -> None:
    if found != fingerprint:
        raise ValueError(
            f"{out_dir} holds {what} run of another config (fingerprint {found}, this run's is "
            f"{fingerprint}); pass a new out_dir for this config, or delete that directory"
        )


def _start_stage(out_dir: Path, plan: dict[str, Any]) -> None:
    """Write `stage.json` for a new stage, or check that an interrupted one had the same plan."""
    stage_file = out_dir / STAGE_FILE
    if stage_file.is_file():
        _check_plan(out_dir, _read_json(stage_file), plan)
    elif any(out_dir.glob("part-*.jsonl")):
        raise ValueError(
            f"{out_dir} has part files but no {STAGE_FILE}, so what they were computed from is unknown; "
            "use a new directory or delete this one"
        )
    else:
        _write_json(stage_file, plan)


def _check_plan(out_dir: Path, found: dict[str, Any], plan: dict[str, Any]) -> None:
    for key, value in plan.items():
        if found.get(key) != value:
            raise ValueError(
                f"{out_dir} holds a stage computed with {key}={found.get(key)!r}, but this run has "
                f"{key}={value!r}; use a new directory or delete this one (a stage never mixes two configurations)"
            )


def _checked_records(records: Any, index: int) -> list[dict[str, Any]]:
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise TypeError(
            f"a stage's fn must return a list of dicts; for shard {index} it returned {records!r:.200}"
        )
    return records


def write_dataset_card(directory: str | os.PathLike[str], data_files: str, text: str) -> None:
    """`<directory>/README.md`: a dataset card whose YAML header names the data files (a glob relative
    to `directory`), so `datasets.load_dataset(directory)` reads only those, and `text` below it."""
    with atomic_write(Path(directory) / CARD_FILE) as f:
        f.write(f'---\nconfigs:\n- config_name: default\n  data_files: "{data_files}"\n---\n\n{text}')


def _write_card(out_dir: Path, manifest: dict[str, Any]) -> None:
    """The stage's card: how it was made (fingerprint, provenance) and how to load it."""
    meta = json.dumps(manifest["meta"], ensure_ascii=False, default=str)
    write_dataset_card(
        out_dir,
        DATA_FILES,
        f"# {out_dir.name}\n\n"
        f"A `selftaught` data stage: {manifest['num_records']} records in {manifest['num_shards']} "
        f"JSONL shards (`{DATA_FILES}`), fingerprint `{manifest['fingerprint']}`.\n\n"
        f"Provenance: `{meta}`\n\n"
        "```python\n"
        "import datasets\n\n"
        f'datasets.load_dataset("json", data_files="{out_dir.name}/{DATA_FILES}", split="train")\n'
        f'datasets.load_dataset("{out_dir.name}", split="train")  # this card names the data files\n'
        "```\n",
    )


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, value: dict[str, Any]) -> None:
    with atomic_write(path) as f:
        json.dump(value, f, ensure_ascii=False, indent=2)
        f.write("\n")
