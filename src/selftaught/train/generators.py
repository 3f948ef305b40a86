"""Rollout generators whose weights the trainer syncs (`train.sync.SyncableEngine`).

One config, three engines: an in-process `transformers` copy (`HFEngine`), an in-process vLLM
(`VLLMEngine`, weights reloaded in place), or an OpenAI-compatible server that reloads saved
checkpoints (`RemoteSyncEngine`). Online recipes pick one with `generator.kind`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from selftaught.configs.train import GeneratorConfig as GeneratorConfig
from selftaught.engines.hf import HFEngine
from selftaught.engines.openai import OpenAIConfig
from selftaught.engines.remote import RemoteSyncEngine
from selftaught.train.sync import SyncableEngine


def vllm_dtype(configured: str, precision_dtype: torch.dtype | None) -> str:
    """The dtype vLLM runs in: `generator.vllm_dtype` when set; under `auto`, `bfloat16` when the run's
    precision gives its generator bf16 weights (`train.precision.generator_dtype`), else vLLM's own
    choice (`auto`)."""
    if configured == "auto" and precision_dtype == torch.bfloat16:
        return "bfloat16"
    return configured


def build_generator(
    cfg: GeneratorConfig,
    model: Any,
    tokenizer: Any,
    *,
    source: str | None,
    run_dir: Path,
    batch_size: int,
    dtype: torch.dtype | None = None,
    share: bool = False,
) -> SyncableEngine:
    """The engine of `cfg.kind`, holding `model`'s weights (policy version 0).

    `source` is the directory `model` was loaded from (vLLM starts on it); `run_dir` holds a
    remote generator's saved checkpoints (`<run_dir>/generator`); `batch_size` is `HFEngine`'s;
    `dtype` that of the `hf` copy (None: `model`'s; `train.precision.generator_dtype`), to which its
    `sync_weights` converts the policy's weights. `share`: the `hf` engine samples `model` itself
    (no copy; its `sync_weights` copies nothing), for a caller that samples and trains in turn in
    one process, where the copy would hold the policy's weights at every sampling anyway.
    """
    if cfg.kind == "hf" and share:
        return HFEngine(model, tokenizer, batch_size=batch_size)
    if cfg.kind == "hf":
        copied = copy.deepcopy(model)
        return HFEngine(copied if dtype is None else copied.to(dtype), tokenizer, batch_size=batch_size)
    if cfg.kind == "vllm":
        if source is None:
            raise ValueError("generator.kind=vllm needs the policy's source directory to start vLLM on")
        from selftaught.engines.vllm import VLLMEngine  # the optional extra: only when asked for

        return VLLMEngine(
            source, dtype=vllm_dtype(cfg.vllm_dtype, dtype), gpu_memory_utilization=cfg.gpu_memory_utilization
        )
    api = OpenAIConfig(
        model=cfg.served_model,
        base_url=cfg.base_url,
        api_key_env=cfg.api_key_env,
        logprobs=True,
        token_ids=True,
    )
    return RemoteSyncEngine(api, tokenizer, run_dir / "generator", keep_last=cfg.keep_last)
