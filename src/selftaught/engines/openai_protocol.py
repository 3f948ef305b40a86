"""The OpenAI API as `selftaught serve` speaks it: request bodies -> `Prompt` + `SamplingParams`,
completions -> response bodies, refusals -> `ApiError`. No HTTP and no engine here, so the protocol
can be tested and read on its own (`engines/server.py` serves it).

`POST /v1/completions` takes a `prompt` string (rendered with BOS, like `Prompt.text`) and
`POST /v1/chat/completions` takes `messages` (rendered with the chat template). Honoured fields:
`model`, `n`, `temperature`, `top_p`, `max_tokens` (chat also `max_completion_tokens`; default
`default_max_tokens`, not the completions API's 16), `stop`, `seed`, `logprobs` (the sampled token's
logprob; `top_logprobs` is not computed) and vLLM's `return_tokens_as_token_ids` (tokens spelled
`token_id:<id>`). Responses carry `usage` token counts. Other fields are ignored; `stream: true` is
refused. Our one extension is the reload request, `{"model": "<dir>", "policy_version": k}`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from selftaught.data.chat import encode_prompt, validate_messages
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


@dataclass(frozen=True)
class RequestLimits:
    """What one generation request may ask for; larger requests are refused with a 400 naming the field."""

    max_n: int = 32
    """Samples per request (`n`)."""
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


@dataclass
class ApiCall:
    """A parsed generation request."""

    chat: bool
    """Chat completions (True) or completions (False): decides the response layout."""
    prompt: Prompt
    sampling: SamplingParams
    seeded: bool
    """The client sent a `seed` (the batcher only groups seeded requests of the same seed)."""
    logprobs: bool
    token_ids: bool
    """Spell tokens `token_id:<id>` in the logprobs (vLLM's `return_tokens_as_token_ids`)."""


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

    The prompt's length in tokens is checked by `check_prompt_tokens` (it needs the tokenizer).
    """
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if body.get("model") != model_name:
        raise ApiError(
            404, f"model {body.get('model')!r} is not served here; this server has {model_name!r}", "model"
        )
    if body.get("stream"):
        raise ApiError(400, "streaming is not supported; send stream=false", "stream")
    prompt, max_tokens, logprobs = _parse_prompt(body, chat)
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
        )
    except ValueError as err:  # SamplingParams names its own fields; say the API's names instead
        message = str(err).replace("sampling.", "").replace("max_new_tokens", "max_tokens")
        raise ApiError(400, message) from err
    check_limits(sampling, chat, limits or RequestLimits())
    token_ids = bool(read_field(body, "return_tokens_as_token_ids", bool, False))
    return ApiCall(chat, prompt, sampling, seed is not None, logprobs, token_ids)


def check_limits(sampling: SamplingParams, chat: bool, limits: RequestLimits) -> None:
    """ApiError 400 when `n` or `max_tokens` exceed `limits` (the field named as the client sent it)."""
    if sampling.n > limits.max_n:
        raise ApiError(400, f"`n` is {sampling.n}; this server allows at most {limits.max_n}", "n")
    if sampling.max_new_tokens > limits.max_tokens:
        field = "max_completion_tokens or max_tokens" if chat else "max_tokens"
        raise ApiError(
            400,
            f"`{field}` is {sampling.max_new_tokens}; this server allows at most {limits.max_tokens}",
            "max_tokens",
        )


def check_prompt_tokens(num_tokens: int, chat: bool, limits: RequestLimits) -> None:
    """ApiError 400 when the rendered prompt has more than `limits.max_prompt_tokens` tokens."""
    if num_tokens > limits.max_prompt_tokens:
        field = "messages" if chat else "prompt"
        raise ApiError(
            400,
            f"`{field}` has {num_tokens} tokens; this server allows at most {limits.max_prompt_tokens}",
            field,
        )


def parse_reload_request(body: Any) -> tuple[str, int]:
    """`(model directory, policy_version)` of a reload request body; ApiError 400 when malformed."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return read_field(body, "model", str, required=True), read_field(
        body, "policy_version", int, required=True
    )


def _parse_prompt(body: dict[str, Any], chat: bool) -> tuple[Prompt, int | None, bool]:
    """`(prompt, max_tokens or None, logprobs wanted)` in the chat or the completions vocabulary."""
    request_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    if not chat:
        prompt = Prompt(id=request_id, messages=[], text=read_field(body, "prompt", str, required=True))
        return prompt, read_field(body, "max_tokens", int), read_field(body, "logprobs", int) is not None
    messages = read_field(body, "messages", list, required=True)
    try:
        validate_messages(messages)
    except ValueError as err:
        raise ApiError(400, str(err), "messages") from err
    max_tokens = read_field(body, "max_completion_tokens", int, read_field(body, "max_tokens", int))
    logprobs = bool(read_field(body, "logprobs", bool, False))
    return Prompt(id=request_id, messages=messages), max_tokens, logprobs


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


def build_response(
    call: ApiCall, completions: list[Completion], model_name: str, tokenizer: Any
) -> dict[str, Any]:
    """The OpenAI response body for `call` answered by `completions`."""
    choices = []
    for index, completion in enumerate(completions):
        logprobs = _logprobs_body(completion, call, tokenizer) if call.logprobs else None
        choice: dict[str, Any] = {
            "index": index,
            "logprobs": logprobs,
            "finish_reason": completion.finish_reason,
        }
        if call.chat:
            choice["message"] = {"role": "assistant", "content": completion.text}
        else:
            choice["text"] = completion.text
        choices.append(choice)
    prompt_tokens = len(encode_prompt(tokenizer, call.prompt))
    completion_tokens = sum(c.num_tokens for c in completions)
    return {
        "id": call.prompt.id,
        "object": "chat.completion" if call.chat else "text_completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


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


def _logprobs_body(completion: Completion, call: ApiCall, tokenizer: Any) -> dict[str, Any]:
    """Logprobs of the sampled tokens in the chat (`content`) or completions (`tokens`) layout."""
    if call.token_ids:
        tokens = [f"{TOKEN_ID_PREFIX}{t}" for t in completion.token_ids]
    else:
        tokens = tokenizer.batch_decode([[t] for t in completion.token_ids])
    logprobs = completion.logprobs or []
    if call.chat:
        return {
            "content": [
                {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8")), "top_logprobs": []}
                for token, logprob in zip(tokens, logprobs, strict=True)
            ]
        }
    return {"tokens": tokens, "token_logprobs": logprobs, "top_logprobs": None, "text_offset": None}
