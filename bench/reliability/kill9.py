"""Probe: kill -9 a run at random points, rerun the same command, and compare with an uninterrupted run.

For each command (small settings of `sft`, `dpo`, `online-rl` semi-online DPO and fully online GRPO,
and `generate`, all on the cached `tiny-world` student), the probe:

1. runs the command once, uninterrupted, into directory A, and records when each checkpoint
   (`checkpoints/step-NNNNNNN`, or for `generate` each shard `part-NNNNN.jsonl`), its temporary
   (`.step-NNNNNNN.tmp`, `part-NNNNN.jsonl.tmp`) and the final output appeared;
2. for each of `--points` seeded kill points, starts the same command into a fresh directory B as a
   subprocess and SIGKILLs it, by one of three modes in turn:
      time        after a random delay drawn between A's first checkpoint and A's final output,
                  counted from when the work began (the first step logged, or the first shard
                  started), so that the model load's varying time does not move it
      after-ckpt  right after (0-20 ms) a randomly chosen checkpoint appears
      mid-write   as soon as the temporary of a randomly chosen checkpoint appears (mid-save)
   then reruns the command into B until it exits 0 (at most 3 tries), and compares B with A:
      training    the final weights (`model/model.safetensors`, every tensor bitwise), the optimizer
                  state of the last checkpoint (bitwise), the checkpoint directories kept, and
                  `metrics.jsonl` (the same steps in the same order, none duplicated or missing,
                  every logged value equal except wall-clock ones: `time`, `*seconds`, `*per_s`)
      generate    the output records: the same set, the same order, none duplicated or lost
   and reports any temporary file left in B after the resume;
3. adds one SIGINT (Ctrl-C) point per command (a random mode), and, for the training commands, one
   SIGKILL before the first checkpoint (`pre-ckpt`: after step 2 is logged), which is outside
   the checkpointed window but is what a user most often hits.

Every process runs with OMP_NUM_THREADS=1 (the same float sums in every process), offline.
The `tiny-world` student must be in the selftaught cache (any `selftaught demo` or recipe run on it
puts it there; otherwise the first run trains it, about 3-7 minutes).

    .venv/bin/python bench/reliability/kill9.py                    # K=3 per command, ~7 min
    .venv/bin/python bench/reliability/kill9.py --points 1 --commands sft,generate
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_MODE": "disabled",
    "PYTHONUNBUFFERED": "1",
}
POLL_S = 0.002
RUN_TIMEOUT_S = 300
WALL_CLOCK_KEYS = re.compile(r"^time$|seconds$|per_s$")
"""metrics.jsonl keys that measure wall time: they differ between any two runs."""
RUN_DESCRIPTION_KEYS = {"ref_logps_reused"}
"""metrics.jsonl keys that describe the run rather than the training (a rerun may reuse a cache)."""


# --- the commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    line: str
    """The command line after `selftaught`; `{out}` is the run directory (A or B), `{prompts}` the
    prompts file."""
    kind: str  # "train" or "generate"
    weights: str = "model/model.safetensors"
    """The trained weights a finished run writes (relative to the run directory)."""

    def argv(self, run_dir: Path, prompts: Path) -> list[str]:
        filled = [
            a.replace("{out}", str(run_dir)).replace("{prompts}", str(prompts)) for a in self.line.split()
        ]
        return [sys.executable, "-m", "selftaught.cli", *filled]

    def shown(self) -> str:
        return "selftaught " + self.line.replace("{out}", "B").replace("{prompts}", "P")


TRAIN = "--preset tiny-smoke out_dir={out} checkpoint_every=5 log_every=1 eval.every=-1"
COMMANDS = [
    Command("sft", f"sft {TRAIN} num_steps=40 batch_size=32 data.num_examples=512", "train"),
    Command("dpo", f"dpo {TRAIN} num_steps=40 data.num_prompts=32", "train"),
    Command("online-rl-semi", f"online-rl {TRAIN} sync_every=4 num_steps=24", "train"),
    Command("online-rl-grpo", f"online-rl {TRAIN} loss=grpo sync_every=1 num_steps=24", "train"),
    Command("divpo", f"divpo {TRAIN} num_steps=24", "train"),
    Command(
        "adaptive-decoding",
        f"adaptive-decoding {TRAIN} num_steps=24",
        "train",
        weights="head/adaptive_head.safetensors",
    ),
    Command(
        "generate",
        "generate --model tiny-world --prompts {prompts} --out {out}/out.jsonl --shard-size 8 --n 2 "
        "--max-new-tokens 48 --seed 0",
        "generate",
    ),
]
NUM_PROMPTS = 256


# --- what a run directory holds -------------------------------------------------------------------


@dataclass
class Layout:
    """Where a command's checkpoints, their temporaries and its final output appear."""

    ckpt_dir: Path
    complete: re.Pattern[str]
    temporary: re.Pattern[str]
    final: Path

    @staticmethod
    def of(command: Command, run_dir: Path) -> Layout:
        if command.kind == "generate":
            return Layout(
                run_dir / "out.jsonl.stage",
                re.compile(r"part-(\d{5})\.jsonl$"),
                re.compile(r"part-(\d{5})\.jsonl\.tmp$"),
                run_dir / "out.jsonl",
            )
        return Layout(
            run_dir / "checkpoints",
            re.compile(r"step-(\d{7})$"),
            re.compile(r"\.step-(\d{7})\.tmp$"),
            run_dir / command.weights,
        )

    def scan(self) -> tuple[set[int], set[int], bool]:
        """(complete checkpoints, temporaries, final output exists) now."""
        try:
            names = os.listdir(self.ckpt_dir)
        except FileNotFoundError:
            names = []
        complete = {int(m.group(1)) for n in names if (m := self.complete.match(n))}
        temporary = {int(m.group(1)) for n in names if (m := self.temporary.match(n))}
        return complete, temporary, self.final.exists()


def work_started(command: Command, layout: Layout, run_dir: Path) -> bool:
    """Training has logged a step, or generation has created its stage directory."""
    if command.kind == "generate":
        return layout.ckpt_dir.exists()
    return any(s >= 1 for s in metric_steps(run_dir))


def metric_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            steps.append(-1)  # a torn line
    return steps


# --- the uninterrupted run and its timeline --------------------------------------------------------


@dataclass
class Timeline:
    seconds: float
    complete: dict[int, float] = field(default_factory=dict)
    temporary: dict[int, float] = field(default_factory=dict)
    final: float | None = None
    started: float | None = None
    """When the work began: the first training step logged, or the stage directory created."""


def run_straight(command: Command, run_dir: Path, prompts: Path) -> Timeline:
    layout = Layout.of(command, run_dir)
    start = time.monotonic()
    proc = subprocess.Popen(
        command.argv(run_dir, prompts), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    timeline = Timeline(0.0)
    while proc.poll() is None:
        complete, temporary, final = layout.scan()
        now = time.monotonic() - start
        for step in complete:
            timeline.complete.setdefault(step, now)
        for step in temporary:
            timeline.temporary.setdefault(step, now)
        if final and timeline.final is None:
            timeline.final = now
        if timeline.started is None and work_started(command, layout, run_dir):
            timeline.started = now
        time.sleep(POLL_S)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(
            f"{command.name}: the uninterrupted run failed (exit {proc.returncode}):\n{stderr[-2000:]}"
        )
    complete, _, _ = layout.scan()
    timeline.seconds = time.monotonic() - start
    for step in complete:  # kept checkpoints the poll missed
        timeline.complete.setdefault(step, timeline.seconds)
    if timeline.final is None:
        timeline.final = timeline.seconds
    return timeline


# --- one kill point -------------------------------------------------------------------------------


@dataclass
class Point:
    signal: str  # "KILL" or "INT"
    mode: str  # time | after-ckpt | mid-write | pre-ckpt
    delay_s: float = 0.0
    target: int = 0
    """The checkpoint (step or shard) that after-ckpt and mid-write wait for."""

    def describe(self, kind: str) -> str:
        unit = "shard" if kind == "generate" else "step"
        if self.mode == "time":
            return f"{self.delay_s:.2f}s after work began"
        if self.mode == "after-ckpt":
            return f"{self.delay_s * 1000:.0f}ms after {unit} {self.target}"
        if self.mode == "mid-write":
            return f"while writing {unit} {self.target}"
        return "after step 2 is logged, before any checkpoint"


@dataclass
class Row:
    command: str
    point: str
    signal: str
    killed: str
    resume: str
    result: str
    equal: bool
    resumed: bool


def plan_points(command: Command, timeline: Timeline, k: int, rng: random.Random, sigint: bool, pre: bool):
    checkpoints = sorted(timeline.complete)
    anchor = timeline.started or 0.0
    first = min(timeline.complete.values()) - anchor if timeline.complete else 0.0
    last = max((timeline.final or timeline.seconds) - anchor, first + 0.05)
    modes = ["time", "after-ckpt", "mid-write"]

    def point(sig: str, mode: str) -> Point:
        if mode == "time":
            return Point(sig, mode, delay_s=rng.uniform(first, last))
        if mode == "after-ckpt":
            return Point(sig, mode, delay_s=rng.uniform(0, 0.02), target=rng.choice(checkpoints))
        return Point(sig, mode, target=rng.choice(checkpoints))

    points = [point("KILL", modes[i % 3]) for i in range(k)]
    if pre and command.kind == "train":
        points.append(Point("KILL", "pre-ckpt"))
    if sigint:
        points.append(point("INT", rng.choice(modes)))
    return points


def kill_at(command: Command, point: Point, run_dir: Path, prompts: Path) -> tuple[str, bool]:
    """Start the command into `run_dir` and signal it at `point`; (what it left, whether it was hit)."""
    layout = Layout.of(command, run_dir)
    start = time.monotonic()
    proc = subprocess.Popen(
        command.argv(run_dir, prompts),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # our terminal's Ctrl-C does not reach it
    )
    fired, fired_at = False, None
    began = None
    note = ""
    while proc.poll() is None:
        now = time.monotonic() - start
        complete, temporary, final = layout.scan()
        fire = False
        if point.mode == "time":
            if began is None and work_started(command, layout, run_dir):
                began = now
            fire = began is not None and now >= began + point.delay_s
        elif point.mode == "after-ckpt":
            if point.target in complete or final:
                if fired_at is None:
                    fired_at = now + point.delay_s
                    note = "" if point.target in complete else " (missed: final output first)"
                fire = now >= fired_at
        elif point.mode == "mid-write":
            if point.target in temporary:
                fire = True
            elif point.target in complete or final:
                fire, note = True, " (missed the write: it was already published)"
        elif point.mode == "pre-ckpt":
            if complete or final:
                fire, note = True, " (missed: a checkpoint came first)"
            else:
                fire = any(s >= 2 for s in metric_steps(run_dir))
        if fire:
            os.kill(proc.pid, signal.SIGKILL if point.signal == "KILL" else signal.SIGINT)
            fired = True
            break
        time.sleep(POLL_S)
    hit_at = time.monotonic() - start
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:  # SIGINT ignored: that is a finding, then kill it
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        note += " (ignored SIGINT for 60 s; killed)"
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    complete, temporary, final = layout.scan()
    steps = [s for s in metric_steps(run_dir) if s > 0]
    unit = "shards" if command.kind == "generate" else "ckpts"
    state = f"t={hit_at:.2f}s rc={proc.returncode}; {unit} {_span(sorted(complete)) if complete else '-'}"
    if temporary:
        state += f" tmp {_span(sorted(temporary))}"
    if command.kind == "train":
        state += f"; last logged step {max(steps, default=0)}"
    if final:
        state += "; final output present"
    if point.signal == "INT":
        lines = [line.strip() for line in stderr.replace("\r", "\n").splitlines() if line.strip()]
        said = next((line for line in lines if line.startswith("selftaught:")), None)
        state += f"; said {said[:90]!r}" if said else "; said no 'selftaught:' line"
        first = next((i for i, line in enumerate(lines) if line.startswith("Traceback")), None)
        if first is not None:
            before = lines[first - 1] if first else ""
            state += f"; printed a traceback ({before[:60]!r} ... {lines[-1][:40]!r})"
    if not fired:
        note += " (the run finished before the signal)"
    elif proc.returncode == 0:
        note += " (exit 0 after the signal: it came after the work was done)"
    return state + note, fired


def resume(command: Command, run_dir: Path, prompts: Path) -> tuple[str, bool]:
    """Rerun the command into `run_dir` until it exits 0 (3 tries); what it said, whether it finished."""
    layout = Layout.of(command, run_dir)
    log = run_dir / "log.txt"
    log_offset = log.stat().st_size if log.exists() else 0
    kept = sorted(layout.scan()[0])
    said = []
    for attempt in range(1, 4):
        out = subprocess.run(
            command.argv(run_dir, prompts), env=ENV, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
        if out.returncode == 0:
            break
        last = [line for line in out.stderr.splitlines() if line.strip()][-1:] or ["(no stderr)"]
        said.append(f"try {attempt}: exit {out.returncode}: {last[0].strip()[:120]}")
    else:
        return "; ".join(said), False
    if command.kind == "generate":
        said.append(f"kept {len(kept)} of {NUM_PROMPTS // 8} shards")
    else:
        new_log = log.read_text()[log_offset:] if log.exists() else ""
        resumed = [line.split("] ", 1)[-1] for line in new_log.splitlines() if "resuming" in line]
        said.append(resumed[-1] if resumed else "started from step 0 (no checkpoint)")
    return "; ".join(said), True


# --- comparing B with A ---------------------------------------------------------------------------


def compare_train(a: Path, b: Path, weights: str = "model/model.safetensors") -> list[str]:
    import torch
    from safetensors.torch import load_file

    diffs = []
    wa, wb = load_file(a / weights), load_file(b / weights)
    if wa.keys() != wb.keys():
        diffs.append(f"weight names differ ({sorted(wa.keys() ^ wb.keys())[:3]})")
    unequal = [k for k in wa.keys() & wb.keys() if not torch.equal(wa[k], wb[k])]
    if unequal:
        worst = max((wa[k].float() - wb[k].float()).abs().max().item() for k in unequal)
        diffs.append(f"{len(unequal)}/{len(wa)} weight tensors differ (max |diff| {worst:.2e})")
    ckpts_a = sorted(p.name for p in (a / "checkpoints").iterdir())
    ckpts_b = sorted(p.name for p in (b / "checkpoints").iterdir())
    if ckpts_a != ckpts_b:
        diffs.append(f"checkpoints kept {ckpts_b} != {ckpts_a}")
    elif ckpts_a:
        oa = load_file(a / "checkpoints" / ckpts_a[-1] / "optimizer.safetensors")
        ob = load_file(b / "checkpoints" / ckpts_a[-1] / "optimizer.safetensors")
        bad = [k for k in oa if k not in ob or not torch.equal(oa[k], ob[k])]
        if bad or oa.keys() != ob.keys():
            diffs.append(f"optimizer state of {ckpts_a[-1]}: {len(bad)} tensors differ")
    if not diffs:
        diffs += [f"{d} (weights and the last optimizer state bitwise equal)" for d in compare_metrics(a, b)]
    else:
        diffs += compare_metrics(a, b)
    return diffs


def _records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def compare_metrics(a: Path, b: Path) -> list[str]:
    ra, rb = _records(a), _records(b)
    sa, sb = [r["step"] for r in ra], [r["step"] for r in rb]
    diffs = []
    if sa != sb:
        ca, cb = Counter(sa), Counter(sb)
        dup = sorted(s for s in cb if cb[s] > ca.get(s, 0))
        missing = sorted(s for s in ca if ca[s] > cb.get(s, 0))
        parts = [f"{len(rb)} records vs {len(ra)}"]
        if dup:
            parts.append(f"steps duplicated: {_span(dup)}")
        if missing:
            parts.append(f"steps missing: {_span(missing)}")
        parts.append(f"logged steps {_runs(sb)}")
        diffs.append("metrics.jsonl " + ", ".join(parts))
        return diffs

    def kept(record: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v for k, v in record.items() if not WALL_CLOCK_KEYS.search(k) and k not in RUN_DESCRIPTION_KEYS
        }

    bad = [
        (x["step"], sorted(set(kept(x).items()) ^ set(kept(y).items()))) for x, y in zip(ra, rb, strict=True)
    ]
    bad = [(step, d) for step, d in bad if d]
    if bad:
        keys = sorted({k for _, d in bad for k, _ in d})
        diffs.append(f"metrics differ at steps {_span([s for s, _ in bad])} ({', '.join(keys[:5])})")
    return diffs


def compare_generate(a: Path, b: Path) -> list[str]:
    ra = (a / "out.jsonl").read_text().splitlines()
    rb = (b / "out.jsonl").read_text().splitlines()
    if ra == rb:
        return []
    ca, cb = Counter(ra), Counter(rb)
    lost = sum((ca - cb).values())
    extra = sum((cb - ca).values())
    dup = sum(n - 1 for n in cb.values() if n > 1)
    if not lost and not extra:
        return [f"same records, different order ({len(rb)} records)"]
    return [f"{len(rb)} records vs {len(ra)}: {lost} lost, {extra} not in A, {dup} duplicated"]


def leftovers(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*.tmp"))


def _runs(steps: list[int]) -> str:
    """`[0, 1, 2, 3, 0, 4, 5]` as `0-3,0,4-5`: where a sequence of steps restarts or repeats."""
    runs: list[list[int]] = []
    for step in steps:
        if runs and step == runs[-1][1] + 1:
            runs[-1][1] = step
        else:
            runs.append([step, step])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in runs)


def _span(steps: list[int]) -> str:
    return f"{steps[0]}..{steps[-1]} ({len(steps)})" if len(steps) > 3 else str(steps)


# --- main -----------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_prompts(path: Path) -> None:
    from selftaught.data.catalog import load_records
    from selftaught.data.sources import write_jsonl

    write_jsonl(path, load_records("world:prompts", num=NUM_PROMPTS, levels=[1, 2, 3], seed=0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=3, help="SIGKILL points per command (default: 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commands", default=",".join(c.name for c in COMMANDS))
    parser.add_argument("--no-sigint", action="store_true", help="skip the SIGINT point")
    parser.add_argument(
        "--no-pre-ckpt", action="store_true", help="skip the kill before the first checkpoint"
    )
    parser.add_argument("--keep", default=None, help="keep the run directories under this directory")
    args = parser.parse_args()
    names = args.commands.split(",")
    unknown = set(names) - {c.name for c in COMMANDS}
    if unknown:
        parser.error(f"unknown commands {sorted(unknown)}; choose from {[c.name for c in COMMANDS]}")

    print(f"machine: {machine()}; load average at start: {load()}")
    print(f"points per command: {args.points} SIGKILL, seed {args.seed}; every process OMP_NUM_THREADS=1\n")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="kill9-"))
    work.mkdir(parents=True, exist_ok=True)
    prompts = work / "prompts.jsonl"
    write_prompts(prompts)
    rng = random.Random(args.seed)
    rows: list[Row] = []
    started = time.monotonic()
    for command in (c for c in COMMANDS if c.name in names):
        print(f"## {command.name}: {command.shown()}", flush=True)
        a = work / f"{command.name}-A"
        shutil.rmtree(a, ignore_errors=True)
        timeline = run_straight(command, a, prompts)
        first = min(timeline.complete.values()) if timeline.complete else float("nan")
        print(
            f"   uninterrupted: {timeline.seconds:.1f}s; work began at {timeline.started or 0:.2f}s, first "
            f"checkpoint at {first:.2f}s, final output at {timeline.final:.2f}s; checkpoints seen "
            f"{_span(sorted(timeline.complete))}",
            flush=True,
        )
        for i, point in enumerate(
            plan_points(command, timeline, args.points, rng, not args.no_sigint, not args.no_pre_ckpt)
        ):
            b = work / f"{command.name}-B{i}"
            shutil.rmtree(b, ignore_errors=True)
            killed, hit = kill_at(command, point, b, prompts)
            said, resumed = resume(command, b, prompts)
            if not resumed:
                result, equal = "FAILED TO RESUME", False
            else:
                diffs = (
                    compare_train(a, b, command.weights)
                    if command.kind == "train"
                    else compare_generate(a, b)
                )
                equal = not diffs
                result = "equal" if equal else "NOT EQUAL: " + "; ".join(diffs)
                left = leftovers(b)
                if left:
                    result += f" [left behind: {', '.join(left[:3])}]"
            if not hit:
                result += " [not a kill point: the run had finished]"
            row = Row(
                command.name, point.describe(command.kind), point.signal, killed, said, result, equal, resumed
            )
            rows.append(row)
            print(f"   {i + 1}. SIG{row.signal} {point.mode} ({row.point})", flush=True)
            print(
                f"      killed: {row.killed}\n      resume: {row.resume}\n      result: {row.result}",
                flush=True,
            )
            if not args.keep:
                shutil.rmtree(b, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(a, ignore_errors=True)
        print(flush=True)

    print("| command | signal | kill point | state when killed | resume said | result |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.command} | {r.signal} | {r.point} | {r.killed} | {r.resume} | {r.result} |")
    for label, subset in (
        ("SIGKILL", [r for r in rows if r.signal == "KILL"]),
        ("SIGINT", [r for r in rows if r.signal == "INT"]),
        ("all", rows),
    ):
        equal = sum(r.equal for r in subset)
        failed = sum(not r.resumed for r in subset)
        print(
            f"{label}: {len(subset)} kill points: {equal} equal, {len(subset) - equal - failed} differ, "
            f"{failed} failed to resume"
        )
    print(f"\nwall time {time.monotonic() - started:.0f}s; load average at end: {load()}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
