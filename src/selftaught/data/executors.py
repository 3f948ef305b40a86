"""Where a stage's shards are computed: in this process (the default) or as tasks on a Ray cluster.

`data.shards.run_stage` hands its executor the shards it still lacks, each as `(index, chunk)`,
and the stage's shard function `fn(chunk) -> records`; the executor calls `write(index, records)`
in this process as each shard finishes, in any order. Writing stays in `run_stage`, so a stage
directory is the same files whichever executor filled it: an interrupted Ray run resumes from its
complete shards (locally or on Ray), and a local rerun reads a Ray-written stage.

`RayExecutor` maps the shard function over Ray Data, one shard per row and per block, so a
million documents spread over a cluster with no change to the stage's code. A row carries the
shard's index and its chunk (pickled in memory for transport, as Ray itself does with arguments;
nothing pickled is stored) and comes back as the index and the records as JSON text, which the
driver writes as it streams in. The shard function is shipped to the workers with cloudpickle, so
whatever it holds must be constructible there: an `OpenAIEngine` (it pickles as its config) over a
fleet of servers is the natural engine for Ray workers; a live HF model would be copied into every
task. Start the cluster yourself (`ray start`, or `ray.init(...)` in this process) or let the
executor call `ray.init(address)`; `ray` is the optional extra `selftaught[ray]`.

    run_stage(out_dir, docs, fn, shard_size=256, fingerprint=fp, executor="ray")
    generate(out_dir, records, engine, template, sampling, ..., executor=RayExecutor(num_cpus=0.25))
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from tqdm import tqdm

ShardFn = Callable[[list[Any]], list[dict[str, Any]]]
WriteShard = Callable[[int, Any], None]


class Executor(Protocol):
    """Computes shards: `write(index, fn(chunk))` for every `(index, chunk)` of `shards`."""

    def map_shards(
        self,
        fn: ShardFn,
        shards: Iterable[tuple[int, list[Any]]],
        write: WriteShard,
        *,
        total: int,
        desc: str,
    ) -> None: ...


class LocalExecutor:
    """One shard after another in this process, with a progress bar over all `total` shards."""

    def map_shards(
        self,
        fn: ShardFn,
        shards: Iterable[tuple[int, list[Any]]],
        write: WriteShard,
        *,
        total: int,
        desc: str,
    ) -> None:
        shards = list(shards)
        with tqdm(total=total, initial=total - len(shards), desc=desc, unit="shard") as progress:
            for index, chunk in shards:
                write(index, fn(chunk))
                progress.update(1)


@dataclass
class RayExecutor:
    """Shards as Ray Data tasks (see the module doc)."""

    address: str | None = None
    """Cluster to join when Ray is not initialised yet (`ray.init(address)`; None: `RAY_ADDRESS`, or a
    new local instance). An already initialised Ray is used as it is."""
    num_cpus: float = 1.0
    """CPUs reserved per shard task; below 1 runs more tasks per CPU (shards that wait on servers)."""
    concurrency: int | None = None
    """At most this many shard tasks at once (None: as many as the CPUs allow)."""

    def __post_init__(self) -> None:
        if self.num_cpus <= 0:
            raise ValueError(f"executor num_cpus must be > 0, got {self.num_cpus}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"executor concurrency must be >= 1 or None, got {self.concurrency}")

    def map_shards(
        self,
        fn: ShardFn,
        shards: Iterable[tuple[int, list[Any]]],
        write: WriteShard,
        *,
        total: int,
        desc: str,
    ) -> None:
        import ray
        import ray.data

        rows = [{"index": index, "chunk": pickle.dumps(chunk)} for index, chunk in shards]
        if not rows:
            return
        if not ray.is_initialized():
            ray.init(address=self.address)
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        results = dataset.map(_RunShard(fn), num_cpus=self.num_cpus, concurrency=self.concurrency)
        with tqdm(total=total, initial=total - len(rows), desc=f"{desc} (ray)", unit="shard") as progress:
            for row in results.iter_rows():
                write(int(row["index"]), json.loads(row["records"]))
                progress.update(1)


class _RunShard:
    """The Ray Data row function: a shard's chunk in, its index and records (JSON text) out."""

    def __init__(self, fn: ShardFn) -> None:
        self.fn = fn

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        records = self.fn(pickle.loads(row["chunk"]))
        return {"index": row["index"], "records": json.dumps(records, ensure_ascii=False)}


EXECUTOR_NAMES = ("local", "ray", "ray:<address>")


def get_executor(spec: str | Executor | None) -> Executor:
    """An executor from a name: None or "local", "ray" (join or start Ray), "ray:<address>"
    (e.g. "ray:auto", "ray:ray://head:10001"); an `Executor` object is returned as it is."""
    if spec is None or spec == "local":
        return LocalExecutor()
    if not isinstance(spec, str):
        return spec
    if spec == "ray":
        return RayExecutor()
    if spec.startswith("ray:") and len(spec) > 4:
        return RayExecutor(address=spec.removeprefix("ray:"))
    raise ValueError(f"executor must be one of {list(EXECUTOR_NAMES)} or an Executor, got {spec!r}")
