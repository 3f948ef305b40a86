"""Sampling throughput on a real model: `HFEngine` against `model.generate` and vLLM's CPU engine (issue 18).

The same prompts (GSM8K test questions as raw text, `Question: ...\\nAnswer:`), `--samples` samples per
prompt at T = 1 (top-p 1, no top-k), at most `--max-new-tokens` tokens each, stopping at EOS, at
batch sizes `--batches` (prompts per call; a call samples batch x samples sequences):

- `hf-engine`: `selftaught.engines.hf.HFEngine.generate`, what every recipe and `selftaught generate`
  run (sorted micro-batches, its own sampling loop over a KV cache);
- `generate`: transformers' `model.generate(do_sample=True, num_return_sequences=samples)` on the
  left-padded batch, the way TRL's trainers sample on a CPU;
- `vllm`: vLLM's offline `LLM.generate` from `.venv-vllm` (`make vllm-venv`; its CPU build), in a
  child process, timed after the engine starts (startup is reported apart).

Generated tokens are counted the same way for all: tokens up to and including EOS (no pads), summed
over every sample; tokens/s = that count over the call's wall time. `hf-engine` and `generate` share
one loaded model and alternate over `--repeats` rounds (medians reported), so a shared machine's load
falls on both. The machine line gives the CPU, its bf16 instructions and matmul peaks.

    python bench/generation.py --model gemma-3-270m --batches 1 8 32 --samples 4 --threads 2
    python bench/generation.py --model gemma-3-270m --batches 1 8 --no-vllm   # without the vLLM child
    python bench/generation.py --model gemma-3-270m --no-generate            # hf-engine and vLLM only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import harness
import torch

from selftaught.engines.base import SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.types import Prompt

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
GSM8K_TEST = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


def prompt_texts(num: int) -> list[str]:
    """The first `num` GSM8K test questions as raw-text prompts."""
    lines = GSM8K_TEST.read_text().splitlines()[:num]
    return [f"Question: {json.loads(line)['question']}\nAnswer:" for line in lines]


def time_hf_engine(
    engine: HFEngine, texts: list[str], samples: int, max_new_tokens: int
) -> tuple[float, int]:
    prompts = [Prompt(id=str(i), messages=[], text=text) for i, text in enumerate(texts)]
    sampling = SamplingParams(temperature=1.0, n=samples, max_new_tokens=max_new_tokens, seed=0)
    start = time.perf_counter()
    completions = engine.generate(prompts, sampling)
    seconds = time.perf_counter() - start
    return seconds, sum(len(c.token_ids) for row in completions for c in row)


def time_generate(
    model: Any, tokenizer: Any, texts: list[str], samples: int, max_new_tokens: int
) -> tuple[float, int]:
    tokenizer.padding_side = "left"
    batch = tokenizer(
        [tokenizer.bos_token + t for t in texts], return_tensors="pt", padding=True, add_special_tokens=False
    )
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            **batch,
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            num_return_sequences=samples,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
    seconds = time.perf_counter() - start
    new = out[:, batch["input_ids"].shape[1] :]
    eos = tokenizer.eos_token_id
    tokens = 0
    for row in new.tolist():
        tokens += row.index(eos) + 1 if eos in row else len([t for t in row if t != tokenizer.pad_token_id])
    return seconds, tokens


VLLM_CHILD = """
import json, sys, time
from vllm import LLM, SamplingParams
args = json.loads(sys.argv[1])
start = time.perf_counter()
llm = LLM(model=args["model"], dtype="float32", seed=0, max_model_len=512, gpu_memory_utilization=0.3)
startup = time.perf_counter() - start
rows = []
for batch in args["batches"]:
    texts = args["texts"][:batch]
    params = SamplingParams(n=args["samples"], temperature=1.0, top_p=1.0, max_tokens=args["max_new_tokens"])
    llm.generate(texts[:1], params, use_tqdm=False)  # warm-up
    for _ in range(args["repeats"]):
        start = time.perf_counter()
        outs = llm.generate(texts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        tokens = sum(len(o.token_ids) for out in outs for o in out.outputs)
        rows.append({"batch": batch, "seconds": seconds, "tokens": tokens})
print("RESULT " + json.dumps({"startup": startup, "rows": rows}))
"""


def run_vllm(model_dir: str, texts: list[str], args: argparse.Namespace) -> dict[str, Any] | None:
    """vLLM's rows from a child in `.venv-vllm`, or None (printed why) when it cannot run."""
    if not VLLM_PYTHON.exists():
        print(f"vllm: {VLLM_PYTHON} is missing (make vllm-venv); skipped", flush=True)
        return None
    payload = {
        "model": model_dir,
        "texts": texts,
        "batches": args.batches,
        "samples": args.samples,
        "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
    }
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    result = subprocess.run(
        [str(VLLM_PYTHON), "-c", VLLM_CHILD, json.dumps(payload)], capture_output=True, text=True, env=env
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("RESULT ")), None)
    if result.returncode or line is None:
        print(f"vllm: the child failed (exit {result.returncode}): {result.stderr[-6000:]}", flush=True)
        return None
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-vllm", action="store_true")
    parser.add_argument(
        "--no-generate",
        action="store_true",
        help="skip model.generate (e.g. to time vLLM against hf-engine alone)",
    )
    args = parser.parse_args()
    harness.setup_torch(args.threads)
    harness.print_machine(args.threads)

    import selftaught.recipes  # noqa: F401  (registers the tiny-world aliases)
    from selftaught.models.io import load_model, resolve_model_source

    model, tokenizer = load_model(args.model)
    engine = HFEngine(model, tokenizer)
    texts = prompt_texts(max(args.batches))
    time_hf_engine(engine, texts[:1], 1, 4)  # warm-up (allocations, kernels)
    results: dict[str, dict[int, list[tuple[float, int]]]] = {"hf-engine": {}}
    if not args.no_generate:
        results["generate"] = {}
    loads = [harness.load_average()]
    for batch in args.batches:
        for _ in range(args.repeats):
            results["hf-engine"].setdefault(batch, []).append(
                time_hf_engine(engine, texts[:batch], args.samples, args.max_new_tokens)
            )
            if "generate" in results:
                results["generate"].setdefault(batch, []).append(
                    time_generate(model, tokenizer, texts[:batch], args.samples, args.max_new_tokens)
                )
            loads.append(harness.load_average())
            print(
                f"batch {batch}: " + ", ".join(f"{k} {v[batch][-1]}" for k, v in results.items()),
                f"(load average {loads[-1]:.1f})",
                flush=True,
            )
    vllm = None if args.no_vllm else run_vllm(str(resolve_model_source(args.model)), texts, args)
    if vllm is not None:
        results["vllm"] = {}
        for row in vllm["rows"]:
            results["vllm"].setdefault(row["batch"], []).append((row["seconds"], row["tokens"]))
        print(f"vllm startup {vllm['startup']:.1f} s (not counted)")
    print_table(results, args)
    print(f"load average while hf-engine (and generate) ran: {min(loads):.1f}-{max(loads):.1f}")


def print_table(results: dict[str, dict[int, list[tuple[float, int]]]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.model}, {args.samples} samples per prompt, <= {args.max_new_tokens} new tokens, T = 1; tokens/s (median)"
    )
    print("| batch | " + " | ".join(results) + " | hf-engine / generate | hf-engine / vllm |")
    print("|---" * (len(results) + 3) + "|")
    for batch in args.batches:
        rates = {
            name: statistics.median(t / s for s, t in runs[batch])
            for name, runs in results.items()
            if batch in runs
        }
        cells = [f"{rates[name]:.1f}" if name in rates else "-" for name in results]
        vs_generate = f"{rates['hf-engine'] / rates['generate']:.2f}x" if "generate" in rates else "-"
        vs_vllm = f"{rates['hf-engine'] / rates['vllm']:.2f}x" if "vllm" in rates else "-"
        print(f"| {batch} | " + " | ".join(cells) + f" | {vs_generate} | {vs_vllm} |")


if __name__ == "__main__":
    sys.exit(main())
