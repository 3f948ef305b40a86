"""Models: tiny Llamas built from a config, and loading / saving real ones (HF directories, GGUF, aliases).

The names below are imported on first use (PEP 562), so importing a torch-free submodule such as
`selftaught.models.policy` (whose `LoraConfig` every recipe config holds) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MODEL_ALIASES": "selftaught.models.io",
    "cache_dir": "selftaught.models.io",
    "load_model": "selftaught.models.io",
    "save_model": "selftaught.models.io",
    "TINY_SIZES": "selftaught.models.tiny",
    "TinySize": "selftaught.models.tiny",
    "build_tiny_llama": "selftaught.models.tiny",
}

__all__ = [
    "MODEL_ALIASES",
    "TINY_SIZES",
    "TinySize",
    "build_tiny_llama",
    "cache_dir",
    "load_model",
    "save_model",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
