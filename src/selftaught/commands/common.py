"""What the model-running commands share: the `--model` argument, the sampling arguments, and
turning them into a loaded model and `SamplingParams`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

MODEL_HELP = "model directory, GGUF file, hub id, or alias (tiny-world, gemma-3-270m)"
"""Help of `--model`; the aliases are `selftaught.models.io`'s plus the recipes' `tiny-world`."""


def add_model_arg(parser: argparse.ArgumentParser) -> None:
    """The required `--model` of a command that runs a model."""
    parser.add_argument("--model", required=True, help=MODEL_HELP)


def add_sampling_args(
    parser: argparse.ArgumentParser, temperature: float, max_new_tokens: int | None
) -> None:
    """`--n --temperature --top-p --max-new-tokens --stop --seed --batch-size`, with this command's
    defaults (`max_new_tokens` None: the data's own default, e.g. the eval set's)."""
    parser.add_argument("--n", type=int, default=1, help="samples per prompt (default: 1)")
    parser.add_argument(
        "--temperature", type=float, default=temperature, help=f"0 = greedy (default: {temperature})"
    )
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (default: 1.0)")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=max_new_tokens,
        help="cap on generated tokens" + (f" (default: {max_new_tokens})" if max_new_tokens else ""),
    )
    parser.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64, help="sequences decoded together")


def sampling(args: argparse.Namespace, stop: list[str] | None = None, max_new_tokens: int = 256) -> Any:
    """`SamplingParams` from the sampling arguments; `stop` and `max_new_tokens` are the defaults of
    the data when the user gave none."""
    from selftaught.engines.base import SamplingParams

    for flag, value in (
        ("--max-new-tokens", args.max_new_tokens),
        ("--n", args.n),
        ("--batch-size", args.batch_size),
    ):
        require(value is None or value >= 1, flag, ">= 1", value)
    require(args.temperature >= 0, "--temperature", ">= 0 (0: greedy)", args.temperature)
    require(0 < args.top_p <= 1, "--top-p", "in (0, 1]", args.top_p)
    for stop in args.stop or []:
        require(bool(stop), "--stop", "a non-empty string", stop)
    return SamplingParams(
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens or max_new_tokens,
        n=args.n,
        stop=args.stop if args.stop is not None else (stop or []),
        seed=args.seed,
    )


def require(ok: bool, flag: str, must: str, value: Any) -> None:
    """A ValueError `<flag> must be <must>, got <value>` unless `ok`: a command-line flag's check."""
    if not ok:
        raise ValueError(f"{flag} must be {must}, got {value!r}")


def check_out_file(flag: str, path: str) -> None:
    """A ValueError, before any work, when the output file `path` of `flag` cannot be written: it is
    a directory, or a parent of it is a file."""
    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{flag} {path} is a directory; name a file")
    parent = next((p for p in out.parents if p.exists()), Path("."))
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: {parent} is a file, not a directory")


def load_model_spec(spec: str) -> tuple[Any, Any]:
    """Model and tokenizer for a `--model` value (`selftaught.models.io.load_model`); importing the
    recipes first registers the `tiny-world` alias (the student trained and cached on first use)."""
    import selftaught.recipes  # noqa: F401  (registers the tiny-world alias)
    from selftaught.models.io import load_model

    return load_model(spec)


def hf_engine(args: argparse.Namespace, *, show_progress: bool = True) -> Any:
    """An `HFEngine` over `--model`, decoding `--batch-size` sequences together."""
    from selftaught.engines.hf import HFEngine

    model, tokenizer = load_model_spec(args.model)
    return HFEngine(model, tokenizer, batch_size=args.batch_size, show_progress=show_progress)
