"""Generation behind one Protocol: `Engine.generate(prompts, sampling) -> list[list[Completion]]`.

`HFEngine` runs a `transformers` model in-process; `OpenAIEngine` talks to any OpenAI-compatible
server (vLLM, SGLang, llama.cpp, `selftaught serve`, hosted APIs); `RemoteSyncEngine` is an OpenAIEngine
whose server reloads the trainer's checkpoints; `ScriptedEngine` is a fake for tests.

The torch-backed engines load on first use (`selftaught.engines.HFEngine`), so a process that only
talks to servers (a Ray worker running a stage over `OpenAIEngine`) never imports torch.
"""

from typing import TYPE_CHECKING, Any

from selftaught.engines.base import Engine, ReloadableEngine, SamplingParams
from selftaught.engines.openai import OpenAIConfig, OpenAIEngine
from selftaught.engines.scripted import ScriptedEngine

if TYPE_CHECKING:
    from selftaught.engines.hf import HFEngine
    from selftaught.engines.remote import RemoteSyncEngine

_LAZY = {"HFEngine": "selftaught.engines.hf", "RemoteSyncEngine": "selftaught.engines.remote"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'selftaught.engines' has no attribute {name!r}")


__all__ = [
    "Engine",
    "HFEngine",
    "OpenAIConfig",
    "OpenAIEngine",
    "ReloadableEngine",
    "RemoteSyncEngine",
    "SamplingParams",
    "ScriptedEngine",
]
