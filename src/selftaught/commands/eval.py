"""`selftaught eval`: accuracy with its standard error on a tiny-world split or a GSM8K-format file."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from selftaught.commands.common import (
    add_model_arg,
    add_sampling_args,
    check_out_file,
    hf_engine,
    require,
    sampling,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="accuracy on a tiny-world split or a GSM8K-format JSONL",
        description="Accuracy (mean over problems of the per-problem mean over --n samples) "
        "with its standard error, and a per-level table for the tiny world.",
    )
    add_model_arg(p)
    p.add_argument(
        "--data",
        default="world:test",
        help="world:<split> (train/valid/test) or a GSM8K-format file (question, answer with ####)",
    )
    p.add_argument("--limit", type=int, default=None, help="GSM8K: only the first N problems")
    p.add_argument("--per-level", type=int, default=200, help="world: problems per level (default: 200)")
    p.add_argument("--levels", default="1,2,3", help="world: comma-separated levels (default: 1,2,3)")
    p.add_argument("--num-shots", type=int, default=8, help="GSM8K: few-shot exemplars (default: 8)")
    p.add_argument(
        "--out",
        default=None,
        help="also write the result (and completions) as JSON here (--harness lm-eval: lm-eval's "
        "--output_path, a directory of results and samples)",
    )
    p.add_argument(
        "--harness",
        choices=("selftaught", "lm-eval"),
        default="selftaught",
        help="lm-eval: run EleutherAI's lm-evaluation-harness (pip install 'selftaught[evals]') with "
        "the task configs in selftaught/evals/lm_eval_tasks, the same problems, prompts, greedy decoding "
        "and answer check; prints the lm_eval command it runs (default: selftaught)",
    )
    add_sampling_args(p, temperature=0.0, max_new_tokens=None)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    """Load the eval set (before the model, so a bad file fails fast), sample, print the table."""
    from selftaught.data.gsm8k import EXEMPLARS
    from selftaught.evals.accuracy import evaluate_accuracy
    from selftaught.evals.sets import load_eval_set

    require(args.limit is None or args.limit >= 1, "--limit", ">= 1", args.limit)
    require(args.per_level >= 1, "--per-level", ">= 1", args.per_level)
    shots = len(EXEMPLARS)
    require(0 <= args.num_shots <= shots, "--num-shots", f"between 0 and {shots}", args.num_shots)
    if args.harness == "lm-eval":
        return run_lm_eval(args)
    if args.out:
        check_out_file("--out", args.out)
    eval_set = load_eval_set(
        args.data,
        per_level=args.per_level,
        levels=parse_levels(args.levels),
        limit=args.limit,
        num_shots=args.num_shots,
        seed=args.seed,
    )
    if not eval_set.prompts:
        raise ValueError(f"--data {args.data} holds no problems; nothing to evaluate")
    params = sampling(args, eval_set.stop, eval_set.max_new_tokens)  # bad flags fail before the model load
    engine = hf_engine(args)
    result = evaluate_accuracy(engine, eval_set.prompts, eval_set.is_correct, params)
    print(
        f"model {args.model} on {args.data}: {result.num_problems} problems x {args.n} samples, "
        f"{result.seconds:.1f}s, mean completion {result.mean_completion_tokens:.1f} tokens"
    )
    print(result.table())
    if args.out:
        write_eval(args, eval_set.prompts, result)
    return 0


def lm_eval_command(args: argparse.Namespace, model: str, device: str) -> list[str]:
    """The `lm_eval run` command line that evaluates `model` (a directory or hub id) on `--data` as
    `selftaught eval` does: task `selftaught_world` or `selftaught_gsm8k` (selftaught/evals/lm_eval_tasks)."""
    from selftaught.evals.lm_eval_tasks import TASKS_DIR
    from selftaught.evals.sets import world_split

    for flag, value, default in (
        ("--n", args.n, 1),
        ("--temperature", args.temperature, 0.0),
        ("--top-p", args.top_p, 1.0),
        ("--max-new-tokens", args.max_new_tokens, None),
        ("--stop", args.stop, None),
    ):
        require(
            value == default,
            flag,
            "left at its default with --harness lm-eval (the task decodes greedily)",
            value,
        )
    if args.data.startswith("world:"):
        task = "selftaught_world"
        metadata = {
            "split": world_split(args.data),
            "per_level": args.per_level,
            "levels": parse_levels(args.levels),
            "seed": args.seed,
        }
        extra = ["--apply_chat_template"]
    else:
        require(
            Path(args.data).is_file(), "--data", "world:<split> or an existing GSM8K-format JSONL", args.data
        )
        task = "selftaught_gsm8k"
        metadata = {"data_files": str(Path(args.data).resolve())}
        extra = ["--num_fewshot", str(args.num_shots), *(["--limit", str(args.limit)] if args.limit else [])]
    if args.out:
        extra += ["--output_path", args.out, "--log_samples"]
    return [
        "lm_eval", "run", "--model", "hf", "--model_args", f"pretrained={model}", "--device", device,
        "--include_path", str(TASKS_DIR), "--tasks", task, "--batch_size", str(args.batch_size),
        "--metadata", json.dumps(metadata), *extra,
    ]  # fmt: skip


def run_lm_eval(args: argparse.Namespace) -> int:
    """`--harness lm-eval`: print and run the `lm_eval` command (offline: the model and data are local)."""
    import torch

    import selftaught.recipes  # noqa: F401  (registers the tiny-world alias)
    from selftaught.models.io import resolve_model_source

    try:
        import lm_eval  # noqa: F401
    except ImportError as err:
        raise ImportError("--harness lm-eval needs lm-eval: pip install 'selftaught[evals]'") from err
    model = str(resolve_model_source(args.model))
    command = lm_eval_command(args, model, "cuda" if torch.cuda.is_available() else "cpu")
    print(shlex.join(command), flush=True)
    env = {**os.environ}
    if Path(model).is_dir():
        env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    return subprocess.run([sys.executable, "-m", *command], env=env).returncode


def parse_levels(text: str) -> list[int]:
    """`--levels 1,2,3` as distinct integers >= 1; a ValueError naming the flag otherwise."""
    try:
        levels = [int(part) for part in text.split(",")]
    except ValueError:
        levels = []
    require(
        bool(levels) and len(set(levels)) == len(levels) and min(levels) >= 1,
        "--levels",
        "distinct comma-separated integers >= 1, e.g. 1,2,3",
        text,
    )
    return levels


def write_eval(args: argparse.Namespace, prompts: list[Any], result: Any) -> None:
    """The accuracy, its groups and every sample as JSON at `--out`."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": args.model,
        "data": args.data,
        "accuracy": result.accuracy,
        "stderr": result.stderr,
        "num_problems": result.num_problems,
        "n": args.n,
        "seconds": result.seconds,
        "groups": {k: vars(v) for k, v in result.groups.items()},
        "samples": [
            {"prompt_id": p.id, "answer": p.answer, "completions": [c.text for c in cs]}
            for p, cs in zip(prompts, result.completions, strict=True)
        ],
    }
    out.write_text(json.dumps(summary, indent=2))
