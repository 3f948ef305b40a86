"""Generation behind one Protocol: `Engine.generate(prompts, sampling) -> list[list[Completion]]`.

`HFEngine` runs a `transformers` model in-process; `OpenAIEngine` talks to any OpenAI-compatible
server (vLLM, SGLang, llama.cpp, `selftaught serve`, hosted APIs); `RemoteSyncEngine` is an OpenAIEngine
whose server reloads the trainer's checkpoints; `ScriptedEngine` is a fake for tests.
"""

from selftaught.engines.base import Engine, ReloadableEngine, SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.openai import OpenAIConfig, OpenAIEngine
from selftaught.engines.remote import RemoteSyncEngine
from selftaught.engines.scripted import ScriptedEngine

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
