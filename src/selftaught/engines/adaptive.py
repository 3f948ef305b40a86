"""Sequence-level adaptive decoding on any engine: a frozen HF model reads each prompt, the head picks
each sample's temperature, and the inner engine (vLLM, an OpenAI-compatible server, `HFEngine`)
samples at that temperature.

`HeadTemperatureEngine.generate` runs one batched prefill of the prompts through the HF model (the
prompt ids of `encode_prompt`, as every engine encodes them) and reads the final hidden state of each
prompt's last token, the state `HFEngine(temperature_head=...)` picks a sequence-level temperature
from. The head chooses one temperature per sample (its argmax, or a seeded sample), and the inner
engine is called once per (temperature, samples per prompt) group with `temperature = tau`, `tau = 0`
being greedy in every engine. Completions come back in the order of the request, each with
`meta["tau_index"] = [k]` and `meta["temperatures"] = [tau]`, as `HFEngine` records them.

Why sequence level only (and no vLLM logits processor): a per-token temperature is a function of
that step's hidden state, which vLLM's logits processors never see. In vLLM 0.32 (v1) a custom
processor is a `LogitsProcessor` subclass passed to `LLM(logits_processors=[...])`: `update_state`
gets each request's `SamplingParams` (`extra_args` for per-request settings), prompt and output token
ids (`BatchUpdate`), and `apply(logits)` the `[requests, vocab]` logits
(vllm/v1/sample/logits_processor/interface.py; docs.vllm.ai "Logits Processors"). v0's per-request
callables, `(output_ids, logits)` or `(prompt_ids, output_ids, logits)` (`vllm.logits_process`), live
on only inside `AdapterLogitsProcessor` and see no more. So a processor could divide a row by a given
temperature but cannot compute it: that needs a patched model runner handing the last hidden state to
the sampler (custom processors are also refused under speculative decoding, whose
`extract_hidden_states` method only stores hidden states). A sequence-level temperature needs only the
prompt's hidden state, which one HF prefill gives here, so vLLM runs unmodified. Costs: the HF model's
memory next to the inner engine's, and one prefill per call.

Seeds. Argmax choices, and sampled choices with `n = 1`, give every sample of a prompt one
temperature: the inner engine then gets the call's own seed and sample indices, so with
`per_prompt_seeds` the samples are those `HFEngine(temperature_head=head, head_sample=False)` draws.
A prompt whose samples a sampling head splits over several temperatures gets, per temperature, its
own stream (`per_prompt_seeds`: a seed derived from (seed, temperature index), so a prompt's samples
still do not depend on the other prompts; otherwise each call's seed is offset past the requests of
the calls before it, so no two requests of one `generate` share a vLLM or server seed).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from selftaught.data.chat import encode_prompt
from selftaught.data.padding import pad_sequences, position_ids
from selftaught.engines.base import Engine, SamplingParams, sample_key
from selftaught.engines.hf import HEAD_SEED_OFFSET
from selftaught.engines.sampling import counter_uniform, sample_from_probs
from selftaught.models.adaptive import AdaptiveDecoder, Level
from selftaught.types import Completion, Prompt

TOKEN_LEVEL_UNSUPPORTED = (
    "HeadTemperatureEngine runs sequence-level heads only: a token-level head picks a temperature from "
    "every step's hidden state, which vLLM's logits processors (per-request callables and v1 "
    "LogitsProcessor classes) never see (they get token ids and logits); use HFEngine(temperature_head=head) "
    "for a token-level head"
)


class HeadTemperatureEngine:
    """`Engine` that samples each completion at the temperature a sequence-level `AdaptiveDecoder`
    picks from the prompt (see the module doc); `engine` does the sampling.

    `model` and `tokenizer`: the frozen `transformers` model the head was trained on and its
    tokenizer (the inner engine must serve the same model); only used for one prefill of the prompts,
    `batch_size` prompts at a time. `sample`: sample the head's choice (seeded from `sampling.seed`),
    else take its argmax (ties: the lowest temperature). `SamplingParams.temperature` is ignored.
    """

    def __init__(
        self,
        engine: Engine,
        model: Any,
        tokenizer: Any,
        head: AdaptiveDecoder,
        *,
        sample: bool = True,
        batch_size: int = 64,
    ) -> None:
        if head.level != Level.SEQUENCE:
            raise ValueError(TOKEN_LEVEL_UNSUPPORTED)
        hidden_size = model.config.get_text_config().hidden_size
        if head.hidden_size != hidden_size:
            raise ValueError(
                f"the head reads hidden states of size {head.hidden_size}, but the model's are {hidden_size}; "
                "pass the model the head was trained on"
            )
        if getattr(engine, "temperature_head", None) is not None:
            raise ValueError(
                "the inner engine has its own temperature_head, which would override the temperatures "
                "chosen here; pass an engine without one"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (prompts per prefill), got {batch_size}")
        self.engine = engine
        self.model = model
        self.tokenizer = tokenizer
        self.head = head
        self.sample = sample
        self.batch_size = batch_size

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """`result[i][j]` is the j-th of `sampling.n` samples for `prompts[i]` (Engine Protocol)."""
        if not prompts:
            return []
        choices = self.choose(prompts, sampling)  # [P][n] temperature indices
        grid = self.head.temperatures
        # (temperature index, samples per prompt, own stream) -> [(prompt index, sample indices)]
        groups: dict[tuple[int, int, bool], list[tuple[int, list[int]]]] = {}
        for i, row in enumerate(choices):
            split = len(set(row)) > 1
            for k in sorted(set(row)):
                samples = [j for j, index in enumerate(row) if index == k]
                key = (k, len(samples), split and sampling.per_prompt_seeds)
                groups.setdefault(key, []).append((i, samples))
        results: list[list[Completion | None]] = [[None] * sampling.n for _ in prompts]
        offset = 0
        for (k, count, own_stream), members in sorted(groups.items()):
            if sampling.per_prompt_seeds:
                seed = sample_key(sampling.seed, f"temperature-{k}", 0) if own_stream else sampling.seed
            else:
                seed = sampling.seed + offset
            call = replace(sampling, temperature=grid[k], n=count, seed=seed)
            outputs = self.engine.generate([prompts[i] for i, _ in members], call)
            for (i, samples), completions in zip(members, outputs, strict=True):
                for j, completion in zip(samples, completions, strict=True):
                    completion.meta = {
                        **completion.meta,
                        "sample_index": j,
                        "tau_index": [k],
                        "temperatures": [grid[k]],
                    }
                    results[i][j] = completion
            offset += len(members) * count
        assert all(c is not None for row in results for c in row), "every (prompt, sample) is filled once"
        return results  # type: ignore[return-value]

    def choose(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[int]]:
        """`[P][n]` the head's temperature index for each sample of each prompt.

        Argmax: one per prompt, repeated. Sampled: one draw per sample by inverting the head's CDF,
        with uniforms from a generator seeded `sampling.seed + HEAD_SEED_OFFSET`, or with
        `per_prompt_seeds` from the counter-based stream keyed by (that seed, prompt id, sample index).
        """
        hidden = self.prompt_hidden_states(prompts)  # [P, d]
        n = sampling.n
        if not self.sample:
            index, _ = self.head.select(hidden, sample=False)
            return [[i] * n for i in index.tolist()]
        with torch.no_grad():
            probs = self.head(hidden).exp().double().cpu().repeat_interleave(n, dim=0)  # [P * n, K]
        head_seed = sampling.seed + HEAD_SEED_OFFSET
        generator = torch.Generator().manual_seed(head_seed)
        if sampling.per_prompt_seeds:
            keys = torch.tensor([sample_key(head_seed, p.id, j) for p in prompts for j in range(n)])
            uniform = counter_uniform(keys, 0)[:, None]  # [P * n, 1]
        else:
            uniform = torch.rand(len(probs), 1, generator=generator, dtype=torch.float64)
        index = sample_from_probs(probs, generator, uniform)  # [P * n]
        return index.reshape(len(prompts), n).tolist()

    def prompt_hidden_states(self, prompts: list[Prompt]) -> torch.Tensor:
        """[P, d] the model's final hidden state at each prompt's last token, on the head's device.

        Left-padded batches with positions counting real tokens (as `HFEngine` prefills), longest
        prompts first to cut padding; the order of `prompts` is kept in the result.
        """
        prompt_ids = [encode_prompt(self.tokenizer, p) for p in prompts]
        for i, ids in enumerate(prompt_ids):
            if not ids:
                raise ValueError(f"prompt {prompts[i].id!r} has no tokens; give it some text to continue")
        order = sorted(range(len(prompt_ids)), key=lambda i: -len(prompt_ids[i]))
        device = next(self.head.parameters()).device
        parts = []
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    chunk = [prompt_ids[i] for i in order[start : start + self.batch_size]]
                    input_ids, mask = pad_sequences(chunk, pad_id=0, side="left", device=self.model.device)
                    output = self.model(
                        input_ids=input_ids,
                        attention_mask=mask,
                        position_ids=position_ids(mask),
                        use_cache=False,
                        logits_to_keep=1,
                        output_hidden_states=True,
                    )
                    parts.append(output.hidden_states[-1][:, -1])  # [B, d]
        finally:
            self.model.train(was_training)
        unsort = torch.tensor(order).argsort().to(self.model.device)
        return torch.cat(parts)[unsort].to(device)  # [P, d] in the order of `prompts`
