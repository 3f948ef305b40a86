"""`selftaught serve`: an OpenAI-compatible HTTP server over any Engine, so a local model can be the
teacher or judge of another process (`OpenAIEngine`, the `openai` client, any OpenAI-speaking tool).

Endpoints: `GET /v1/models`, `POST /v1/completions` (a `prompt` string, rendered with BOS like
`Prompt.text`) and `POST /v1/chat/completions` (`messages`, rendered with the chat template).
Non-streaming; honoured fields: `model`, `n`, `temperature`, `top_p`, `max_tokens` (chat also
`max_completion_tokens`; default `default_max_tokens`, not the completions API's 16), `stop`, `seed`,
`logprobs` (the sampled token's logprob; `top_logprobs` is not computed) and vLLM's
`return_tokens_as_token_ids` (tokens spelled `token_id:<id>`). Responses carry `usage` token counts.
Other fields are ignored; `stream: true` is refused.

Requests are served by a `DynamicBatcher`: the one thread that runs the engine collects the
requests that arrive within `max_wait_s` of the first and runs each group with the same sampling
settings as one `engine.generate` call, so concurrent clients share decode steps. Greedy requests
are exact whatever they are batched with. Sampled requests with a `seed` only share a call with
requests of the same seed, and then one random stream: a seeded sample is reproducible when it
is batched the same way (e.g. sent alone). Requests without a seed get a fresh random one per call.

Weight reload (online RL with a remote generator, `engines/remote.py`): `POST /v1/admin/reload`
with `{"model": "<dir>", "policy_version": k}` loads a model directory written by `save_model` and
serves its weights from the next batch on, answering `{"policy_version": k, "model": "<dir>"}`;
`GET /v1/models` reports the served version in the model card's `metadata`. The directory is
loaded and checked (architecture, parameter names and shapes; 400 otherwise, and the old weights
keep serving) while requests are still served; then the swap waits for the running batch to
finish and holds back the next one, so every request runs on one set of weights, old or new.
Only an `HFEngine` can reload (others: 501). The server reads any directory its process can read
that a client names: keep the API key on when it listens beyond loopback.

Only stdlib HTTP (`ThreadingHTTPServer`): binds 127.0.0.1 unless told otherwise; with `api_key` set,
every request must carry `Authorization: Bearer <key>`. `FaultInjector` lets tests answer chosen
requests with a 429, a 500 or a stall.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from selftaught.data.chat import encode_text, render_prompt, validate_messages
from selftaught.engines.base import Engine, SamplingParams
from selftaught.engines.batcher import BatcherClosed, DynamicBatcher
from selftaught.engines.hf import HFEngine
from selftaught.engines.openai import TOKEN_ID_PREFIX
from selftaught.types import Completion, Prompt, StrEnum

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
RELOAD_ROUTE = "/v1/admin/reload"


class Fault(StrEnum):
    """What `FaultInjector` does to a request."""

    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    STALL = "stall"
    """Hold the request `stall_s` seconds, then drop the connection without an answer."""


class FaultInjector:
    """Test aid: fails chosen generation requests, numbered 0, 1, ... in order of arrival.

    The numbering lives in the injector, so one injector shared by a server and its restarted
    successor keeps counting. `injected` counts the faults dealt so far.
    """

    def __init__(self, faults: dict[int, Fault], stall_s: float = 5.0) -> None:
        self.faults = faults
        self.stall_s = stall_s
        self.num_requests = 0
        self.injected: Counter[Fault] = Counter()
        self._lock = threading.Lock()

    def next_fault(self) -> Fault | None:
        """The fault for the request arriving now (None: serve it normally)."""
        with self._lock:
            fault = self.faults.get(self.num_requests)
            self.num_requests += 1
            if fault is not None:
                self.injected[fault] += 1
        return fault


class ApiError(Exception):
    """A request the server refuses: HTTP status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param

    def body(self) -> dict[str, Any]:
        kind = {401: "authentication_error", 404: "not_found_error", 501: "not_implemented_error"}.get(
            self.status, "invalid_request_error"
        )
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": self.status}}


# --- batching ------------------------------------------------------------------------------------


@dataclass
class _ApiCall:
    """A parsed generation request."""

    chat: bool
    prompt: Prompt
    sampling: SamplingParams
    seeded: bool
    logprobs: bool
    token_ids: bool


def parse_request(body: Any, chat: bool, model_name: str, default_max_tokens: int) -> _ApiCall:
    """Validate an OpenAI request body; raises ApiError (400, or 404 for another model)."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    if body.get("model") != model_name:
        raise ApiError(
            404, f"model {body.get('model')!r} is not served here; this server has {model_name!r}", "model"
        )
    if body.get("stream"):
        raise ApiError(400, "streaming is not supported; send stream=false", "stream")
    prompt, max_tokens, logprobs = _parse_prompt(body, chat)
    stop = _field(body, "stop", (str, list))
    seed = _field(body, "seed", int)
    try:
        sampling = SamplingParams(
            temperature=float(_field(body, "temperature", (int, float), 1.0)),
            top_p=float(_field(body, "top_p", (int, float), 1.0)),
            max_new_tokens=default_max_tokens if max_tokens is None else max_tokens,
            n=_field(body, "n", int, 1),
            stop=[stop] if isinstance(stop, str) else list(stop or []),
            seed=0 if seed is None else seed,
        )
    except ValueError as err:  # SamplingParams names its own fields; say the API's names instead
        message = str(err).replace("sampling.", "").replace("max_new_tokens", "max_tokens")
        raise ApiError(400, message) from err
    token_ids = bool(_field(body, "return_tokens_as_token_ids", bool, False))
    return _ApiCall(chat, prompt, sampling, seed is not None, logprobs, token_ids)


def _parse_prompt(body: dict[str, Any], chat: bool) -> tuple[Prompt, int | None, bool]:
    """`(prompt, max_tokens or None, logprobs wanted)` in the chat or the completions vocabulary."""
    request_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    if not chat:
        prompt = Prompt(id=request_id, messages=[], text=_field(body, "prompt", str, required=True))
        return prompt, _field(body, "max_tokens", int), _field(body, "logprobs", int) is not None
    messages = _field(body, "messages", list, required=True)
    try:
        validate_messages(messages)
    except ValueError as err:
        raise ApiError(400, str(err), "messages") from err
    max_tokens = _field(body, "max_completion_tokens", int, _field(body, "max_tokens", int))
    return Prompt(id=request_id, messages=messages), max_tokens, bool(_field(body, "logprobs", bool, False))


def _field(
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
    call: _ApiCall, completions: list[Completion], model_name: str, tokenizer: Any
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
    prompt_tokens = len(
        render_prompt(tokenizer, call.prompt.messages)
        if call.prompt.text is None
        else encode_text(tokenizer, call.prompt.text, add_bos=True)
    )
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


def _logprobs_body(completion: Completion, call: _ApiCall, tokenizer: Any) -> dict[str, Any]:
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


class _BatchGate:
    """The engine as the batcher sees it: `generate` calls (batches) and weight swaps run one at a time.

    A swap waits for the running batch to finish and holds back the next one until it is done, so
    each batch, hence each request, runs on one set of weights.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._no_swap_waiting = threading.Event()
        self._no_swap_waiting.set()

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        self._no_swap_waiting.wait()  # a lock alone may hand itself back to the batcher thread
        with self._lock:
            return self.engine.generate(prompts, sampling)

    def swap(self, swap_weights: Callable[[], None]) -> None:
        """Run `swap_weights` between two batches."""
        self._no_swap_waiting.clear()
        try:
            with self._lock:
                swap_weights()
        finally:
            self._no_swap_waiting.set()


# --- HTTP ----------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    disable_nagle_algorithm = True  # headers and body are two writes: without this, +40 ms per answer
    server: _HTTPServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        app = self.server.app
        if self._refuse_unauthorized():
            return
        if self.path.rstrip("/") != "/v1/models":
            self._send_json(404, ApiError(404, f"no route GET {self.path}").body())
            return
        model = {
            "id": app.model_name,
            "object": "model",
            "created": app.created,
            "owned_by": "selftaught",
            "metadata": {"policy_version": app.policy_version},
        }
        self._send_json(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:  # noqa: N802
        app = self.server.app
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self._refuse_unauthorized():
            return
        if self.path.rstrip("/") == RELOAD_ROUTE:
            self._send_answer(lambda: app.reload(raw))
            return
        chat = {"/v1/chat/completions": True, "/v1/completions": False}.get(self.path.rstrip("/"))
        if chat is None:
            self._send_json(404, ApiError(404, f"no route POST {self.path}").body())
            return
        fault = app.faults.next_fault() if app.faults is not None else None
        if fault is Fault.STALL:
            app.stopping.wait(app.faults.stall_s)  # type: ignore[union-attr]
            self.close_connection = True
            return
        if fault is not None:
            self._send_json(int(fault), ApiError(int(fault), f"injected fault {fault}").body())
            return
        self._send_answer(lambda: app.complete(raw, chat))

    def _send_answer(self, answer: Callable[[], dict[str, Any]]) -> None:
        """`answer()` with status 200, or the error it raised as an OpenAI-style error body."""
        try:
            status, response = 200, answer()
        except ApiError as err:
            status, response = err.status, err.body()
        except Exception as err:
            logger.exception("%s failed", self.path)
            status, response = 500, ApiError(500, f"{self.path} failed: {type(err).__name__}: {err}").body()
        self._send_json(status, response)

    def _refuse_unauthorized(self) -> bool:
        expected = self.server.app.api_key
        sent = self.headers.get("Authorization", "")
        if expected is None or hmac.compare_digest(sent.encode(), f"Bearer {expected}".encode()):
            return False
        self._send_json(401, ApiError(401, "missing or wrong API key (Authorization: Bearer <key>)").body())
        return True

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so `close` can drop them, as a crashed server would."""

    daemon_threads = True
    request_queue_size = 1024  # listen backlog; socketserver's 5 drops connects from concurrent clients

    def __init__(self, address: tuple[str, int], app: EngineServer) -> None:
        self.app = app
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._connections_lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # the client (or `close`) hung up mid-request
            logger.debug("connection from %s ended early", client_address, exc_info=True)
        else:
            logger.exception("error serving %s", client_address)


class EngineServer:
    """An OpenAI-compatible HTTP server over `engine` (see the module doc).

    Binds at construction (`port=0` picks a free port; `url` says which). `serve_forever` blocks
    (the CLI); `start` serves from a background thread (tests) until `close`, which stops at once:
    open connections are dropped, as if the process had died, and the engine thread is joined.
    """

    def __init__(
        self,
        engine: Engine,
        tokenizer: Any,
        model_name: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        max_wait_s: float = 0.005,
        max_batch_requests: int = 256,
        default_max_tokens: int = 256,
        faults: FaultInjector | None = None,
    ) -> None:
        if host not in LOOPBACK_HOSTS and api_key is None:
            logger.warning(
                "serving on %s without an API key: anyone who can reach it can use the model", host
            )
        self.engine = engine
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.api_key = api_key
        self.default_max_tokens = default_max_tokens
        self.faults = faults
        self.created = int(time.time())
        self.stopping = threading.Event()
        self._httpd = _HTTPServer((host, port), self)  # first: a port in use fails before any thread starts
        self._gate = _BatchGate(engine)
        self._reload_lock = threading.Lock()  # one reload at a time: the answered version is the served one
        self.batcher = DynamicBatcher(self._gate, max_wait_s, max_batch_requests)
        bound_host, bound_port = self._httpd.socket.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}/v1"
        """Base URL for clients, e.g. `http://127.0.0.1:8000/v1`."""
        self._thread: threading.Thread | None = None

    @property
    def num_open_connections(self) -> int:
        """Client connections open now (idle keep-alive ones included)."""
        return len(self._httpd.connections)

    @property
    def policy_version(self) -> int | None:
        """Version of the served weights (None: the engine does not track one)."""
        return getattr(self.engine, "policy_version", None)

    def complete(self, raw: bytes, chat: bool) -> dict[str, Any]:
        """Answer one generation request body (raises ApiError for a bad one)."""
        call = parse_request(_json_body(raw), chat, self.model_name, self.default_max_tokens)
        try:
            completions = self.batcher.submit(call.prompt, call.sampling, call.seeded).result()
        except ValueError as err:  # the engine refused the prompt (e.g. longer than the context)
            raise ApiError(400, str(err)) from err
        except BatcherClosed as err:
            raise ApiError(503, str(err)) from err
        return build_response(call, completions, self.model_name, self.tokenizer)

    def reload(self, raw: bytes) -> dict[str, Any]:
        """Answer a reload request body: serve the weights of a model directory (see the module doc)."""
        engine = self.engine
        if not isinstance(engine, HFEngine):
            raise ApiError(
                501,
                f"this server's engine ({type(engine).__name__}) cannot reload weights; only HFEngine can",
            )
        body = _json_body(raw)
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        directory = _field(body, "model", str, required=True)
        policy_version = _field(body, "policy_version", int, required=True)
        with self._reload_lock:
            try:
                source = engine.load_checkpoint(directory)
            except ValueError as err:
                raise ApiError(400, str(err), "model") from err
            self._gate.swap(lambda: engine.sync_weights(source, policy_version))
        logger.info("serving policy version %d from %s", policy_version, directory)
        return {"policy_version": policy_version, "model": directory}

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (Ctrl+C raises KeyboardInterrupt here)."""
        try:
            self._httpd.serve_forever()
        finally:
            self._release()

    def start(self) -> EngineServer:
        """Serve from a background thread; returns self."""
        # A short poll interval makes `close` quick (it waits for the serving loop to notice).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="selftaught-serve", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving now (see the class doc)."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._release()

    def _release(self) -> None:
        self.stopping.set()
        self._httpd.drop_connections()
        self._httpd.server_close()
        self.batcher.close()

    def __enter__(self) -> EngineServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as err:
        raise ApiError(400, f"the request body is not valid JSON: {err}") from err


def read_api_key(env_name: str | None) -> str | None:
    """The key in the environment variable `env_name` (None when no variable is named)."""
    if env_name is None:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise ValueError(f"--api-key-env names {env_name}, but that environment variable is unset or empty")
    return key
