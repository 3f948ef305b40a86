"""Generation through any OpenAI-compatible server: vLLM, SGLang, llama.cpp, hosted APIs, `selftaught serve`.

A prompt with `text` goes to `/completions` as a raw prompt string; any other prompt goes to
`/chat/completions` with its `messages`. Requests run concurrently on an asyncio loop (at most
`max_concurrency` in flight); a 429, a 5xx, a timeout or a connection error is retried with
exponential backoff and jitter, any other error status fails the call with the server's message.

Samples and seeds. By default every sample is its own request (`n = 1`, `seed = sampling.seed + j`
for sample j), so a retry or a cache hit concerns exactly one sample and servers that ignore `n`
still return `sampling.n` samples. With `per_sample_requests = False` a prompt's samples share one
request (`n = sampling.n`, `seed = sampling.seed`): fewer requests and one prefill on the server.

Log-probabilities and token ids. With `logprobs = True`, `Completion.logprobs` holds the server's
per-token logprobs (chat: `logprobs: true`; completions: `logprobs: 1`). Token ids come only from
servers that can return them (vLLM and `selftaught serve` with `return_tokens_as_token_ids`, asked
for by `token_ids = True`); otherwise `Completion.token_ids` is empty and `logprobs` follows the
server's own tokens. `finish_reason` "stop" and "length" pass through, as does any other value a
server sends ("content_filter", "tool_calls"); a missing one becomes "unknown".

Cache. With `cache_path` set, every response is stored (sqlite3, `engines/cache.py`) under a hash
of its request (endpoint, model, prompt, sampling, seed, sample index; not the host, so a server
may move), and an identical request is answered from the file: an interrupted job resumes where
it stopped without paying twice. Do not reuse a cache across weight updates served under the same
model name.

Fleet. `base_url` may be a list of servers serving the same model (`engines/fleet.py`): each
request goes to the live server with the fewest requests in flight (at most `max_concurrency` on
each); a server that refuses connections, times out or answers 5xx is rested for `server_down_s`
seconds and the failed request is retried at once on another server (retries are still counted
against `max_retries`). The cache key has no URL, so one cache serves the whole fleet, and a
response is the same whichever server gave it when sampling is greedy or seeded (`selftaught
serve`, vLLM with a seed). `stats.requests_by_server` shows where the work went.

Ray workers and other processes: the engine pickles as its config (`__reduce__`), so a stage
function that holds it can be shipped to a worker, which builds its own HTTP client, cache
connection and `stats`. Processes of one machine share the sqlite cache file; on a cluster each
node opens the path on its own disk (sqlite over a network filesystem is not safe).

The API key is read from the environment variable named by `api_key_env` when a call starts and
lives only in that call's HTTP client: never in the config, the cache, or log messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from selftaught.engines.base import SamplingParams, ServerError
from selftaught.engines.cache import RequestCache, request_key
from selftaught.engines.fleet import Fleet, ServerState
from selftaught.types import Completion, Prompt

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

TOKEN_ID_PREFIX = "token_id:"
"""How vLLM (and `selftaught serve`) spell a token under `return_tokens_as_token_ids`."""


@dataclass
class OpenAIConfig:
    """Where and how to reach an OpenAI-compatible server."""

    model: str = ""
    """Model name the server serves (see its `/v1/models`)."""
    base_url: str | list[str] = "http://127.0.0.1:8000/v1"
    """API root including the version path, e.g. `https://api.openai.com/v1`; a list of them: a fleet
    of servers serving the same model, requests spread by load (see the module doc)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable that holds the API key (the key itself is never stored).
    When the variable is unset, requests carry no `Authorization` header (local servers)."""
    per_sample_requests: bool = True
    """One request per sample (exact caching and retries); False: one request per prompt with `n`."""
    logprobs: bool = False
    """Ask for per-token logprobs of the sampled tokens."""
    token_ids: bool = False
    """Also ask for token ids (vLLM's `return_tokens_as_token_ids`); needs `logprobs`."""
    max_concurrency: int = 32
    """Requests in flight at once on each server; a GPU server batches them, so size this to its batch."""
    timeout_s: float = 120.0
    """Per-request limit, connection to last byte; a request that takes longer is retried."""
    max_retries: int = 8
    """Retries of one request after a 429, 5xx, timeout or connection error before the call fails."""
    backoff_s: float = 0.5
    """Wait before the first retry (times a random 0.5-1 jitter), doubled on each further retry."""
    max_backoff_s: float = 30.0
    """Cap on one wait, also on a server's `Retry-After`."""
    cache_path: str | None = None
    """sqlite3 file of responses by request, read before calling the server; None: no cache."""
    server_down_s: float = 10.0
    """With several base URLs: how long a server that failed gets no requests (while another is up)."""

    @property
    def base_urls(self) -> list[str]:
        """`base_url` as a list (one item for a single server)."""
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    def __post_init__(self) -> None:
        if not self.base_urls:
            raise ValueError("openai.base_url is an empty list; give at least one server URL")
        for url in self.base_urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"openai.base_url must start with http:// or https://, got {url!r}")
        if len(set(self.base_urls)) != len(self.base_urls):
            raise ValueError(f"openai.base_url lists a server twice: {self.base_urls}")
        if self.token_ids and not self.logprobs:
            raise ValueError("openai.token_ids needs openai.logprobs=true (servers return ids with logprobs)")
        for name in ("max_concurrency", "timeout_s", "backoff_s", "max_backoff_s", "server_down_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"openai.{name} must be > 0, got {getattr(self, name)}")
        if self.max_retries < 0:
            raise ValueError(f"openai.max_retries must be >= 0, got {self.max_retries}")


@dataclass
class RequestStats:
    """What the engine did so far, over all its calls."""

    num_http_requests: int = 0
    """HTTP attempts, retries included."""
    num_cache_hits: int = 0
    """Requests answered from the cache without calling the server."""
    retry_reasons: Counter[str] = field(default_factory=Counter)
    """Failed attempts by cause: `HTTP 429`, `HTTP 500`, `TimeoutError`, `ConnectError`, ..."""
    requests_by_server: Counter[str] = field(default_factory=Counter)
    """Answered requests (HTTP 200) by base URL."""
    failures_by_server: Counter[str] = field(default_factory=Counter)
    """Failed attempts by base URL."""


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request of a `generate` call and the samples it answers."""

    prompt_index: int
    first_sample: int
    """Index j of the first sample it answers; it answers `body["n"]` consecutive ones."""
    path: str
    """`/completions` or `/chat/completions`, relative to `base_url`."""
    body: dict[str, Any]
    cache_key: str


class OpenAIEngine:
    """The Engine Protocol over an OpenAI-compatible HTTP API (see the module doc for the mapping).

    `generate` is synchronous: it runs its own event loop, in a worker thread when the caller
    already runs one (a notebook); async code can `await agenerate(...)` instead. `stats` counts
    HTTP attempts, cache hits and retries. `transport` replaces httpx's network transport (tests).
    """

    def __init__(
        self,
        config: OpenAIConfig,
        *,
        show_progress: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not config.model:
            raise ValueError("openai.model is empty; set it to a model name the server lists at /v1/models")
        self.config = config
        self.cache = RequestCache(config.cache_path) if config.cache_path else None
        self.stats = RequestStats()
        self.show_progress = show_progress
        self._transport = transport
        self.servers = [ServerState(url) for url in config.base_urls]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its config: a worker process builds its own client, cache connection and stats."""
        if self._transport is not None:
            raise TypeError("an OpenAIEngine with a custom transport cannot be sent to another process")
        return (_rebuild_engine, (self.config, self.show_progress))

    def generate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """`result[i][j]` is the j-th of `sampling.n` samples for `prompts[i]` (Engine Protocol)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(prompts, sampling))
        # A running loop cannot be re-entered; this blocks its thread like any synchronous engine.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self.agenerate(prompts, sampling)).result()

    async def agenerate(self, prompts: list[Prompt], sampling: SamplingParams) -> list[list[Completion]]:
        """`generate` for callers inside an event loop."""
        requests = build_requests(prompts, sampling, self.config)
        cfg = self.config
        fleet = Fleet(self.servers, max_per_server=cfg.max_concurrency, down_s=cfg.server_down_s)
        with tqdm(total=len(requests), desc="requests", disable=not self.show_progress) as progress:
            async with self._client() as client:
                tasks = [asyncio.ensure_future(self._fetch(client, fleet, r, progress)) for r in requests]
                try:
                    responses = await asyncio.gather(*tasks)
                except BaseException:
                    # Finished responses are already cached; stop the rest before the client closes.
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise
        return assemble_completions(prompts, sampling.n, requests, responses, self.config.token_ids)

    def _client(self) -> httpx.AsyncClient:
        import httpx

        api_key = os.environ.get(self.config.api_key_env)
        limit = self.config.max_concurrency * len(self.config.base_urls)
        return httpx.AsyncClient(
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=httpx.Timeout(self.config.timeout_s),
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
            transport=self._transport,
        )

    async def _fetch(
        self, client: httpx.AsyncClient, fleet: Fleet, request: ApiRequest, progress: tqdm
    ) -> dict[str, Any]:
        """The response to `request`: from the cache, else from a server of the fleet (then cached)."""
        response = self.cache.get(request.cache_key) if self.cache is not None else None
        if response is not None:
            self.stats.num_cache_hits += 1
        else:
            response = await self._post_with_retries(client, fleet, request)
            if self.cache is not None:
                self.cache.put(request.cache_key, response)
        progress.update(1)
        return response

    async def _post_with_retries(
        self, client: httpx.AsyncClient, fleet: Fleet, request: ApiRequest
    ) -> dict[str, Any]:
        """Attempts on the fleet's least loaded live server until one answers 200 or retries run out.

        A retry goes to another server when one has a free slot. After a fault it goes at once when
        another server is live; on the last live server, or after a 429 (load, not a fault: the
        server is not rested), it waits with backoff first."""
        cfg = self.config
        server: ServerState | None = None
        for attempt in range(cfg.max_retries + 1):
            server = await fleet.acquire(avoid=server)
            try:
                response, reason, retry_after = await self._attempt(client, server, request)
            except BaseException:  # a 4xx (the request's fault) or a cancelled call: not the server's
                fleet.release(server, failed=False)
                raise
            failed = response is None and reason != "HTTP 429"
            fleet.release(server, failed=failed)
            if response is not None:
                self.stats.requests_by_server[server.url] += 1
                return response
            self.stats.retry_reasons[reason] += 1
            self.stats.failures_by_server[server.url] += 1
            if attempt == cfg.max_retries:
                break
            if failed and fleet.others_up(server):
                logger.info(
                    "%s%s failed (%s); retry %d on another server",
                    server.url,
                    request.path,
                    reason,
                    attempt + 1,
                )
                continue
            delay = backoff_delay(attempt, cfg.backoff_s, cfg.max_backoff_s, retry_after)
            logger.info("%s failed (%s); retry %d in %.2fs", request.path, reason, attempt + 1, delay)
            await asyncio.sleep(delay)
        assert server is not None  # the loop ran at least once
        raise ServerError(
            f"{server.url}{request.path} failed {cfg.max_retries + 1} times, last with {reason}; "
            "check the server, or raise openai.max_retries / openai.timeout_s"
        )

    async def _attempt(
        self, client: httpx.AsyncClient, server: ServerState, request: ApiRequest
    ) -> tuple[dict[str, Any] | None, str, str | None]:
        """`(response, "", None)` on HTTP 200, else `(None, reason, Retry-After)`; other 4xx raise."""
        import httpx

        self.stats.num_http_requests += 1
        url = server.url.rstrip("/") + request.path
        try:
            response = await asyncio.wait_for(client.post(url, json=request.body), self.config.timeout_s)
        except (httpx.TransportError, asyncio.TimeoutError) as err:
            return None, "TimeoutError" if isinstance(err, asyncio.TimeoutError) else type(err).__name__, None
        if response.status_code == 200:
            return response.json(), "", None
        if response.status_code != 429 and response.status_code < 500:
            raise ValueError(request_error_message(response, self.config))
        return None, f"HTTP {response.status_code}", response.headers.get("Retry-After")


def _rebuild_engine(config: OpenAIConfig, show_progress: bool) -> OpenAIEngine:
    """`OpenAIEngine` from its pickled form (`OpenAIEngine.__reduce__`)."""
    return OpenAIEngine(config, show_progress=show_progress)


def build_requests(prompts: list[Prompt], sampling: SamplingParams, config: OpenAIConfig) -> list[ApiRequest]:
    """The HTTP requests of one `generate` call, in prompt-then-sample order."""
    samples_per_request = 1 if config.per_sample_requests else sampling.n
    requests = []
    for i, prompt in enumerate(prompts):
        for first in range(0, sampling.n, samples_per_request):
            path, body = request_body(prompt, sampling, config, samples_per_request, sampling.seed + first)
            key = request_key({"path": path, "body": body, "sample_index": first})
            requests.append(ApiRequest(i, first, path, body, key))
    return requests


def request_body(
    prompt: Prompt, sampling: SamplingParams, config: OpenAIConfig, n: int, seed: int
) -> tuple[str, dict[str, Any]]:
    """`(path, JSON body)` asking for `n` samples of `prompt`: raw `text` -> completions, else chat."""
    body: dict[str, Any] = {
        "model": config.model,
        "n": n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_new_tokens,
        "seed": seed,
    }
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if config.token_ids:
        body["return_tokens_as_token_ids"] = True
    if prompt.text is not None:
        body["prompt"] = prompt.text
        if config.logprobs:
            body["logprobs"] = 1
        return "/completions", body
    if not prompt.messages:
        raise ValueError(f"prompt {prompt.id!r} has neither `text` nor `messages`; give it one of them")
    body["messages"] = prompt.messages
    if config.logprobs:
        body["logprobs"] = True
    return "/chat/completions", body


def assemble_completions(
    prompts: list[Prompt],
    n: int,
    requests: list[ApiRequest],
    responses: list[dict[str, Any]],
    with_token_ids: bool,
) -> list[list[Completion]]:
    """`result[i][j]`: each response's choices put at their (prompt, sample) slot."""
    results: list[list[Completion | None]] = [[None] * n for _ in prompts]
    for request, response in zip(requests, responses, strict=True):
        choices = sorted(response.get("choices") or [], key=lambda choice: choice["index"])
        if len(choices) != request.body["n"]:
            raise RuntimeError(
                f"{request.path}: the server returned {len(choices)} choices for n={request.body['n']}; "
                "set openai.per_sample_requests=true for servers that ignore `n`"
            )
        for offset, choice in enumerate(choices):
            completion = parse_choice(choice, request.path == "/chat/completions", with_token_ids)
            completion.prompt_id = prompts[request.prompt_index].id
            completion.meta = {"sample_index": request.first_sample + offset, "seed": request.body["seed"]}
            results[request.prompt_index][request.first_sample + offset] = completion
    assert all(c is not None for row in results for c in row), "every (prompt, sample) slot is filled once"
    return results  # type: ignore[return-value]


def parse_choice(choice: dict[str, Any], chat: bool, with_token_ids: bool) -> Completion:
    """A `Completion` (without prompt id and meta) from one element of a response's `choices`."""
    text = choice["message"].get("content") if chat else choice["text"]
    token_ids, logprobs = parse_logprobs(choice.get("logprobs"), chat, with_token_ids)
    return Completion(
        prompt_id="",
        text=text or "",
        token_ids=token_ids,
        logprobs=logprobs,
        finish_reason=choice.get("finish_reason") or "unknown",
    )


def parse_logprobs(
    logprobs: dict[str, Any] | None, chat: bool, with_token_ids: bool
) -> tuple[list[int], list[float] | None]:
    """`(token_ids, logprobs)` of a choice's `logprobs` field (chat or completions layout).

    `token_ids` is empty unless they were asked for; then every token must be `token_id:<int>`.
    """
    if logprobs is None:
        return [], None
    if chat:
        entries = logprobs.get("content") or []
        tokens, values = [e["token"] for e in entries], [e["logprob"] for e in entries]
    else:
        tokens, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
    if not with_token_ids:
        return [], [float(v) for v in values]
    if not all(isinstance(t, str) and t.startswith(TOKEN_ID_PREFIX) for t in tokens):
        raise ValueError(
            "the server did not return token ids (tokens like 'token_id:42'); it needs vLLM's "
            "return_tokens_as_token_ids, or set openai.token_ids=false"
        )
    return [int(t.removeprefix(TOKEN_ID_PREFIX)) for t in tokens], [float(v) for v in values]


def backoff_delay(attempt: int, base_s: float, max_s: float, retry_after: str | None = None) -> float:
    """Seconds to wait before retry `attempt + 1`: `base_s * 2**attempt`, capped at `max_s`, times a
    jitter in [0.5, 1] (so clients that failed together do not retry together); at least the server's
    `Retry-After` seconds (also capped at `max_s`) when it sent one."""
    delay = min(max_s, base_s * 2**attempt) * random.uniform(0.5, 1.0)
    if retry_after is not None:
        try:
            delay = max(delay, min(max_s, float(retry_after)))
        except ValueError:  # an HTTP date instead of seconds: keep our own delay
            pass
    return delay


def request_error_message(response: httpx.Response, config: OpenAIConfig) -> str:
    """A user-facing message for a non-retryable error status (4xx other than 429)."""
    try:
        detail = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        detail = response.text[:500]
    hint = {
        401: f"set the environment variable {config.api_key_env} to the server's API key",
        403: f"the key in {config.api_key_env} may not use this model",
        404: f"check openai.base_url ({config.base_url}) and openai.model ({config.model!r})",
    }.get(response.status_code, "check the request settings")
    return f"{response.request.url.path}: HTTP {response.status_code}: {detail} ({hint})"
