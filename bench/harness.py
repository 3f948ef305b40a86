"""What every benchmark shares: the machine (threads, CPU, matmul peaks), the command line, the
alternating runner, and the throughput table of the SFT and DPO benchmarks.

Throughput is counted the same way for every contender: real (non-pad) tokens of the sequences a
step trains on, over the wall time of steps 2..N (step 1 pays one-off allocations and is excluded).
Achieved FLOP/s is `6 * params * tokens / s`: no attention-score term, no reference forward.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

import isolated
import torch
from timing import StepClock
from workloads import MAX_LENGTH, SHAPES

from selftaught.train.precision import Precision


class Timed(Protocol):
    """A run result: `run_alternating` records the load average in it."""

    load: float


R = TypeVar("R", bound=Timed)

# ----------------------------------------------------------------------------------------------
# The machine


def setup_torch(num_threads: int) -> None:
    """Thread count for the process; silence the progress bars and warnings of datasets, transformers
    and TRL (our recipes' progress bars are swallowed by `timing.recipe_clock`)."""
    import datasets
    import transformers

    torch.set_num_threads(num_threads)
    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def load_average() -> float:
    """One-minute load average; above the thread count, other processes share the cores."""
    return os.getloadavg()[0]


def cpu_model() -> str:
    """The CPU's model name (`/proc/cpuinfo`), or what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


BF16_ISA_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16")
"""`/proc/cpuinfo` flags of native bf16 matmul support on x86 (AMX tiles, AVX512-BF16 dot products)."""


def bf16_isa() -> str:
    """The native bf16 instructions the CPU has (`BF16_ISA_FLAGS`), or `none` (then bf16 matmuls
    are emulated and slower than fp32)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        flags = []
    present = [flag for flag in BF16_ISA_FLAGS if flag in flags]
    return ", ".join(present) or "none"


def matmul_peak_gflops(dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of a `size x size @ size x size` matmul (2 size^3 FLOPs) in `dtype` over `repeats` runs."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm up the BLAS thread pool
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def print_machine(threads: int, precision: str = "fp32") -> float:
    """Print the CPU model, the thread count and the fp32 / bf16 matmul peaks; returns the peak that
    the FLOP/s columns compare with: fp32's, or bf16's when `precision` (ours) is a bf16 one."""
    fp32, bf16 = matmul_peak_gflops(torch.float32), matmul_peak_gflops(torch.bfloat16)
    print(
        f"{cpu_model()} (bf16 ISA: {bf16_isa()}), {threads} threads: matmul peak fp32 {fp32:.1f} GFLOP/s, "
        f"bf16 {bf16:.1f} GFLOP/s, load {load_average():.1f}"
    )
    return fp32 if precision == "fp32" else bf16


# ----------------------------------------------------------------------------------------------
# Command line


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum`."""

    def parse(text: str) -> int:
        if int(text) < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return int(text)

    return parse


def arg_parser(
    doc: str, batch_help: str, batch_size: int, lr: float, contenders: str
) -> argparse.ArgumentParser:
    """The options of the SFT and DPO benchmarks."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="xs", choices=SHAPES)
    parser.add_argument("--steps", type=at_least(3), default=50, help="the first step is not timed")
    parser.add_argument("--batch-size", type=at_least(1), default=batch_size, help=batch_help)
    parser.add_argument("--repeats", type=at_least(1), default=3)
    parser.add_argument("--lr", type=float, default=lr, help="constant learning rate (both sides)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="model init, data and its order")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="ours: micro_batch_tokens, the padded-token budget of a micro-batch (default: one)",
    )
    parser.add_argument(
        "--foreach-adamw",
        action="store_true",
        help="ours: the for-each AdamW instead of build_optimizer's fused default (TRL: fused)",
    )
    parser.add_argument(
        "--contenders", default="ours,trl", help=f"comma-separated, in run order: {contenders}"
    )
    parser.add_argument("--profile", action="store_true", help="profile one run of each contender instead")
    model = add_model_options(parser)
    model.add_argument("--max-length", type=at_least(8), default=MAX_LENGTH, help="both sides' max length")
    return parser


def add_model_options(parser: argparse.ArgumentParser) -> Any:
    """`--model` (a real model, GSM8K data, each contender in its own process), `--lora`, `--precision`
    and the hidden child options; returns the option group."""
    model = parser.add_argument_group("a real model (each contender in its own process, for its peak RSS)")
    model.add_argument(
        "--model", default=None, help="a load_model spec (gemma-3-270m): GSM8K train data instead of --shape"
    )
    model.add_argument("--lora", type=int, default=0, help="LoRA rank on both sides (0: full fine-tuning)")
    model.add_argument(
        "--precision",
        default="fp32",
        choices=[str(p) for p in Precision],
        help="ours: the recipe's precision; TRL: bf16=True (its autocast default) unless fp32",
    )
    model.add_argument(
        "--activation-checkpointing",
        type=int,
        default=0,
        metavar="N",
        help="ours: recompute every N-th decoder layer in the backward (the recipes' activation_checkpointing; "
        "0: off); TRL's own is the `trl-gc` contender",
    )
    isolated.add_child_options(parser)
    return model


def tuning(args: argparse.Namespace) -> str:
    """What trains and in which number format, for the header line."""
    weights = f"LoRA r={args.lora}" if args.lora else "full fine-tuning"
    trl = "fp32" if args.precision == "fp32" else "bf16=True (autocast)"
    ours = f"precision={args.precision}" + (
        f", activation_checkpointing={args.activation_checkpointing}" if args.activation_checkpointing else ""
    )
    return f"{weights}, ours {ours}, TRL {trl}"


def run_contenders(
    args: argparse.Namespace, runners: dict[str, Callable[[], R]], describe: Any = None
) -> list[R]:
    """In a child (`--child NAME`): run that contender and hand its result back. Otherwise run the
    contenders alternating (`run_alternating`), each in its own process with `--model`, in this one
    without."""
    if args.child:
        isolated.child(runners[args.child], args.child_out)
        return []
    if args.model:
        runners = {name: partial(isolated.in_child, name) for name in runners}
    repeats = 1 if getattr(args, "profile", False) else args.repeats
    kwargs = {} if describe is None else {"describe": describe}
    return run_alternating(runners, args.contenders.split(","), repeats, **kwargs)


# ----------------------------------------------------------------------------------------------
# Runs and the throughput table


def run_alternating(
    runners: dict[str, Callable[[], R]],
    order: list[str],
    repeats: int,
    describe: Callable[[Any], str] = lambda r: f"{r.tokens_per_s:,.0f} tok/s",
) -> list[R]:
    """Run the contenders in `order`, `repeats` times over (ours, TRL, ours, TRL, ...); print each
    run's `describe(result)` and the load average (the larger of before and after the run)."""
    unknown = [name for name in order if name not in runners]
    if unknown:
        raise ValueError(f"--contenders: unknown {unknown}; choose from {list(runners)}")
    results = []
    for repeat in range(repeats):
        for name in order:
            load_before = load_average()
            result = runners[name]()
            result.load = max(result.load, load_before)
            results.append(result)
            print(f"  repeat {repeat} {name}: {describe(result)} (load {result.load:.1f})", flush=True)
    return results


@dataclass
class RunResult:
    """One timed training run of one contender."""

    name: str
    clock: StepClock
    setup_seconds: float
    """Untimed preparation: ours, what `run` does before its first step (model loading, tokenisation,
    optimizer); TRL, its trainer construction (dataset preprocessing)."""
    extra_seconds: float
    """Training work outside the step loop (a reference pass before training); a pro-rata share of it
    (timed steps / all steps) counts in `tokens_per_s`."""
    mean_loss: float
    """Training loss averaged over all steps."""
    final_loss: float
    """Loss of the trained model on held-out data, computed by the same function for every contender."""
    load: float
    """One-minute load average, the larger of before and after the run."""
    first_loss: float = float("nan")
    """The first step's training loss: same weights, same batch on every side."""
    peak_rss: int = 0
    """Bytes: the whole run's peak RSS, when the run had a process of its own (`isolated`)."""
    train_peak_rss: int = 0
    """Bytes: the peak RSS from the start of the training loop, when the run had a process of its own."""

    @property
    def loop_tokens_per_s(self) -> float:
        return self.clock.tokens / self.clock.seconds

    @property
    def tokens_per_s(self) -> float:
        share = self.extra_seconds * (self.clock.num_steps - 1) / self.clock.num_steps
        return self.clock.tokens / (self.clock.seconds + share)


def print_table(results: Sequence[RunResult], params: int, peak_gflops: float, baseline: str) -> None:
    """Per contender: the median over repeats of tokens/s (and of the loop alone), the upper quartile
    of single-step tokens/s over all repeats (robust to other processes' bursts on a shared machine),
    achieved FLOP/s, losses; then every contender's ratios to `baseline`."""
    names = list(dict.fromkeys(r.name for r in results))
    runs = {n: [r for r in results if r.name == n] for n in names}
    median = {n: statistics.median(r.tokens_per_s for r in runs[n]) for n in names}
    fast = {n: upper_quartile([x for r in runs[n] for x in r.clock.step_tokens_per_s]) for n in names}
    peak = {n: max(r.peak_rss for r in runs[n]) / 2**30 for n in names}
    train_peak = {n: max(r.train_peak_rss for r in runs[n]) / 2**30 for n in names}
    print(
        f"{'contender':<16}{'tok/s':>9}{'loop':>9}{'q3 step':>9}{'GFLOP/s':>8}{'of peak':>8}{'setup s':>8}"
        f"{'extra s':>8}{'1st loss':>9}{'mean loss':>10}{'held-out':>9}{'peak GiB':>9}{'train':>6}{'load':>6}"
        "   tok/s of each run"
    )
    for name in names:
        loop = statistics.median(r.loop_tokens_per_s for r in runs[name])
        gflops = 6 * params * median[name] / 1e9
        last = runs[name][-1]
        print(
            f"{name:<16}{median[name]:>9,.0f}{loop:>9,.0f}{fast[name]:>9,.0f}{gflops:>8.2f}{gflops / peak_gflops:>8.1%}"
            f"{last.setup_seconds:>8.2f}{last.extra_seconds:>8.2f}{last.first_loss:>9.4f}{last.mean_loss:>10.4f}"
            f"{last.final_loss:>9.4f}{peak[name]:>9.2f}{train_peak[name]:>6.2f}{max(r.load for r in runs[name]):>6.1f}   "
            + " ".join(f"{r.tokens_per_s:,.0f}" for r in runs[name])
        )
    for name in names:
        if baseline in names and name != baseline:
            memory = (
                f", {peak[name] / peak[baseline]:.2f}x peak RSS ({train_peak[name] / train_peak[baseline]:.2f}x "
                "while training)"
                if peak[baseline]
                else ""
            )
            print(
                f"ratio {name} / {baseline}: {median[name] / median[baseline]:.2f}x tok/s, "
                f"{fast[name] / fast[baseline]:.2f}x q3 step tok/s{memory}; first-step loss "
                f"{runs[name][0].first_loss:.5f} vs {runs[baseline][0].first_loss:.5f} "
                f"({runs[name][0].first_loss / runs[baseline][0].first_loss - 1:+.1e} relative)"
            )


def upper_quartile(values: Sequence[float]) -> float:
    """The third quartile (the value itself when there is only one, e.g. `--steps 3`)."""
    return statistics.quantiles(values, n=4)[2] if len(values) > 1 else values[0]
