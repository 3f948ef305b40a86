"""Generation behind one Protocol: `Engine.generate(prompts, sampling) -> list[list[Completion]]`.

`HFEngine` runs a `transformers` model in-process; `ScriptedEngine` is a fake for tests.
"""

from selftaught.engines.base import Engine, SamplingParams
from selftaught.engines.hf import HFEngine
from selftaught.engines.scripted import ScriptedEngine

__all__ = ["Engine", "HFEngine", "SamplingParams", "ScriptedEngine"]
