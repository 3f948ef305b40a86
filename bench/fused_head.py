"""The fused log-prob head against the plain path: forward + backward of `token_logps`, time and peak RSS.

Each run is its own process (so each peak RSS is its own): the model is loaded, one batch of GSM8K
train text is cut into rows of `--length` tokens, the second half of each row is the "completion"
(`loss_mask`), and `token_logps(...)` -> masked mean -> `.backward()` (full fine-tuning: every
weight gets a gradient) runs once to warm up and then `--steps` times, timed (wall and CPU seconds,
medians). The contenders alternate over `--repeats` rounds (plain, fused-all, fused, plain, ...),
so a shared machine's load falls on all of them; CPU seconds are the steadier figure there.

    plain      `fused=False`: model(...).logits [B, T, V], then selective_log_softmax
    fused-all  the fused head on every position (no loss_mask): tiling alone
    fused      the fused head on the completion positions only (what the recipes now do)

Peak RSS is sampled every 5 ms during the timed steps (`step peak`); `+step` is that peak above
the RSS just before them (model loaded, warm-up done, its gradients freed). The loss (mean NLL of
the completion) and the gradient norm are printed for each, so the paths can be seen to agree.

    python bench/fused_head.py --model gemma-3-270m --batch-size 2 --length 256 --threads 1
    python bench/fused_head.py --model tiny-s --batch-size 2 --length 256 --threads 1 --steps 20
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
from isolated import PeakRSS
from workloads import GSM8K_TRAIN

from selftaught.losses.logps import token_logps

CONTENDERS = ("plain", "fused-all", "fused")


def load(model_name: str) -> tuple[Any, Any]:
    """(model in train mode, tokenizer or None): `tiny-<size>` is a random tiny Llama (V = 320)."""
    if model_name.startswith("tiny-"):
        from selftaught.models.tiny import build_tiny_llama

        model = build_tiny_llama(
            model_name.removeprefix("tiny-"), 320, bos_token_id=0, eos_token_id=1, pad_token_id=2
        )
        return model.train(), None
    from selftaught.models.io import load_model

    model, tokenizer = load_model(model_name)
    return model.train(), tokenizer


def gsm8k_rows(tokenizer: Any, vocab_size: int, batch_size: int, length: int) -> torch.Tensor:
    """[B, length] token ids: GSM8K train question + answer texts, EOS-separated, cut into rows (random
    ids in the tiny vocabulary when there is no tokenizer)."""
    if tokenizer is None:
        return torch.randint(3, vocab_size, (batch_size, length), generator=torch.Generator().manual_seed(0))
    stream: list[int] = []
    with GSM8K_TRAIN.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            stream += tokenizer(record["question"] + "\n" + record["answer"])["input_ids"] + [
                tokenizer.eos_token_id
            ]
            if len(stream) >= batch_size * length:
                break
    return torch.tensor(stream[: batch_size * length]).view(batch_size, length)


def child(args: argparse.Namespace) -> None:
    """One run of one contender: a warm-up and `--steps` timed forward/backward passes (their median);
    one JSON line on stdout."""
    torch.set_num_threads(args.threads)
    harness.setup_torch(args.threads)
    model, tokenizer = load(args.model)
    input_ids = gsm8k_rows(tokenizer, model.config.vocab_size, args.batch_size, args.length)
    attention_mask = torch.ones_like(input_ids)
    loss_mask = torch.zeros_like(input_ids, dtype=torch.bool)
    loss_mask[:, args.length // 2 :] = True
    fused = args.child != "plain"
    mask = None if args.child == "fused-all" else loss_mask

    def step() -> float:
        model.zero_grad(set_to_none=True)
        logps = token_logps(model, input_ids, attention_mask, loss_mask=mask, fused=fused)
        loss = -(logps * loss_mask).sum() / loss_mask.sum()
        loss.backward()
        return float(loss)

    loss = step()  # warm-up
    model.zero_grad(set_to_none=True)
    before = psutil.Process().memory_info().rss
    times, cpu_times = [], []
    with PeakRSS() as rss:
        for _ in range(args.steps):
            start, cpu_start = time.perf_counter(), time.process_time()
            loss = step()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    seconds, cpu_seconds = statistics.median(times), statistics.median(cpu_times)
    grad_norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "peak": rss.peak,
                "before": before,
                "loss": loss,
                "grad_norm": grad_norm,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="gemma-3-270m", help="a load_model spec, or tiny-xs/s/m/l")
    parser.add_argument("--batch-size", type=harness.at_least(1), default=2)
    parser.add_argument("--length", type=harness.at_least(4), default=256)
    parser.add_argument("--repeats", type=harness.at_least(1), default=2, help="rounds of runs")
    parser.add_argument("--steps", type=harness.at_least(1), default=3, help="timed steps per run (median)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help=f"comma-separated: {CONTENDERS}")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    torch.set_num_threads(args.threads)
    harness.print_machine(args.threads)
    print(
        f"{args.model}: batch {args.batch_size} x {args.length} tokens, completion = second half, "
        f"fwd + bwd of token_logps (full fine-tuning); {args.repeats} rounds of one process per contender "
        f"(1 warm-up + {args.steps} timed steps, median)"
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
                f"  repeat {repeat} {name:<10} {run['seconds']:7.2f} s (cpu {run['cpu_seconds']:.2f} s), step peak RSS {run['peak'] / 2**30:.2f} GiB "
                f"(+step {(run['peak'] - run['before']) / 2**30:.2f}), loss {run['loss']:.6f}, "
                f"grad norm {run['grad_norm']:.6f}, load {harness.load_average():.1f}",
                flush=True,
            )
    summary = {name: summarize(runs[name]) for name in names}
    print(f"{'contender':<11}{'wall s':>8}{'cpu s':>8}{'peak GiB':>9}{'+step GiB':>10}   wall s of each run")
    for name, (seconds, cpu_seconds, peak, extra) in summary.items():
        print(
            f"{name:<11}{seconds:>8.2f}{cpu_seconds:>8.2f}{peak / 2**30:>9.2f}{extra / 2**30:>10.2f}   "
            + " ".join(f"{run['seconds']:.2f}" for run in runs[name])
        )
    if "plain" in summary:
        base = summary["plain"]
        for name, (seconds, cpu_seconds, peak, extra) in summary.items():
            if name != "plain":
                print(
                    f"ratio {name} / plain: wall {seconds / base[0]:.2f}x, cpu {cpu_seconds / base[1]:.2f}x, "
                    f"step peak RSS {peak / base[2]:.2f}x, +step {extra / max(1, base[3]):.2f}x"
                )


def summarize(runs: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    """(median wall s, median cpu s, largest step peak RSS, largest peak above the pre-step RSS) of a
    contender's runs."""
    return (
        statistics.median(run["seconds"] for run in runs),
        statistics.median(run["cpu_seconds"] for run in runs),
        max(run["peak"] for run in runs),
        max(run["peak"] - run["before"] for run in runs),
    )


if __name__ == "__main__":
    main()
