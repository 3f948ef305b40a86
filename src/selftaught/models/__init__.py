"""Models: tiny Llamas built from a config, and loading / saving real ones (HF directories, GGUF, aliases)."""

from selftaught.models.io import MODEL_ALIASES, cache_dir, load_model, save_model
from selftaught.models.tiny import TINY_SIZES, TinySize, build_tiny_llama

__all__ = [
    "MODEL_ALIASES",
    "TINY_SIZES",
    "TinySize",
    "build_tiny_llama",
    "cache_dir",
    "load_model",
    "save_model",
]
