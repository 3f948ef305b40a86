"""In-process generation with a `transformers` causal LM: batched, KV-cached, with exact logprobs.

Our own decode loop rather than `model.generate`, because online RL needs what `generate` makes
awkward or slow: the log-probability of every sampled token under the *unprocessed* model
distribution (temperature 1, no top-p, as vLLM returns by default), stop strings cut from the text,
one prefill shared by the `n` samples of a prompt, and finished rows dropped from the batch.

One micro-batch, step by step:
1. Left-pad the distinct prompts of the batch; `position_ids` count real tokens only, so a prompt
   gets the same positions whatever it is batched with.
2. Prefill them once, in groups of similar lengths (`kv_cache.prefill_groups`: less padding), and
   join the groups' caches into one `BufferedCache` of the batch's rows, each prompt's cache copied
   to its `n` sample rows; the decode steps write into it in place (`kv_cache`; models whose cache
   layers it does not handle prefill in one group into transformers' `DynamicCache`).
3. Per step: fp32 log-softmax of the last logits (the logprobs; with `sampling.top_logprobs = k`
   also its k largest entries, the alternatives), pick the next token (argmax at temperature 0,
   else temperature + nucleus sampling from a seeded `torch.Generator`), and mark rows that
   produced EOS, completed a stop string or used up their token budget.
4. Drop finished rows from the batch and the cache once enough have finished (`DROP_SHARE`,
   `MIN_DROP_ROWS`; until then they are fed along, their outputs unused); stop when none is left.

`generate_cancellable` (the server's path) also drops the rows of prompts whose client hung up, every
`CANCEL_POLL_STEPS` steps, and skips micro-batches nobody waits for; with `on_token` it reports
every token as it is picked (the server streams them).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache

from selftaught.data.chat import encode_prompt
from selftaught.data.padding import pad_sequences, position_ids
from selftaught.engines.base import SamplingParams, TokenListener, sample_key
from selftaught.engines.kv_cache import BufferedCache, assemble_cache, prefill_groups, supports_buffered_cache
from selftaught.engines.sampling import Scratch, sample_next_tokens
from selftaught.models.io import DTYPES, load_model
from selftaught.types import Completion, Prompt

if TYPE_CHECKING:
    from selftaught.models.adaptive import AdaptiveDecoder

HEAD_SEED_OFFSET = 1_000_003
"""The temperature head samples from its own stream, seeded `sampling.seed + HEAD_SEED_OFFSET`."""

CANCEL_POLL_STEPS = 8
"""Decode steps between two polls of `generate_cancellable`'s `cancelled`."""

DROP_SHARE = 0.125
"""Finished rows leave the batch (a copy of the whole cache) once they are this share of it ..."""

MIN_DROP_ROWS = 4
"""... and at least this many: a step over a few rows costs about the weights' reads, whatever the
count (on one CPU thread Gemma 3 270M's LM head took 119 ms for 4 rows, 150 ms for 2, 217 ms for 3)."""


class HFEngine:
    """Generate with a `transformers` causal LM on its own device (CPU or GPU).

    The engine may wrap the training model itself (on-policy, nothing to copy) or a separate copy
    that `sync_weights` refreshes. Samples are a deterministic function of the weights, prompts,
    `sampling` (its seed included) and `batch_size`.

    A completion ends at an EOS id (`finish_reason` "stop"; the EOS stays in `token_ids` with its
    logprob but not in `text`), at a stop string ("stop"; `text` is cut before the stop string, while
    `token_ids` and `logprobs` run up to and including the token that completed it, which may carry
    characters past the stop string), or after `max_new_tokens` ("length"; fewer when the prompt
    plus `max_new_tokens` would pass the model's `max_position_embeddings`).
    """

    supports_top_logprobs = True
    """Computes `SamplingParams.top_logprobs` (`selftaught serve` checks it)."""
    supports_streaming = True
    """`generate_cancellable` takes `on_token` (`selftaught serve` streams with it)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 256,
        policy_version: int = 0,
        show_progress: bool = False,
        temperature_head: AdaptiveDecoder | None = None,
        head_sample: bool = True,
    ) -> None:
        """`temperature_head`: an adaptive decoder that picks each row's temperature from the model's
        final hidden state (once per response, or per token: its `level`), in place of
        `SamplingParams.temperature`; `head_sample` samples the choice, else takes the head's argmax.
        Each completion's `meta` then holds `tau_index` and `temperatures` (one per response, or one
        per token)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (sequences decoded together), got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.policy_version = policy_version
        self.show_progress = show_progress
        self.temperature_head = temperature_head
        self.head_sample = head_sample
        self.eos_token_ids = eos_token_ids(model, tokenizer)
        self._cache_kwarg = cache_argument(model)
        self._buffered_cache, self._sliding_window = supports_buffered_cache(model.config)
        self.max_positions: int | None = getattr(
            model.config.get_text_config(), "max_position_embeddings", None
        )

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """`result[i][j]` is the j-th of `sampling.n` samples for `prompts[i]` (Engine Protocol)."""
        return self.generate_cancellable(prompts, sampling, None)

    def generate_cancellable(
        self,
        prompts: list[Prompt],
        sampling: SamplingParams,
        cancelled: Callable[[int], bool] | None,
        on_token: TokenListener | None = None,
    ) -> list[list[Completion]]:
        """`generate`, stopping `prompts[i]`'s samples once `cancelled(i)` (`CancellableEngine`), and
        telling `on_token` of every token as it is picked (the EOS and stop-string tokens included)."""
        keys = None
        if sampling.per_prompt_seeds:
            keys = [[sample_key(sampling.seed, p.id, j) for j in range(sampling.n)] for p in prompts]
        prompt_ids = [self.encode_prompt(prompt) for prompt in prompts]
        results = self.generate_ids(prompt_ids, sampling, keys, cancelled, on_token)
        for prompt, completions in zip(prompts, results, strict=True):
            for completion in completions:
                completion.prompt_id = prompt.id
        return results

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """The token ids this engine prompts with (`selftaught.data.chat.encode_prompt`)."""
        return encode_prompt(self.tokenizer, prompt)

    def generate_ids(
        self,
        prompt_ids: list[list[int]],
        sampling: SamplingParams,
        sample_keys: list[list[int]] | None = None,
        cancelled: Callable[[int], bool] | None = None,
        on_token: TokenListener | None = None,
    ) -> list[list[Completion]]:
        """Like `generate_cancellable` for tokenised prompts; the completions' `prompt_id` is left empty.

        Rows (prompt, sample) are sorted by prompt length, longest first, into micro-batches of
        `batch_size` sequences to cut padding; results come back in the original order.
        """
        self._check_prompt_lengths(prompt_ids)
        # A stable sort: each prompt's samples stay in order, so appending below keeps `results[i][j]`.
        rows = sorted(
            ((i, j) for i in range(len(prompt_ids)) for j in range(sampling.n)),
            key=lambda row: -len(prompt_ids[row[0]]),
        )
        batches = [rows[start : start + self.batch_size] for start in range(0, len(rows), self.batch_size)]
        generator = torch.Generator(device=self.model.device).manual_seed(sampling.seed)
        head_generator = None  # one stream for the call, so micro-batches do not repeat the head's draws
        if self.temperature_head is not None:
            head_generator = torch.Generator(device=self.model.device).manual_seed(
                sampling.seed + HEAD_SEED_OFFSET
            )
        results: list[list[Completion]] = [[] for _ in prompt_ids]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for batch in tqdm(batches, desc="generate", disable=not self.show_progress):
                    keys = None if sample_keys is None else [sample_keys[i][j] for i, j in batch]
                    rows_cancelled = None
                    if cancelled is not None:
                        rows_cancelled = _rows_cancelled(cancelled, [i for i, _ in batch])
                    if rows_cancelled is not None and bool(rows_cancelled().all()):
                        completions = [_aborted(self.policy_version) for _ in batch]
                    else:
                        row_listener = None if on_token is None else _row_listener(on_token, batch)
                        completions = self._generate_batch(
                            [prompt_ids[i] for i, _ in batch],
                            sampling,
                            generator,
                            keys,
                            rows_cancelled,
                            row_listener,
                            head_generator,
                        )
                    for (i, j), completion in zip(batch, completions, strict=True):
                        completion.meta = {"sample_index": j, "seed": sampling.seed, **completion.meta}
                        results[i].append(completion)
        finally:
            self.model.train(was_training)
        return results

    def prompt_logprobs(
        self, prompt_ids: list[int], top_logprobs: int = 0
    ) -> tuple[list[float | None], list[list[list[Any]]] | None]:
        """Logprobs of each token of `prompt_ids` given the ones before it (the first: None) from one
        forward (fp32 log-softmax of the unprocessed logits, as generation computes them), and with
        `top_logprobs = k` the k most likely tokens per position as `[[token_id, logprob], ...]`
        (the first position: `[]`). The server's `echo` with `logprobs` uses them.
        """
        self._check_prompt_lengths([prompt_ids])
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                input_ids = torch.tensor([prompt_ids], device=self.model.device)
                logps = self.model(input_ids=input_ids).logits[0, :-1].float().log_softmax(-1)  # [L - 1, V]
        finally:
            self.model.train(was_training)
        targets = torch.tensor(prompt_ids[1:], device=logps.device)
        chosen: list[float | None] = [None, *logps.gather(-1, targets[:, None]).squeeze(-1).tolist()]
        if not top_logprobs:
            return chosen, None
        top = logps.topk(min(top_logprobs, logps.shape[-1]), dim=-1)
        tops = [
            [[i, lp] for i, lp in zip(ids, lps, strict=True)]
            for ids, lps in zip(top.indices.tolist(), top.values.tolist(), strict=True)
        ]
        return chosen, [[], *tops]

    def sync_weights(self, source_model: Any, policy_version: int) -> None:
        """Copy `source_model`'s weights into the generator and stamp later samples `policy_version`.

        Nothing is copied when the engine wraps `source_model` itself. Parameter names must match
        (unwrap DDP/FSDP first); dtype and device are converted by `load_state_dict`.
        """
        if source_model is not self.model:
            self.model.load_state_dict(source_model.state_dict())
        self.policy_version = policy_version

    def load_checkpoint(self, directory: str | Path) -> Any:
        """The model saved in `directory` (by `save_model`), checked to fit this engine: pass it to
        `sync_weights` to serve its weights (`selftaught serve`'s reload endpoint does).

        ValueError when the directory is missing or not a loadable model, or when its architecture
        or any parameter name or shape differs from the engine's model. Only weights move: the
        engine keeps its config and tokenizer. Loaded on the CPU in the engine's dtype, so the
        check costs one extra copy of the weights in host memory until the caller drops it.
        """
        if not Path(directory).is_dir():
            raise ValueError(
                f"model directory {str(directory)!r} does not exist; pass a directory written by a selftaught "
                "run (its model/ directory) or by save_pretrained"
            )
        # Another dtype loads as float32: `load_state_dict` converts it in `sync_weights` anyway.
        dtype = {dt: name for name, dt in DTYPES.items()}.get(self.model.dtype, "float32")
        try:
            source, _ = load_model(str(directory), dtype=dtype)
        except (OSError, ValueError) as err:
            raise ValueError(f"model directory {str(directory)!r} could not be loaded: {err}") from err
        check_same_parameters(self.model, source, str(directory))
        return source

    def _check_prompt_lengths(self, prompt_ids: list[list[int]]) -> None:
        for i, ids in enumerate(prompt_ids):
            if not ids:
                raise ValueError(f"prompt {i} of the batch has no tokens; give it some text to continue")
            if self.max_positions is not None and len(ids) >= self.max_positions:
                raise ValueError(
                    f"prompt {i} of the batch has {len(ids)} tokens but the model attends to at most "
                    f"{self.max_positions} positions (config.max_position_embeddings); shorten the prompt"
                )

    def _generate_batch(
        self,
        prompt_ids: list[list[int]],
        sampling: SamplingParams,
        generator: torch.Generator,
        keys: list[int] | None = None,
        rows_cancelled: Callable[[], torch.Tensor] | None = None,
        on_row_token: Callable[[int, int, float, list[list[Any]] | None], None] | None = None,
        head_generator: torch.Generator | None = None,
    ) -> list[Completion]:
        """Decode one micro-batch: one row per (prompt, sample), prompts possibly repeated.

        `rows_cancelled()`, when given, is a [B] bool mask of rows to stop (polled while decoding);
        `on_row_token(row, token, logprob, alternatives)` is told of each token picked.
        """
        device = self.model.device
        budgets = [self._token_budget(len(ids), sampling) for ids in prompt_ids]
        max_new_tokens = max(budgets)
        # Identical rows (the n samples of a prompt) share one prefill; `row_to_unique` maps back.
        unique: dict[tuple[int, ...], int] = {}
        row_to_unique = [unique.setdefault(tuple(ids), len(unique)) for ids in prompt_ids]
        lengths = torch.tensor([len(ids) for ids in prompt_ids], device=device)  # [B]
        width = int(lengths.max())
        logits, hidden, cache = self._prefill(list(unique), row_to_unique, width, width + max_new_tokens)
        real = torch.arange(width + max_new_tokens, device=device) >= (width - lengths)[:, None]
        state = _DecodeState(
            active=torch.arange(len(prompt_ids), device=device),
            attention_mask=real.long(),  # [B, L + N], left-padded prompts
            positions=lengths - 1,  # [B]
            budgets=torch.tensor(budgets, device=device),
            tokens=torch.zeros(len(prompt_ids), max_new_tokens, dtype=torch.long, device=device),
            token_logps=torch.zeros(len(prompt_ids), max_new_tokens, device=device),
            lengths=torch.zeros(len(prompt_ids), dtype=torch.long, device=device),
            stopped=torch.zeros(len(prompt_ids), dtype=torch.bool, device=device),
            aborted=torch.zeros(len(prompt_ids), dtype=torch.bool, device=device),
            keys=None if keys is None else torch.tensor(keys, dtype=torch.long, device=device),
        )
        if self.temperature_head is not None:
            state.tau_index = torch.zeros(len(prompt_ids), max_new_tokens, dtype=torch.long, device=device)
            state.hidden = hidden  # [B, d], the last prompt token's
            state.head_generator = head_generator
        if sampling.top_logprobs:
            k = min(sampling.top_logprobs, logits.shape[-1])
            state.top_ids = torch.zeros(len(prompt_ids), max_new_tokens, k, dtype=torch.long, device=device)
            state.top_logps = torch.zeros(len(prompt_ids), max_new_tokens, k, device=device)
        self._decode(state, logits, cache, sampling, generator, rows_cancelled, on_row_token)
        return self._completions(state, sampling.stop)

    def _prefill(
        self, prompts: list[tuple[int, ...]], row_to_unique: list[int], width: int, max_length: int
    ) -> tuple[torch.Tensor, torch.Tensor | None, DynamicCache | BufferedCache]:
        """Run the distinct `prompts` through the model: the batch rows' last logits [B, V], their
        final hidden states [B, d] (with a temperature head, else None) and the cache to decode on.

        With a `BufferedCache` (plain attention layers), prompts of similar lengths are prefilled
        together (`prefill_groups`); else all at once into transformers' `DynamicCache`.
        """
        groups = [list(range(len(prompts)))]
        if self._buffered_cache and max_length < self._sliding_window:
            groups = prefill_groups([len(p) for p in prompts])
        logits, hidden, caches = [], [], []
        for group in groups:
            input_ids, mask = pad_sequences(
                [prompts[u] for u in group], pad_id=0, side="left", device=self.model.device
            )
            caches.append(DynamicCache(config=self.model.config))
            output = self.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=position_ids(mask),
                **{self._cache_kwarg: caches[-1]},
                use_cache=True,
                logits_to_keep=1,
                output_hidden_states=self.temperature_head is not None,
            )
            logits.append(output.logits[:, -1])
            if self.temperature_head is not None:
                hidden.append(output.hidden_states[-1][:, -1])
        concat_index = {u: i for i, u in enumerate(u for group in groups for u in group)}
        rows = torch.tensor([concat_index[u] for u in row_to_unique], device=self.model.device)
        buffered = (
            assemble_cache(caches, groups, row_to_unique, width, max_length) if self._buffered_cache else None
        )
        if buffered is not None:
            return torch.cat(logits)[rows], torch.cat(hidden)[rows] if hidden else None, buffered
        if len(groups) > 1:
            raise RuntimeError(
                "prefill groups need a BufferedCache; the model's cache layers do not allow one"
            )
        cache = caches[0]
        cache.batch_select_indices(rows)
        return torch.cat(logits)[rows], torch.cat(hidden)[rows] if hidden else None, cache

    def _decode(
        self,
        state: _DecodeState,
        logits: torch.Tensor,
        cache: DynamicCache,
        sampling: SamplingParams,
        generator: torch.Generator,
        rows_cancelled: Callable[[], torch.Tensor] | None = None,
        on_row_token: Callable[[int, int, float, list[list[Any]] | None], None] | None = None,
    ) -> None:
        """Sample until every row has finished (or is cancelled); fills `state` in place.

        A finished row stays in the batch (fed again, its outputs unused, drawing no random numbers)
        until `DROP_SHARE` of the batch and `MIN_DROP_ROWS` rows have finished: dropping rows copies
        the whole cache, and few rows cost about as much as fewer. With a temperature head (which
        draws for every row in the batch) finished rows leave at once.
        """
        prompt_width = state.attention_mask.shape[1] - state.tokens.shape[1]
        eos_ids = torch.tensor(self.eos_token_ids, dtype=torch.long, device=logits.device)
        head = self.temperature_head
        scratch = Scratch(len(state.active), logits.shape[-1], logits.device)
        live = torch.ones(len(state.active), dtype=torch.bool, device=logits.device)  # [A] not finished
        for step in range(state.tokens.shape[1]):
            all_live = bool(live.all())
            rows = state.active if all_live else state.active[live]  # [R] batch rows still decoding
            keys = None if state.keys is None else state.keys[state.active]
            temperatures = None
            if head is not None:
                temperatures = self._choose_temperatures(head, state, step)
            next_tokens, next_logps = sample_next_tokens(
                logits, sampling, generator, keys, step, temperatures, scratch, None if all_live else live
            )  # [A], [A]
            state.tokens[rows, step] = next_tokens[live]
            state.token_logps[rows, step] = next_logps[live]
            top = None
            if state.top_ids is not None and state.top_logps is not None:
                top = logits[live].float().log_softmax(-1).topk(state.top_ids.shape[-1], dim=-1)  # [R, k]
                state.top_ids[rows, step] = top.indices
                state.top_logps[rows, step] = top.values
            if on_row_token is not None:
                _report_tokens(on_row_token, rows, next_tokens[live], next_logps[live], top)
            stopped = torch.isin(next_tokens, eos_ids) & live
            if sampling.stop:
                stopped[live] |= self._completes_stop_string(state.tokens[rows, : step + 1], sampling.stop)
            finished = live & (stopped | (state.budgets[state.active] == step + 1))
            if rows_cancelled is not None and step % CANCEL_POLL_STEPS == CANCEL_POLL_STEPS - 1:
                aborted = rows_cancelled().to(finished.device)[state.active] & live & ~finished
                state.aborted[state.active[aborted]] = True
                finished |= aborted
            if bool(finished.any()):
                state.lengths[state.active[finished]] = step + 1
                state.stopped[state.active[finished]] = stopped[finished]
                live &= ~finished
                if not bool(live.any()):
                    return
                finished_rows = int((~live).sum())
                if head is not None or finished_rows >= max(DROP_SHARE * len(live), MIN_DROP_ROWS):
                    keep = live.nonzero().squeeze(-1)
                    state.keep_rows(keep)
                    cache.batch_select_indices(keep)
                    next_tokens, live = next_tokens[keep], live[keep]
            state.positions += live  # a finished row is fed again at its last position
            per_token = head is not None and head.level == "token"
            output = self.model(
                input_ids=next_tokens[:, None],
                attention_mask=state.attention_mask[:, : prompt_width + step + 1],
                position_ids=state.positions[:, None],
                **{self._cache_kwarg: cache},
                use_cache=True,
                output_hidden_states=per_token,
            )
            logits = output.logits[:, -1]
            if per_token and state.hidden is not None:
                state.hidden[state.active] = output.hidden_states[-1][:, -1]

    def _choose_temperatures(self, head: AdaptiveDecoder, state: _DecodeState, step: int) -> torch.Tensor:
        """[A] the active rows' temperatures at `step`: the head's choice from each row's hidden state
        (token level: every step; sequence level: the last prompt token's, chosen at step 0 and kept)."""
        assert state.tau_index is not None and state.hidden is not None
        if step == 0 or head.level == "token":
            index, _ = head.select(
                state.hidden[state.active], sample=self.head_sample, generator=state.head_generator
            )
            state.tau_index[state.active, step] = index.to(state.tau_index.device)
        else:
            state.tau_index[state.active, step] = state.tau_index[state.active, 0]
        grid = torch.tensor(head.temperatures, device=state.tau_index.device)
        return grid[state.tau_index[state.active, step]]

    def _completes_stop_string(self, tokens: torch.Tensor, stop: list[str]) -> torch.Tensor:
        """[A] True where the generated text of the active rows' `tokens` [A, T] contains a stop string.

        Called after every step, so a hit is one the newest token completed. Only the tail is
        decoded: the last `4 * len(longest stop) + 1` tokens hold the whole stop string (a character
        spans at most 4 byte-level tokens) plus one token of context. A tail hit is confirmed on the
        full text, so the cut in `_completions` always finds the stop string.
        """
        tail = 4 * max(len(s) for s in stop) + 1
        tail_texts = self.tokenizer.batch_decode(tokens[:, -tail:].tolist(), skip_special_tokens=True)
        hits = [any(s in text for s in stop) for text in tail_texts]
        for row in [row for row, hit in enumerate(hits) if hit]:
            hits[row] = any(s in self._decode_text(tokens[row].tolist()) for s in stop)
        return torch.tensor(hits, device=tokens.device)

    def _completions(self, state: _DecodeState, stop: list[str]) -> list[Completion]:
        completions = []
        rows = zip(
            state.tokens.tolist(),
            state.token_logps.tolist(),
            state.lengths.tolist(),
            state.stopped.tolist(),
            state.aborted.tolist(),
            strict=True,
        )
        top_ids = None if state.top_ids is None else state.top_ids.tolist()
        top_logps = None if state.top_logps is None else state.top_logps.tolist()
        for row, (tokens, logps, length, stopped, aborted) in enumerate(rows):
            token_ids = tokens[:length]
            text = self._decode_text(token_ids)
            hit_positions = [text.find(s) for s in stop if s in text]
            if stopped and hit_positions:
                text = text[: min(hit_positions)]
            completions.append(
                Completion(
                    prompt_id="",
                    text=text,
                    token_ids=token_ids,
                    logprobs=logps[:length],
                    finish_reason="abort" if aborted else "stop" if stopped else "length",
                    policy_version=self.policy_version,
                )
            )
            if state.tau_index is not None and self.temperature_head is not None:
                trace = state.tau_index[row, :length].tolist()
                if self.temperature_head.level == "sequence":
                    trace = trace[:1]
                completions[-1].meta["tau_index"] = trace
                completions[-1].meta["temperatures"] = [self.temperature_head.temperatures[i] for i in trace]
            if top_ids is not None and top_logps is not None:
                completions[-1].meta["top_logprobs"] = [
                    [[i, lp] for i, lp in zip(ids, lps, strict=True)]
                    for ids, lps in zip(top_ids[row][:length], top_logps[row][:length], strict=True)
                ]
        return completions

    def _decode_text(self, token_ids: list[int]) -> str:
        """Text of generated ids; a final EOS is dropped, other special tokens are skipped."""
        if token_ids and token_ids[-1] in self.eos_token_ids:
            token_ids = token_ids[:-1]
        return self.tokenizer.decode(token_ids, skip_special_tokens=True)

    def _token_budget(self, prompt_len: int, sampling: SamplingParams) -> int:
        """`max_new_tokens`, cut so the sequence fits the model's positions (vLLM does the same)."""
        if self.max_positions is None:
            return sampling.max_new_tokens
        return min(sampling.max_new_tokens, self.max_positions - prompt_len)


@dataclass
class _DecodeState:
    """Outputs of every row of one micro-batch ([B, ...]) and inputs of the still active rows ([A, ...])."""

    active: torch.Tensor  # [A] batch row of each active row
    attention_mask: torch.Tensor  # [A, L + N]
    positions: torch.Tensor  # [A] position of the last token fed
    budgets: torch.Tensor  # [B] max new tokens of each row
    tokens: torch.Tensor  # [B, N]
    token_logps: torch.Tensor  # [B, N]
    lengths: torch.Tensor  # [B] tokens kept, the EOS or stop-string token included
    stopped: torch.Tensor  # [B] ended by EOS or a stop string (else by its token budget)
    aborted: torch.Tensor  # [B] stopped because its prompt was cancelled
    keys: torch.Tensor | None = None  # [B] per-sample random-stream keys (per_prompt_seeds), else None
    top_ids: torch.Tensor | None = None  # [B, N, k] the k most likely tokens per step (top_logprobs)
    top_logps: torch.Tensor | None = None  # [B, N, k] their logprobs
    tau_index: torch.Tensor | None = None  # [B, N] the adaptive decoder's temperature index per step
    hidden: torch.Tensor | None = None  # [B, d] each row's latest final hidden state (the head's input)
    head_generator: torch.Generator | None = None  # the head's sampling stream

    def keep_rows(self, keep: torch.Tensor) -> None:
        """Keep only the active rows at indices `keep` [A']."""
        self.active = self.active[keep]
        self.attention_mask = self.attention_mask[keep]
        self.positions = self.positions[keep]


def _row_listener(
    on_token: TokenListener, batch: list[tuple[int, int]]
) -> Callable[[int, int, float, list[list[Any]] | None], None]:
    """`on_token` as a micro-batch's rows report: row r is sample `batch[r][1]` of prompt `batch[r][0]`."""

    def on_row_token(row: int, token: int, logprob: float, alternatives: list[list[Any]] | None) -> None:
        on_token(batch[row][0], batch[row][1], token, logprob, alternatives)

    return on_row_token


def _report_tokens(
    on_row_token: Callable[[int, int, float, list[list[Any]] | None], None],
    rows: torch.Tensor,
    tokens: torch.Tensor,
    logps: torch.Tensor,
    top: Any,
) -> None:
    """Tell `on_row_token` of the token each active row (`rows` [A]) just picked."""
    alternatives: list[list[list[Any]] | None] = [None] * len(rows)
    if top is not None:
        alternatives = [
            [[i, lp] for i, lp in zip(ids, lps, strict=True)]
            for ids, lps in zip(top.indices.tolist(), top.values.tolist(), strict=True)
        ]
    for row, token, logp, alts in zip(
        rows.tolist(), tokens.tolist(), logps.tolist(), alternatives, strict=True
    ):
        on_row_token(row, token, logp, alts)


def _rows_cancelled(cancelled: Callable[[int], bool], prompt_of_row: list[int]) -> Callable[[], torch.Tensor]:
    """A poll of `cancelled` per row of a micro-batch ([B] bool; one call per distinct prompt)."""

    def poll() -> torch.Tensor:
        gone = {i: cancelled(i) for i in set(prompt_of_row)}
        return torch.tensor([gone[i] for i in prompt_of_row])

    return poll


def _aborted(policy_version: int) -> Completion:
    """The completion of a sample that was cancelled before it started."""
    return Completion(
        prompt_id="", text="", token_ids=[], logprobs=[], finish_reason="abort", policy_version=policy_version
    )


def check_same_parameters(model: Any, source: Any, source_name: str) -> None:
    """ValueError unless `source` has `model`'s class and the same parameter names and shapes."""
    if type(source) is not type(model):
        raise ValueError(
            f"{source_name} holds a {type(source).__name__}, but the engine runs a {type(model).__name__}; "
            "save the same architecture"
        )
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    source_shapes = {name: tuple(t.shape) for name, t in source.state_dict().items()}
    differences = [
        f"{name}: {source_shapes.get(name, 'missing')} vs {shapes.get(name, 'missing')}"
        for name in sorted(shapes.keys() | source_shapes.keys())
        if shapes.get(name) != source_shapes.get(name)
    ]
    if differences:
        raise ValueError(
            f"{source_name}: {len(differences)} tensor(s) differ in name or shape from the engine's model "
            f"(saved vs served: {'; '.join(differences[:3])}); save a model with the served config"
        )


def cache_argument(model: Any) -> str:
    """Name of the KV-cache argument of `model.forward`: `cache` (transformers >= 5.2x) or the
    older `past_key_values` (5.19, which vLLM's CPU build pins); passing the wrong one would
    silently disable caching on old versions and warn on new ones."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Ids that end a sequence: the tokenizer's EOS and the model's `generation_config.eos_token_id`
    (an int or a list, e.g. Gemma's `<eos>` and `<end_of_turn>`)."""
    ids = {tokenizer.eos_token_id}
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(config_eos if isinstance(config_eos, list) else [config_eos])
    return sorted(i for i in ids if i is not None)
