"""`selftaught serve`: an OpenAI-compatible HTTP server over any Engine, so a local model can be the
teacher or judge of another process (`OpenAIEngine`, the `openai` client, any OpenAI-speaking tool).

Endpoints: `GET /health` (no key needed, as vLLM's), `GET /v1/models`, `POST /v1/completions`,
`POST /v1/chat/completions` (streamed or not; the fields they honour and refuse are tabled in
`engines/openai_protocol.py`), vLLM's `POST /tokenize` and `POST /detokenize`, `GET /metrics`
(Prometheus text, `engines/metrics.py`) and `POST /v1/admin/reload`. Every endpoint but `/health`
needs the key when one is set. The HTTP plumbing (threads, routes, bearer key, event streams) is
`engines/http_server.py`; this module wires an engine to it.

A completions request with a list of prompts submits one batcher request per prompt (they batch
together) and answers when all are done. Streaming (`stream: true`) answers with server-sent
events: with `HFEngine` the headers go out at once and each decode step's text follows as it is
generated (the engine's `on_token`, through the batcher, to a queue the response drains); with
other engines the finished completions are streamed. A streaming client that hangs up (a failed
write, or a closed socket seen while waiting for tokens) is abandoned as a non-streamed one is.

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
Only a `ReloadableEngine` (`HFEngine`) can reload (others: 501).

Reload is off unless the server is built with `allow_reload` directories (the CLI's
`--allow-reload DIR`) and an API key: it reads files the server's process can read. A request
names an absolute directory which, resolved (`..` and symlinks followed), must be one of them or
below one (403 otherwise). Refusals never say what exists on the server's filesystem: a directory
outside the allowed ones gets "not an allowed model directory", one that cannot be loaded or does
not fit the served model gets "could not load"; the reason is in the server log.

Limits: `RequestLimits` caps `n`, `max_tokens` and the prompt's tokens (400 naming the field and
the cap); `http_server.HttpLimits` caps the body size, socket timeouts and connections served at
once (see `engines/http_server.py`). A request whose client disconnects is abandoned: it leaves the
queue if it has not started, and with a `CancellableEngine` (`HFEngine`) its samples stop within a
few decode steps (`engines/hf.py`), so a gone client does not hold the engine (the check runs every
`DISCONNECT_POLL_S`).

Binds 127.0.0.1 unless told otherwise; with `api_key` set, every request must carry
`Authorization: Bearer <key>`.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from selftaught.data.chat import encode_prompt
from selftaught.engines.base import (
    CancellableEngine,
    Engine,
    ReloadableEngine,
    SamplingParams,
    TokenListener,
)
from selftaught.engines.batcher import BatcherClosed, DynamicBatcher, PendingCompletions
from selftaught.engines.http_server import (
    DropConnection,
    EventStream,
    HttpLimits,
    JsonHTTPServer,
    Request,
    Route,
    TextResponse,
)
from selftaught.engines.metrics import CONTENT_TYPE, ServerMetrics
from selftaught.engines.openai_protocol import (
    ApiCall,
    ApiError,
    ChunkWriter,
    IncrementalText,
    PromptLogprobs,
    RequestLimits,
    build_response,
    check_prompt_tokens,
    json_body,
    models_response,
    parse_detokenize_request,
    parse_reload_request,
    parse_request,
    parse_tokenize_request,
    stream_chunks,
)
from selftaught.types import Completion, Prompt

logger = logging.getLogger(__name__)
T = TypeVar("T")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
RELOAD_ROUTE = "/v1/admin/reload"
DISCONNECT_POLL_S = 0.1
"""How often a request waiting for its completions checks that its client is still connected."""


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
        return self.generate_cancellable(prompts, sampling, lambda i: False)

    @property
    def supports_streaming(self) -> bool:
        return bool(getattr(self.engine, "supports_streaming", False))

    def generate_cancellable(
        self,
        prompts: list[Prompt],
        sampling: SamplingParams,
        cancelled: Callable[[int], bool],
        on_token: TokenListener | None = None,
    ) -> list[list[Completion]]:
        engine = self.engine
        if on_token is not None:  # only asked of an engine that `supports_streaming`
            return self.run(lambda: engine.generate_cancellable(prompts, sampling, cancelled, on_token))  # type: ignore[attr-defined]
        if isinstance(engine, CancellableEngine):
            return self.run(lambda: engine.generate_cancellable(prompts, sampling, cancelled))
        return self.run(lambda: engine.generate(prompts, sampling))

    def run(self, work: Callable[[], T]) -> T:
        """`work()` with the engine to itself (between two batches, not during a swap)."""
        self._no_swap_waiting.wait()  # a lock alone may hand itself back to the batcher thread
        with self._lock:
            return work()

    def swap(self, swap_weights: Callable[[], None]) -> None:
        """Run `swap_weights` between two batches."""
        self._no_swap_waiting.clear()
        try:
            with self._lock:
                swap_weights()
        finally:
            self._no_swap_waiting.set()


class EngineServer:
    """An OpenAI-compatible HTTP server over `engine` (see the module doc).

    Binds at construction (`port=0` picks a free port; `url` says which). `serve_forever` blocks
    (the CLI); `start` serves from a background thread (tests) until `close`, which stops at once:
    open connections are dropped, as if the process had died, and the engine thread is joined.

    `request_hook`, when given, is called on the request's thread before each generation request
    is parsed; it may raise `ApiError` (the request is answered with it), raise
    `http_server.DropConnection` (no answer) or block (a stall). Tests inject faults with it.
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
        request_hook: Callable[[], None] | None = None,
        allow_reload: Sequence[str | Path] = (),
        request_limits: RequestLimits | None = None,
        http_limits: HttpLimits | None = None,
    ) -> None:
        if allow_reload and api_key is None:
            raise ValueError(
                "weight reload (--allow-reload) needs an API key (--api-key-env): it loads files from disk"
            )
        self.request_limits = request_limits or RequestLimits()
        if default_max_tokens > self.request_limits.max_tokens:
            raise ValueError(
                f"default_max_tokens ({default_max_tokens}) exceeds max_tokens ({self.request_limits.max_tokens})"
            )
        if host not in LOOPBACK_HOSTS and api_key is None:
            logger.warning(
                "serving on %s without an API key: anyone who can reach it can use the model", host
            )
        self.engine = engine
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.default_max_tokens = default_max_tokens
        self.request_hook = request_hook
        self.created = int(time.time())
        self.reload_roots = [Path(root).resolve() for root in allow_reload]
        """Directories reloads may load from (and below), resolved; empty: reload is off."""
        self.metrics = ServerMetrics()
        # First: a port in use fails before any thread starts.
        self._httpd = JsonHTTPServer(
            (host, port), self._routes(), api_key, http_limits, observer=self.metrics.observe_request
        )
        self._gate = _BatchGate(engine)
        self._reload_lock = threading.Lock()  # one reload at a time: the answered version is the served one
        self.batcher = DynamicBatcher(self._gate, max_wait_s, max_batch_requests)
        bound_host, bound_port = self._httpd.socket.getsockname()[:2]
        self.url = f"http://{bound_host}:{bound_port}/v1"
        """Base URL for clients, e.g. `http://127.0.0.1:8000/v1`."""
        self._thread: threading.Thread | None = None

    def _routes(self) -> dict[tuple[str, str], Route]:
        """What the server answers, by `(method, path)`; the routes read the server's state when called."""
        return {
            ("GET", "/health"): lambda request: {"status": "ok", "policy_version": self.policy_version},
            ("GET", "/v1/models"): lambda request: models_response(
                self.model_name, self.created, self.policy_version
            ),
            ("POST", "/v1/completions"): lambda request: self.complete(request, chat=False),
            ("POST", "/v1/chat/completions"): lambda request: self.complete(request, chat=True),
            ("POST", RELOAD_ROUTE): lambda request: self.reload(request.body),
            ("POST", "/tokenize"): self.tokenize,
            ("POST", "/detokenize"): self.detokenize,
            ("GET", "/metrics"): lambda request: TextResponse(self.render_metrics().encode(), CONTENT_TYPE),
        }

    @property
    def num_open_connections(self) -> int:
        """Client connections open now (idle keep-alive ones included)."""
        return len(self._httpd.connections)

    @property
    def policy_version(self) -> int | None:
        """Version of the served weights (None: the engine does not track one)."""
        return getattr(self.engine, "policy_version", None)

    @property
    def max_model_len(self) -> int | None:
        """Positions the served model attends to (None: the engine does not say)."""
        return getattr(self.engine, "max_positions", None)

    def complete(self, request: Request, chat: bool) -> dict[str, Any] | EventStream:
        """Answer one generation request (raises ApiError for a bad one)."""
        if self.request_hook is not None:
            self.request_hook()
        limits = self.request_limits
        call = parse_request(json_body(request.body), chat, self.model_name, self.default_max_tokens, limits)
        if call.top_logprobs and not getattr(self.engine, "supports_top_logprobs", False):
            raise ApiError(
                400,
                f"this server's engine ({type(self.engine).__name__}) does not compute top logprobs; "
                "ask for the sampled tokens' logprobs only",
                "top_logprobs" if chat else "logprobs",
            )
        scorer = getattr(self.engine, "prompt_logprobs", None)
        if call.echo and call.logprobs and scorer is None:
            raise ApiError(
                400,
                f"`echo` with `logprobs` needs the prompt's logprobs, which this server's engine "
                f"({type(self.engine).__name__}) does not compute; send one of them",
                "echo",
            )
        prompt_ids = [encode_prompt(self.tokenizer, prompt) for prompt in call.prompts]
        prompt_tokens = [len(ids) for ids in prompt_ids]
        for num_tokens in prompt_tokens:
            check_prompt_tokens(num_tokens, chat, limits)
        live = call.stream and self.batcher.supports_streaming and not (call.echo and call.logprobs)
        tokens: queue.Queue[tuple[int, int, int, float, Any]] = queue.Queue()
        try:
            pending = [
                self.batcher.submit(
                    prompt,
                    call.sampling,
                    call.seeded,
                    _enqueue(tokens, i) if live else None,
                )
                for i, prompt in enumerate(call.prompts)
            ]
        except BatcherClosed as err:
            raise ApiError(503, str(err)) from err
        if live:
            return EventStream(self._live_events(call, pending, tokens, request, sum(prompt_tokens)))
        completions = self._wait(pending, request)
        self.metrics.add_tokens(sum(prompt_tokens), sum(c.num_tokens for cs in completions for c in cs))
        echoed = None
        if call.echo and call.logprobs and scorer is not None:
            echoed = [
                PromptLogprobs(ids, *self._gate.run(partial(scorer, ids, call.top_logprobs)))
                for ids in prompt_ids
            ]
        if call.stream:
            return EventStream(self._events(call, completions, echoed))
        return build_response(call, completions, self.model_name, self.tokenizer, echoed)

    def _wait(self, pending: list[PendingCompletions], request: Request) -> list[list[Completion]]:
        """The completions of every prompt of a request; all are abandoned when the client hangs up
        (DropConnection) or one fails."""
        results: list[list[Completion]] = []
        try:
            for future in pending:
                while True:
                    try:
                        results.append(future.result(timeout=DISCONNECT_POLL_S))
                        break
                    except TimeoutError:
                        if request.client_gone():
                            self.metrics.add_abandoned()
                            logger.info("client disconnected: its request was abandoned")
                            raise DropConnection from None
        except ValueError as err:  # the engine refused a prompt (e.g. longer than the context)
            raise ApiError(400, str(err)) from err
        except BatcherClosed as err:
            raise ApiError(503, str(err)) from err
        finally:
            if len(results) < len(pending):
                for future in pending:
                    future.abandon()
        return results

    def _live_events(
        self,
        call: ApiCall,
        pending: list[PendingCompletions],
        tokens: queue.Queue[tuple[int, int, int, float, Any]],
        request: Request,
        prompt_tokens: int,
    ) -> Iterator[str]:
        """The server-sent events of a stream sent as the engine generates (see the module doc)."""
        writer = ChunkWriter(call, self.model_name, self.tokenizer)
        n = call.sampling.n
        texts = [IncrementalText(self.tokenizer, call.sampling.stop) for _ in range(len(pending) * n)]
        unsent: list[list[tuple[int, float, Any]]] = [[] for _ in texts]  # tokens not yet in a chunk
        sent_tokens = [0] * len(texts)
        finished = False
        try:
            for index in range(len(texts)):
                if call.chat:
                    yield json.dumps(writer.role(index))
                if call.echo:
                    yield json.dumps(writer.text(index, call.prompts[index // n].text or ""))
            while not (all(future.done() for future in pending) and tokens.empty()):
                try:
                    i, j, token, logprob, alternatives = tokens.get(timeout=DISCONNECT_POLL_S)
                except queue.Empty:
                    if request.client_gone():
                        logger.info("client disconnected: its request was abandoned")
                        raise DropConnection from None
                    continue
                index = i * n + j
                unsent[index].append((token, logprob, alternatives))
                delta = texts[index].add(token)
                if delta:
                    yield json.dumps(writer.text(index, delta, _tokens_so_far(unsent[index])))
                    sent_tokens[index] += len(unsent[index])
                    unsent[index] = []
            try:
                completions = [future.result() for future in pending]
            except (ValueError, BatcherClosed) as err:  # headers are sent: the error is an event
                finished = True
                status = 503 if isinstance(err, BatcherClosed) else 400
                yield json.dumps(ApiError(status, str(err)).body())
                yield "[DONE]"
                return
            for i, per_prompt in enumerate(completions):
                for j, completion in enumerate(per_prompt):
                    index, k = i * n + j, sent_tokens[i * n + j]
                    rest = Completion(
                        prompt_id="",
                        text="",
                        token_ids=completion.token_ids[k:],
                        logprobs=(completion.logprobs or [])[k:],
                        meta={"top_logprobs": (completion.meta.get("top_logprobs") or [])[k:]},
                    )
                    text = texts[index].rest(completion.text)
                    yield json.dumps(writer.text(index, text, rest, finish=completion.finish_reason))
            finished = True
            self.metrics.add_tokens(prompt_tokens, sum(c.num_tokens for cs in completions for c in cs))
            if call.include_usage:
                yield json.dumps(writer.usage(completions))
            yield "[DONE]"
        finally:
            if not finished and not all(future.done() for future in pending):
                self.metrics.add_abandoned()
                for future in pending:
                    future.abandon()

    def _events(
        self, call: ApiCall, completions: list[list[Completion]], echoed: list[PromptLogprobs] | None
    ) -> Iterator[str]:
        """The server-sent events of a streamed answer: the chunks, then `[DONE]`."""
        for chunk in stream_chunks(call, completions, self.model_name, self.tokenizer, echoed):
            yield json.dumps(chunk)
        yield "[DONE]"

    def tokenize(self, request: Request) -> dict[str, Any]:
        """vLLM's `/tokenize`: the token ids of a prompt or of chat messages (as they are generated from)."""
        ids = parse_tokenize_request(json_body(request.body), self.model_name, self.tokenizer)
        return {"tokens": ids, "count": len(ids), "max_model_len": self.max_model_len}

    def detokenize(self, request: Request) -> dict[str, Any]:
        """vLLM's `/detokenize`: the text of token ids (special tokens kept)."""
        ids = parse_detokenize_request(json_body(request.body), self.model_name, len(self.tokenizer))
        return {"prompt": self.tokenizer.decode(ids)}

    def render_metrics(self) -> str:
        """The `/metrics` text (see `engines/metrics.py`)."""
        return self.metrics.render(
            {
                "queue_length": ("Requests waiting for the engine thread.", self.batcher.queue_length),
                "open_connections": ("Client connections open now.", self.num_open_connections),
                "policy_version": ("Version of the served weights.", self.policy_version),
            }
        )

    def reload(self, raw: bytes) -> dict[str, Any]:
        """Answer a reload request body: serve the weights of a model directory (see the module doc)."""
        if not self.reload_roots:
            raise ApiError(
                403, "weight reload is off: start the server with --allow-reload DIR and --api-key-env"
            )
        engine = self.engine
        if not isinstance(engine, ReloadableEngine):
            raise ApiError(
                501,
                f"this server's engine ({type(engine).__name__}) cannot reload weights; only an engine "
                "with load_checkpoint and sync_weights (HFEngine) can",
            )
        requested, policy_version = parse_reload_request(json_body(raw))
        directory = self._allowed_directory(requested)
        with self._reload_lock:
            try:
                source = engine.load_checkpoint(str(directory))
            except ValueError as err:
                logger.warning("reload of %s refused: %s", directory, err)
                raise ApiError(
                    400,
                    "could not load the model directory as the served model (the server log says why)",
                    "model",
                ) from err
            self._gate.swap(lambda: engine.sync_weights(source, policy_version))
        logger.info("serving policy version %d from %s", policy_version, directory)
        return {"policy_version": policy_version, "model": requested}

    def _allowed_directory(self, requested: str) -> Path:
        """`requested` resolved, when it is an absolute path in or below an allowed directory (else 403)."""
        try:
            directory = Path(requested).resolve() if Path(requested).is_absolute() else None
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
            directory = None
        if directory is None or not any(directory.is_relative_to(root) for root in self.reload_roots):
            logger.warning("reload of %r refused: not under an --allow-reload directory", requested)
            raise ApiError(403, "not an allowed model directory", "model")
        return directory

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
        self._httpd.drop_connections()
        self._httpd.server_close()
        self.batcher.close()

    def __enter__(self) -> EngineServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_api_key(env_name: str | None) -> str | None:
    """The key in the environment variable `env_name` (None when no variable is named)."""
    if env_name is None:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise ValueError(f"--api-key-env names {env_name}, but that environment variable is unset or empty")
    return key


def _enqueue(
    tokens: queue.Queue[tuple[int, int, int, float, Any]], prompt_index: int
) -> Callable[[int, int, float, Any], None]:
    """A batcher token listener that queues prompt `prompt_index`'s tokens for its stream."""

    def put(sample: int, token: int, logprob: float, alternatives: Any) -> None:
        tokens.put((prompt_index, sample, token, logprob, alternatives))

    return put


def _tokens_so_far(tokens: list[tuple[int, float, Any]]) -> Completion:
    """Streamed `(token, logprob, alternatives)` as a partial completion (for its logprobs)."""
    return Completion(
        prompt_id="",
        text="",
        token_ids=[token for token, _, _ in tokens],
        logprobs=[logprob for _, logprob, _ in tokens],
        meta={"top_logprobs": [alternatives for _, _, alternatives in tokens]},
    )
