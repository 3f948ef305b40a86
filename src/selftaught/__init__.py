"""selftaught: self-improving LLM post-training on one small, readable core.

`import selftaught` stays light: heavy dependencies (torch, transformers, vllm, openai) are
imported by the modules that need them.
"""

__version__ = "0.1.0"
