"""The OpenAI API as `selftaught serve` speaks it: request bodies -> `Prompt`s + `SamplingParams`,
completions -> response bodies or stream chunks, refusals -> `ApiError`. No HTTP and no engine here,
so the protocol can be tested and read on its own (`engines/server.py` serves it).

`POST /v1/completions` takes `prompt`, a string or a list of strings (each rendered with BOS, like
`Prompt.text`); `POST /v1/chat/completions` takes `messages` (rendered with the chat template).
Every field a request sends is either honoured or refused with a 400 naming it: nothing is
silently ignored (a field sent as `null` counts as absent).

Honoured fields:

| field | endpoints | meaning here |
|---|---|---|
| `model` | both | must be the served name (404 otherwise) |
| `prompt` | completions | a string or a list of strings; one choice per prompt per `n`, `index = prompt * n + sample` (token-id prompts: 400) |
| `messages` | chat | the conversation; roles checked |
| `n` | both | samples per prompt; prompts x `n` capped by `RequestLimits.max_n` |
| `temperature`, `top_p`, `seed` | both | as `SamplingParams` (0 = greedy) |
| `max_tokens` | both | new tokens per sample; default `default_max_tokens`, not the completions API's 16 |
| `max_completion_tokens` | chat | same, wins over `max_tokens` |
| `stop` | both | a string or a list of strings, cut from the text |
| `logprobs` | both | completions: an int k (0-20), the sampled tokens' logprobs and, for k > 0, `top_logprobs` dicts of the k most likely tokens; chat: a bool |
| `top_logprobs` | chat | k (0-20) alternatives per token; needs `logprobs: true` |
| `echo` | completions | the prompt text before each completion; with `logprobs`, the prompt's tokens and their logprobs first (the first one null), as OpenAI does; needs an engine with `prompt_logprobs` (`HFEngine`; others: 400) |
| `stream`, `stream_options` | both | server-sent events; `{"include_usage": true}` adds a last chunk with `usage` |
| `user` | both | accepted, no effect (OpenAI's end-user id) |
| `return_tokens_as_token_ids` | both | vLLM's: tokens spelled `token_id:<id>` |

Logprobs are those of the unprocessed distribution (temperature 1, no top-p), as vLLM returns by
default; a top-logprobs entry is keyed by the token's text, so tokens that decode alike share one
entry (send `return_tokens_as_token_ids` to keep them apart). Top logprobs need an engine that
computes them (`HFEngine`, `engine.supports_top_logprobs`; others: 400).

Refused fields (400 naming the field) unless sent at their no-op value:

| field | no-op value | why refused |
|---|---|---|
| `tools`, `functions` | `[]` | no tool or function calling |
| `tool_choice`, `function_call` | `"none"` | no tool or function calling |
| `parallel_tool_calls` | - | no tool calling |
| `response_format` | `{"type": "text"}` | no structured output (JSON mode, schemas) |
| `logit_bias` | `{}` | the engines sample from unbiased logits |
| `suffix` | `""` | no insertion (fill-in-the-middle) |
| `best_of` | `n` | ranking extra samples is not implemented; ask for `n` and rank them yourself |
| `presence_penalty`, `frequency_penalty` | `0` | the engines apply no penalties |
| `repetition_penalty` | `1` | same (vLLM's) |
| `top_k`, `min_p` | `-1` or `0`, `0` | the engines sample with temperature and top-p only (vLLM's) |
| any other field | - | unknown here: refused rather than ignored |

Streaming (`stream: true`) sends `data: {chunk}` events (`text_completion` or
`chat.completion.chunk` objects) and then `data: [DONE]`: chat first sends a role chunk per choice
(echo: the prompt text per choice), then text chunks with the logprobs of their tokens, then per
choice a chunk with the rest of its text and its `finish_reason`; with
`stream_options.include_usage` every chunk has `"usage": null` and a last chunk with no choices
carries the usage, as OpenAI does. With an engine that reports tokens as it picks them
(`HFEngine`, `supports_streaming`) text is sent per decode step (`IncrementalText`: the decoded
text, cut at a stop string, holding back what could still become one and incomplete characters),
chunks of the choices interleaved; an error after the headers is sent as a `data: {"error": ...}`
event. Otherwise (other engines, `echo` with `logprobs`) the stream starts once every choice is
generated, each choice's whole text in one chunk (`stream_chunks`).

`POST /tokenize` and `POST /detokenize` follow vLLM: `{"model"?, "prompt"}` (BOS added unless
`add_special_tokens` is false) or `{"model"?, "messages"}` (the chat template with the generation
prompt, what chat completions generate from) -> `{"tokens", "count", "max_model_len"}`;
`{"model"?, "tokens"}` -> `{"prompt"}` (special tokens kept).

Our one extension is the reload request, `{"model": "<dir>", "policy_version": k}`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from selftaught.data.chat import encode_prompt, encode_text, render_prompt, validate_messages
from selftaught.engines.base import SamplingParams
from selftaught.engines.openai import TOKEN_ID_PREFIX
from selftaught.types import Completion, Prompt

ERROR_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    501: "not_implemented_error",
}
"""OpenAI's error `type` by HTTP status (others: `invalid_request_error`, or `server_error` for 5xx)."""

MAX_TOP_LOGPROBS = 20
"""Most alternatives per token (`logprobs` of completions, `top_logprobs` of chat), as OpenAI's chat."""

_COMMON_FIELDS = {"model", "n", "temperature", "top_p", "max_tokens", "stop", "seed", "logprobs", "stream"}
_COMMON_FIELDS |= {"stream_options", "user", "return_tokens_as_token_ids"}
HONOURED_FIELDS = {
    False: frozenset(_COMMON_FIELDS | {"prompt", "echo"}),
    True: frozenset(_COMMON_FIELDS | {"messages", "max_completion_tokens", "top_logprobs"}),
}
"""Fields each endpoint honours, by `chat` (see the module doc's table)."""

_TOOLS = "tool and function calling is not supported"
REFUSED_FIELDS: dict[str, tuple[Callable[[Any, dict[str, Any]], bool], str]] = {
    "tools": (lambda v, body: v == [], _TOOLS),
    "functions": (lambda v, body: v == [], _TOOLS),
    "tool_choice": (lambda v, body: v == "none", _TOOLS),
    "function_call": (lambda v, body: v == "none", _TOOLS),
    "parallel_tool_calls": (lambda v, body: False, _TOOLS),
    "response_format": (
        lambda v, body: v == {"type": "text"},
        "structured output (JSON mode, JSON schemas) is not supported",
    ),
    "logit_bias": (
        lambda v, body: v == {},
        "logit_bias is not supported: the engines sample unbiased logits",
    ),
    "suffix": (lambda v, body: v == "", "suffix (insertion) is not supported"),
    "best_of": (
        lambda v, body: v == (body.get("n") or 1),
        "best_of other than n is not supported (ranking extra samples); ask for n samples and rank them",
    ),
    "presence_penalty": (
        lambda v, body: v == 0,
        "presence_penalty is not supported: the engines apply no penalties",
    ),
    "frequency_penalty": (
        lambda v, body: v == 0,
        "frequency_penalty is not supported: the engines apply no penalties",
    ),
    "repetition_penalty": (
        lambda v, body: v == 1,
        "repetition_penalty is not supported: the engines apply no penalties",
    ),
    "top_k": (
        lambda v, body: v in (-1, 0),
        "top_k is not supported: the engines sample with temperature and top_p",
    ),
    "min_p": (
        lambda v, body: v == 0,
        "min_p is not supported: the engines sample with temperature and top_p",
    ),
}
"""Fields refused with a 400 unless sent at their no-op value: `name -> (is_no_op(value, body), why)`."""


@dataclass(frozen=True)
class RequestLimits:
    """What one generation request may ask for; larger requests are refused with a 400 naming the field."""

    max_n: int = 32
    """Samples per request: `n` times the number of prompts."""
    max_tokens: int = 4096
    """New tokens per sample (`max_tokens`, `max_completion_tokens`)."""
    max_prompt_tokens: int = 8192
    """Tokens of the rendered prompt."""

    def __post_init__(self) -> None:
        for name in ("max_n", "max_tokens", "max_prompt_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class ApiError(Exception):
    """A request the server refuses: HTTP status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param

    def body(self) -> dict[str, Any]:
        """The error as OpenAI clients parse it (`{"error": {"message", "type", "param", "code"}}`)."""
        kind = ERROR_TYPES.get(self.status, "server_error" if self.status >= 500 else "invalid_request_error")
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": self.status}}


@dataclass(frozen=True)
class PromptLogprobs:
    """A prompt's tokens scored by the engine (`echo` with `logprobs`): `HFEngine.prompt_logprobs`."""

    token_ids: list[int]
    logprobs: list[float | None]
    """The first one is None (nothing before it)."""
    top_logprobs: list[list[list[Any]]] | None = None
    """`[[token_id, logprob], ...]` per position when alternatives were asked for."""


@dataclass
class ApiCall:
    """A parsed generation request."""

    chat: bool
    """Chat completions (True) or completions (False): decides the response layout."""
    prompts: list[Prompt]
    """One per prompt of the request (chat: one); the first one's id is the response id."""
    sampling: SamplingParams
    seeded: bool
    """The client sent a `seed` (the batcher only groups seeded requests of the same seed)."""
    logprobs: bool
    token_ids: bool
    """Spell tokens `token_id:<id>` in the logprobs (vLLM's `return_tokens_as_token_ids`)."""
    top_logprobs: int = 0
    """Alternatives per token (`sampling.top_logprobs`); > 0 only with `logprobs`."""
    echo: bool = False
    """Completions: prepend the prompt text to each choice's text."""
    stream: bool = False
    include_usage: bool = False
    """Streaming: a last chunk carries `usage` (`stream_options.include_usage`)."""
    id: str = field(default="")
    """The response id (`cmpl-...`, `chatcmpl-...`)."""

    @property
    def prompt(self) -> Prompt:
        """The first (for chat, the only) prompt."""
        return self.prompts[0]


def json_body(raw: bytes) -> Any:
    """The decoded request body; ApiError 400 when it is not JSON."""
    try:
        return json.loads(raw)
    except ValueError as err:
        raise ApiError(400, f"the request body is not valid JSON: {err}") from err


def parse_request(
    body: Any, chat: bool, model_name: str, default_max_tokens: int, limits: RequestLimits | None = None
) -> ApiCall:
    """Validate an OpenAI request body within `limits`; raises ApiError (400, or 404 for another model).

    The prompts' lengths in tokens are checked by `check_prompt_tokens` (it needs the tokenizer).
    """
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if body.get("model") != model_name:
        raise ApiError(
            404, f"model {body.get('model')!r} is not served here; this server has {model_name!r}", "model"
        )
    check_fields(body, chat)
    request_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    prompts, max_tokens = _parse_prompts(body, chat, request_id)
    logprobs, top_logprobs = _parse_logprobs(body, chat)
    echo = bool(read_field(body, "echo", bool, False))
    stream = bool(read_field(body, "stream", bool, False))
    include_usage = _parse_stream_options(body, stream)
    stop = read_field(body, "stop", (str, list))
    seed = read_field(body, "seed", int)
    try:
        sampling = SamplingParams(
            temperature=float(read_field(body, "temperature", (int, float), 1.0)),
            top_p=float(read_field(body, "top_p", (int, float), 1.0)),
            max_new_tokens=default_max_tokens if max_tokens is None else max_tokens,
            n=read_field(body, "n", int, 1),
            stop=[stop] if isinstance(stop, str) else list(stop or []),
            seed=0 if seed is None else seed,
            top_logprobs=top_logprobs,
        )
    except ValueError as err:  # SamplingParams names its own fields; say the API's names instead
        message = str(err).replace("sampling.", "").replace("max_new_tokens", "max_tokens")
        raise ApiError(400, message) from err
    check_limits(sampling, chat, limits or RequestLimits(), len(prompts))
    token_ids = bool(read_field(body, "return_tokens_as_token_ids", bool, False))
    return ApiCall(
        chat,
        prompts,
        sampling,
        seed is not None,
        logprobs,
        token_ids,
        top_logprobs=top_logprobs,
        echo=echo,
        stream=stream,
        include_usage=include_usage,
        id=request_id,
    )


def check_fields(body: dict[str, Any], chat: bool) -> None:
    """ApiError 400 naming the first field that is neither honoured nor sent at a no-op value."""
    honoured = HONOURED_FIELDS[chat]
    for name, value in body.items():
        if name in honoured or value is None:
            continue
        refusal = REFUSED_FIELDS.get(name)
        if refusal is None:
            endpoint = "chat completions" if chat else "completions"
            raise ApiError(
                400,
                f"`{name}` is not supported by {endpoint} here; honoured fields: {', '.join(sorted(honoured))}",
                name,
            )
        is_no_op, why = refusal
        if not is_no_op(value, body):
            raise ApiError(400, f"`{name}`: {why}", name)


def _parse_prompts(body: dict[str, Any], chat: bool, request_id: str) -> tuple[list[Prompt], int | None]:
    """`(prompts, max_tokens or None)` in the chat or the completions vocabulary."""
    if chat:
        messages = read_field(body, "messages", list, required=True)
        try:
            validate_messages(messages)
        except ValueError as err:
            raise ApiError(400, str(err), "messages") from err
        max_tokens = read_field(body, "max_completion_tokens", int, read_field(body, "max_tokens", int))
        return [Prompt(id=request_id, messages=messages)], max_tokens
    prompt = read_field(body, "prompt", (str, list), required=True)
    texts = [prompt] if isinstance(prompt, str) else prompt
    if not texts:
        raise ApiError(400, "`prompt` is an empty list; send a string or a list of strings", "prompt")
    if not all(isinstance(text, str) for text in texts):
        raise ApiError(
            400,
            "`prompt` must be a string or a list of strings; token-id prompts are not supported, "
            "send the text (POST /detokenize turns ids into text)",
            "prompt",
        )
    ids = [request_id] if len(texts) == 1 else [f"{request_id}-{i}" for i in range(len(texts))]
    prompts = [
        Prompt(id=prompt_id, messages=[], text=text) for prompt_id, text in zip(ids, texts, strict=True)
    ]
    return prompts, read_field(body, "max_tokens", int)


def _parse_logprobs(body: dict[str, Any], chat: bool) -> tuple[bool, int]:
    """`(logprobs wanted, alternatives per token)`."""
    if chat:
        logprobs = bool(read_field(body, "logprobs", bool, False))
        top = read_field(body, "top_logprobs", int, 0)
        if top and not logprobs:
            raise ApiError(400, "`top_logprobs` needs `logprobs: true`", "top_logprobs")
        field_name = "top_logprobs"
    else:
        value = read_field(body, "logprobs", int)
        logprobs, top, field_name = value is not None, value or 0, "logprobs"
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        raise ApiError(400, f"`{field_name}` must be between 0 and {MAX_TOP_LOGPROBS}, got {top}", field_name)
    return logprobs, top


def _parse_stream_options(body: dict[str, Any], stream: bool) -> bool:
    """Whether a streamed answer ends with a usage chunk."""
    options = read_field(body, "stream_options", dict)
    if options is None:
        return False
    if not stream:
        raise ApiError(400, "`stream_options` is only allowed with `stream: true`", "stream_options")
    unknown = sorted(set(options) - {"include_usage"})
    if unknown:
        raise ApiError(400, f"`stream_options` may only hold include_usage, got {unknown}", "stream_options")
    return bool(read_field(options, "include_usage", bool, False))


def check_limits(sampling: SamplingParams, chat: bool, limits: RequestLimits, num_prompts: int = 1) -> None:
    """ApiError 400 when the samples (`n` x prompts) or `max_tokens` exceed `limits` (the field named
    as the client sent it)."""
    if sampling.n * num_prompts > limits.max_n:
        if num_prompts == 1:
            message = f"`n` is {sampling.n}; this server allows at most {limits.max_n}"
        else:
            message = (
                f"{num_prompts} prompts x `n` {sampling.n} = {sampling.n * num_prompts} samples; this "
                f"server allows at most {limits.max_n} per request"
            )
        raise ApiError(400, message, "n")
    if sampling.max_new_tokens > limits.max_tokens:
        field_name = "max_completion_tokens or max_tokens" if chat else "max_tokens"
        raise ApiError(
            400,
            f"`{field_name}` is {sampling.max_new_tokens}; this server allows at most {limits.max_tokens}",
            "max_tokens",
        )


def check_prompt_tokens(num_tokens: int, chat: bool, limits: RequestLimits) -> None:
    """ApiError 400 when a rendered prompt has more than `limits.max_prompt_tokens` tokens."""
    if num_tokens > limits.max_prompt_tokens:
        field_name = "messages" if chat else "prompt"
        raise ApiError(
            400,
            f"`{field_name}` has {num_tokens} tokens; this server allows at most {limits.max_prompt_tokens}",
            field_name,
        )


def parse_reload_request(body: Any) -> tuple[str, int]:
    """`(model directory, policy_version)` of a reload request body; ApiError 400 when malformed."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return read_field(body, "model", str, required=True), read_field(
        body, "policy_version", int, required=True
    )


def read_field(
    body: dict[str, Any],
    name: str,
    kinds: type | tuple[type, ...],
    default: Any = None,
    required: bool = False,
) -> Any:
    """`body[name]` checked against `kinds` (bool is not an int here); `default` when absent or null."""
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(400, f"`{name}` is required", name)
        return default
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ApiError(400, f"`{name}` must be {names}, got {json.dumps(value)[:100]}", name)
    return value


def _usage(call: ApiCall, completions: list[list[Completion]], tokenizer: Any) -> dict[str, int]:
    prompt_tokens = sum(len(encode_prompt(tokenizer, prompt)) for prompt in call.prompts)
    completion_tokens = sum(c.num_tokens for per_prompt in completions for c in per_prompt)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _choices(call: ApiCall, completions: list[list[Completion]]) -> Iterator[tuple[int, Prompt, Completion]]:
    """`(index, prompt, completion)` in OpenAI's order: `index = prompt * n + sample`."""
    index = 0
    for prompt, per_prompt in zip(call.prompts, completions, strict=True):
        for completion in per_prompt:
            yield index, prompt, completion
            index += 1


def _text(call: ApiCall, prompt: Prompt, completion: Completion) -> str:
    return (prompt.text or "") + completion.text if call.echo else completion.text


def build_response(
    call: ApiCall,
    completions: list[list[Completion]],
    model_name: str,
    tokenizer: Any,
    echoed: list[PromptLogprobs] | None = None,
) -> dict[str, Any]:
    """The OpenAI response body for `call` answered by `completions` (one list per prompt); `echoed`
    holds each prompt's logprobs for `echo` with `logprobs`."""
    choices = []
    for index, prompt, completion in _choices(call, completions):
        logprobs = (
            _logprobs_body(completion, call, tokenizer, _echoed(call, echoed, prompt))
            if call.logprobs
            else None
        )
        choice: dict[str, Any] = {
            "index": index,
            "logprobs": logprobs,
            "finish_reason": completion.finish_reason,
        }
        if call.chat:
            choice["message"] = {"role": "assistant", "content": completion.text}
        else:
            choice["text"] = _text(call, prompt, completion)
        choices.append(choice)
    return {
        "id": call.id or call.prompt.id,
        "object": "chat.completion" if call.chat else "text_completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": choices,
        "usage": _usage(call, completions, tokenizer),
    }


class ChunkWriter:
    """Builds the chunks of one streamed answer (see the module doc); `[DONE]` is the caller's."""

    def __init__(self, call: ApiCall, model_name: str, tokenizer: Any) -> None:
        self.call = call
        self.tokenizer = tokenizer
        self.head = {
            "id": call.id or call.prompt.id,
            "object": "chat.completion.chunk" if call.chat else "text_completion",
            "created": int(time.time()),
            "model": model_name,
        }
        self.usage_field = {"usage": None} if call.include_usage else {}

    def _chunk(
        self, index: int, content: dict[str, Any], logprobs: Any, finish: str | None
    ) -> dict[str, Any]:
        choice = {"index": index, **content, "logprobs": logprobs, "finish_reason": finish}
        return {**self.head, "choices": [choice], **self.usage_field}

    def role(self, index: int) -> dict[str, Any]:
        """Chat: the first chunk of a choice."""
        return self._chunk(index, {"delta": {"role": "assistant", "content": ""}}, None, None)

    def text(
        self,
        index: int,
        text: str,
        tokens: Completion | None = None,
        finish: str | None = None,
        echoed: PromptLogprobs | None = None,
    ) -> dict[str, Any]:
        """A chunk of a choice's text; `tokens` (a completion, possibly partial) gives the logprobs
        when they were asked for; `finish` ends the choice."""
        logprobs = None
        if self.call.logprobs and (tokens is not None or echoed is not None):
            tokens = tokens or Completion(prompt_id="", text="", logprobs=[])
            logprobs = _logprobs_body(tokens, self.call, self.tokenizer, echoed)
        content = (
            {"delta": {"content": text} if text or finish is None else {}}
            if self.call.chat
            else {"text": text}
        )
        return self._chunk(index, content, logprobs, finish)

    def usage(self, completions: list[list[Completion]]) -> dict[str, Any]:
        """The last chunk with `stream_options.include_usage`."""
        return {**self.head, "choices": [], "usage": _usage(self.call, completions, self.tokenizer)}


def stream_chunks(
    call: ApiCall,
    completions: list[list[Completion]],
    model_name: str,
    tokenizer: Any,
    echoed: list[PromptLogprobs] | None = None,
) -> Iterator[dict[str, Any]]:
    """The chunks of a streamed answer of finished `completions`: per choice (chat: a role chunk) its
    whole text with its logprobs, then a chunk with its `finish_reason`; usage last when asked."""
    writer = ChunkWriter(call, model_name, tokenizer)
    for index, prompt, completion in _choices(call, completions):
        if call.chat:
            yield writer.role(index)
        text = _text(call, prompt, completion)
        yield writer.text(index, text, completion, echoed=_echoed(call, echoed, prompt))
        yield writer.text(index, "", finish=completion.finish_reason)
    if call.include_usage:
        yield writer.usage(completions)


class IncrementalText:
    """A choice's text as its tokens arrive: `add(token)` returns the text that became safe to send.

    The text is decoded as `HFEngine` does (special tokens skipped), cut at the first stop string,
    and the last `len(longest stop) - 1` characters (a stop string may be completing) and a trailing
    incomplete character (U+FFFD) are held back. What is sent is always a prefix of the final text.
    """

    def __init__(self, tokenizer: Any, stop: list[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.token_ids: list[int] = []
        self.sent = ""

    def add(self, token_id: int) -> str:
        self.token_ids.append(token_id)
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        cuts = [text.find(s) for s in self.stop if s in text]
        if cuts:
            text = text[: min(cuts)]
        else:
            text = text[: max(0, len(text) - self.hold)]
        text = text.rstrip("\ufffd")
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta

    def rest(self, final_text: str) -> str:
        """What is left to send of the choice's `final_text`."""
        return final_text[len(self.sent) :] if final_text.startswith(self.sent) else ""


def models_response(model_name: str, created: int, policy_version: int | None) -> dict[str, Any]:
    """The `GET /v1/models` body: one model card, the served weights' version in its `metadata`."""
    model = {
        "id": model_name,
        "object": "model",
        "created": created,
        "owned_by": "selftaught",
        "metadata": {"policy_version": policy_version},
    }
    return {"object": "list", "data": [model]}


def _token_strings(token_ids: list[int], call: ApiCall, tokenizer: Any) -> list[str]:
    if call.token_ids:
        return [f"{TOKEN_ID_PREFIX}{t}" for t in token_ids]
    return tokenizer.batch_decode([[t] for t in token_ids])


def _echoed(call: ApiCall, echoed: list[PromptLogprobs] | None, prompt: Prompt) -> PromptLogprobs | None:
    """The logprobs of `prompt` when they are echoed."""
    if not (call.echo and echoed):
        return None
    return echoed[call.prompts.index(prompt)]


def _logprobs_body(
    completion: Completion, call: ApiCall, tokenizer: Any, echoed: PromptLogprobs | None = None
) -> dict[str, Any]:
    """Logprobs of the sampled tokens (and their top alternatives) in the chat (`content`) or
    completions (`tokens`) layout; with `echoed`, the prompt's tokens come first."""
    token_ids = completion.token_ids
    logprobs: list[Any] = completion.logprobs or []
    alternatives = completion.meta.get("top_logprobs") or [] if call.top_logprobs else []
    if echoed is not None:
        token_ids = echoed.token_ids + token_ids
        logprobs = echoed.logprobs + logprobs
        alternatives = (echoed.top_logprobs or []) + alternatives
    tokens = _token_strings(token_ids, call, tokenizer)
    tops: list[list[tuple[str, float]]] = [[] for _ in tokens]
    if call.top_logprobs:
        tops = [
            list(
                zip(
                    _token_strings([i for i, _ in step], call, tokenizer), [lp for _, lp in step], strict=True
                )
            )
            for step in alternatives
        ]
    if call.chat:
        return {
            "content": [
                {
                    "token": token,
                    "logprob": logprob,
                    "bytes": list(token.encode("utf-8")),
                    "top_logprobs": [
                        {"token": alt, "logprob": alt_logprob, "bytes": list(alt.encode("utf-8"))}
                        for alt, alt_logprob in top
                    ],
                }
                for token, logprob, top in zip(tokens, logprobs, tops, strict=True)
            ]
        }
    top_dicts: list[dict[str, float] | None] | None = None
    if call.top_logprobs:
        top_dicts = [dict(top) for top in tops]
        if echoed is not None:
            top_dicts[0] = None  # the first prompt token has no context, as its logprob
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": top_dicts, "text_offset": None}


def parse_tokenize_request(body: Any, model_name: str, tokenizer: Any) -> list[int]:
    """The token ids of a vLLM `/tokenize` body (`prompt` or `messages`); ApiError 400 or 404."""
    body = _tool_body(body, model_name, {"prompt", "messages", "add_special_tokens", "add_generation_prompt"})
    if ("prompt" in body) == ("messages" in body):
        raise ApiError(400, "send exactly one of `prompt` and `messages`", "prompt")
    if "prompt" in body:
        add_bos = read_field(body, "add_special_tokens", bool, True)
        return encode_text(tokenizer, read_field(body, "prompt", str, required=True), add_bos=add_bos)
    if not read_field(body, "add_generation_prompt", bool, True):
        raise ApiError(
            400,
            "add_generation_prompt=false is not supported: messages render as generation input",
            "add_generation_prompt",
        )
    messages = read_field(body, "messages", list, required=True)
    try:
        return render_prompt(tokenizer, messages)
    except ValueError as err:
        raise ApiError(400, str(err), "messages") from err


def parse_detokenize_request(body: Any, model_name: str, vocab_size: int) -> list[int]:
    """The token ids of a vLLM `/detokenize` body, each checked to be in the vocabulary."""
    body = _tool_body(body, model_name, {"tokens"})
    tokens = read_field(body, "tokens", list, required=True)
    if not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < vocab_size for t in tokens):
        raise ApiError(400, f"`tokens` must be a list of token ids in [0, {vocab_size})", "tokens")
    return tokens


def _tool_body(body: Any, model_name: str, fields: set[str]) -> dict[str, Any]:
    """`body` checked to be an object for this model (optional) with only `fields` besides it."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if body.get("model") not in (None, model_name):
        raise ApiError(
            404, f"model {body.get('model')!r} is not served here; this server has {model_name!r}", "model"
        )
    unknown = sorted(set(body) - fields - {"model"})
    if unknown:
        raise ApiError(400, f"`{unknown[0]}` is not supported here; honoured: {sorted(fields)}", unknown[0])
    return body
