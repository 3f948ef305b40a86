"""One training step of Gemma 3 270M in each `precision`: fp32, bf16-autocast, bf16 (issue 18).

The shipped step: `selftaught.train.step.train_step` with the SFT loss (`sft_loss_fn`: the fused
log-prob head on the completion positions), gradient clipping and AdamW (`build_optimizer`: fused
AdamW; `MasterWeightAdamW` for bf16), in the precision's `forward_context`, on one batch of GSM8K
train text cut into rows of `--length` tokens whose second half is the completion. Full fine-tuning
(every weight trains) unless `--lora R`. Each contender runs in its own process (so each peak RSS is
its own): load, one warm-up step, then `--steps` timed steps (medians). The contenders alternate over
`--repeats` rounds (fp32, bf16-autocast, bf16, fp32, ...), so a shared machine's load falls on all.

Printed per run: the step's wall and CPU seconds, the optimizer's share of it (`opt s`: clip excluded),
peak RSS during the timed steps, and the loss of the last step (every run starts from the same
weights and data, so the first-step losses agree to the precision's tolerance; later steps differ by
the updates). The machine line gives the CPU model, its native bf16 instructions (AMX / AVX512-BF16)
and the measured fp32 and bf16 matmul peaks, so ratios can be compared across machines.

    python bench/precision.py --model gemma-3-270m --batch-size 4 --length 256 --threads 2
    python bench/precision.py --model gemma-3-270m --lora 8 --threads 2
    python bench/precision.py --model tiny-s --batch-size 8 --length 128 --steps 10 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import harness
import psutil
import torch
from fused_head import gsm8k_rows, load
from isolated import PeakRSS

from selftaught.models.policy import LoraConfig, add_lora
from selftaught.train.batching import collate
from selftaught.train.optim import OptimConfig, build_optimizer, build_scheduler
from selftaught.train.precision import Precision, cast_for_training
from selftaught.train.step import train_step
from selftaught.train.supervised import sft_loss_fn

CONTENDERS = tuple(str(p) for p in Precision)


def child(args: argparse.Namespace) -> None:
    """One run of one precision: a warm-up step and `--steps` timed `train_step`s; one JSON line."""
    harness.setup_torch(args.threads)
    precision = Precision(args.child)
    model, tokenizer = load(args.model)
    model = cast_for_training(model, precision)
    if args.lora:
        model = add_lora(model, LoraConfig(r=args.lora, alpha=2 * args.lora))
    rows = gsm8k_rows(tokenizer, model.config.vocab_size, args.batch_size, args.length).tolist()
    half = args.length // 2
    batch = collate([(ids, [False] * half + [True] * (len(ids) - half)) for ids in rows], pad_id=0)
    cfg = OptimConfig(lr=1e-5)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, args.steps + 1)
    optimizer_seconds: list[float] = []
    real_step = optimizer.step

    def timed_optimizer_step(*a: Any, **k: Any) -> Any:
        start = time.perf_counter()
        out = real_step(*a, **k)
        optimizer_seconds.append(time.perf_counter() - start)
        return out

    optimizer.step = timed_optimizer_step  # type: ignore[method-assign]

    def step() -> dict[str, float]:
        return train_step(
            model, [batch], sft_loss_fn, optimizer, scheduler, max_grad_norm=1.0, precision=precision
        )

    first = step()  # warm-up: the same loss in every precision (same weights, same batch)
    before = psutil.Process().memory_info().rss
    times, cpu_times = [], []
    with PeakRSS() as rss:
        for _ in range(args.steps):
            cpu_start = time.process_time()
            metrics = step()
            times.append(metrics["seconds"])
            cpu_times.append(time.process_time() - cpu_start)
    result = {
        "seconds": statistics.median(times),
        "cpu_seconds": statistics.median(cpu_times),
        "optimizer_seconds": statistics.median(optimizer_seconds[1:]),
        "peak": rss.peak,
        "before": before,
        "first_loss": first["loss"],
        "loss": metrics["loss"],
        "optimizer": type(optimizer).__name__,
    }
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="gemma-3-270m", help="a load_model spec, or tiny-xs/s/m/l")
    parser.add_argument("--batch-size", type=harness.at_least(1), default=4)
    parser.add_argument("--length", type=harness.at_least(4), default=256)
    parser.add_argument("--lora", type=int, default=0, help="LoRA rank (0: full fine-tuning)")
    parser.add_argument("--repeats", type=harness.at_least(1), default=2, help="rounds of runs")
    parser.add_argument("--steps", type=harness.at_least(1), default=2, help="timed steps per run (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma-separated: {CONTENDERS}")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    torch.set_num_threads(args.threads)
    harness.print_machine(args.threads)
    tuning = f"LoRA r={args.lora}" if args.lora else "full fine-tuning"
    print(
        f"{args.model}: batch {args.batch_size} x {args.length} tokens (completion = second half), one "
        f"train_step (SFT loss, fused head, clip, AdamW), {tuning}; {args.repeats} rounds of one process "
        f"per precision (1 warm-up + {args.steps} timed steps, median)"
    )
    names = args.contenders.split(",")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for repeat in range(args.repeats):
        for name in names:
            command = [sys.executable, __file__, *sys.argv[1:], "--child", name]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            run = json.loads(out.strip().splitlines()[-1])
            runs[name].append(run)
            print(
                f"  repeat {repeat} {name:<14}{run['seconds']:7.2f} s (cpu {run['cpu_seconds']:.2f} s, "
                f"optimizer {run['optimizer_seconds']:.2f} s, {run['optimizer']}), step peak RSS "
                f"{run['peak'] / 2**30:.2f} GiB, first loss {run['first_loss']:.5f}, "
                f"load {harness.load_average():.1f}",
                flush=True,
            )
    print(
        f"{'precision':<15}{'wall s':>8}{'cpu s':>8}{'opt s':>7}{'peak GiB':>9}{'1st loss':>10}   wall s of each run"
    )
    summary = {}
    for name in names:
        seconds = statistics.median(run["seconds"] for run in runs[name])
        cpu = statistics.median(run["cpu_seconds"] for run in runs[name])
        opt = statistics.median(run["optimizer_seconds"] for run in runs[name])
        peak = max(run["peak"] for run in runs[name])
        summary[name] = (seconds, cpu, peak)
        print(
            f"{name:<15}{seconds:>8.2f}{cpu:>8.2f}{opt:>7.2f}{peak / 2**30:>9.2f}{runs[name][0]['first_loss']:>10.5f}   "
            + " ".join(f"{run['seconds']:.2f}" for run in runs[name])
        )
    if "fp32" in summary:
        base = summary["fp32"]
        for name, (seconds, cpu, peak) in summary.items():
            if name != "fp32":
                print(
                    f"ratio {name} / fp32: wall {seconds / base[0]:.2f}x, cpu {cpu / base[1]:.2f}x, "
                    f"peak RSS {peak / base[2]:.2f}x"
                )


if __name__ == "__main__":
    main()
