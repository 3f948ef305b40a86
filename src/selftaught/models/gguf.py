"""GGUF file -> cached Hugging Face directory (config.json + safetensors + tokenizer), converted once.

`transformers` reads a GGUF with `from_pretrained(dir, gguf_file=name)` and dequantizes every tensor,
which takes tens of seconds on a CPU (the tokenizer alone takes about 15 s for Gemma's 262k
vocabulary). We do that once per file and save an ordinary fp32 directory, which loads in seconds.

The cache entry is named after the file and its sha256, and is written to a temporary directory
beside it and renamed into place: a killed conversion leaves at most a hidden `.tmp-` directory,
never an entry that looks complete.
"""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
from pathlib import Path

import torch
from gguf import GGUFReader
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def gguf_cache_dir(models_dir: Path, gguf_name: str, sha256: str) -> Path:
    """Where the conversion of the GGUF file `gguf_name` with this sha256 lives under `models_dir`."""
    return models_dir / f"{Path(gguf_name).stem}-{sha256[:16]}"


def convert_gguf_cached(gguf_path: Path, models_dir: Path, *, sha256: str | None = None) -> Path:
    """The cached HF directory for `gguf_path`, converting it first if it is not in the cache yet.

    `sha256` is the file's hash when the caller already knows it (skips hashing the file). When two
    processes convert the same file at once, the first rename wins and the other's copy is dropped.
    """
    target = gguf_cache_dir(models_dir, gguf_path.name, sha256 or file_sha256(gguf_path))
    if target.is_dir():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=f".{target.name}.tmp-") as tmp:
        staged = Path(tmp) / "model"
        convert_gguf(gguf_path, staged)
        try:
            os.rename(staged, target)
        except OSError:
            if not target.is_dir():
                raise
    return target


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize `gguf_path` to an fp32 HF directory `out_dir` (model, generation config, tokenizer).

    `save_pretrained` refuses a GGUF-loaded model, so the model is rebuilt from its config (without
    the GGUF quantization entry) and given the dequantized weights. When the GGUF sets `add_bos_token`,
    the tokenizer is pinned to it, because transformers versions disagree (5.19 does not add BOS for
    Gemma, 5.24 does) and Gemma degenerates without BOS; otherwise transformers' choice is kept.
    """
    source, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=name)
    add_bos = gguf_add_bos(gguf_path)
    if add_bos is not None:
        _pin_add_bos(tokenizer, add_bos)
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=name, dtype=torch.float32)
    model = _rebuild_unquantized(gguf_model)
    del gguf_model
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def gguf_add_bos(gguf_path: Path) -> bool | None:
    """The file's `tokenizer.ggml.add_bos_token` flag, or None when the file does not set it."""
    field = GGUFReader(gguf_path).get_field("tokenizer.ggml.add_bos_token")
    return None if field is None else bool(field.contents())


def _rebuild_unquantized(gguf_model: PreTrainedModel) -> PreTrainedModel:
    config = copy.deepcopy(gguf_model.config)
    del config.quantization_config  # marks the model as GGUF-quantized, which blocks save_pretrained
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    return model.eval()


def _pin_add_bos(tokenizer: PreTrainedTokenizerBase, add_bos: bool) -> None:
    """Make `tokenizer(text)` add BOS exactly when `add_bos`, whatever transformers decided."""
    tokenizer.add_bos_token = add_bos  # rewrites the tokenizers post-processor, which is what gets saved
    ids = tokenizer("a")["input_ids"]
    if (ids[0] == tokenizer.bos_token_id) != add_bos:
        raise RuntimeError(
            f"could not set add_bos_token={add_bos} on {type(tokenizer).__name__} "
            f"(transformers version without the add_bos_token setter?); 'a' encodes to {ids}"
        )
