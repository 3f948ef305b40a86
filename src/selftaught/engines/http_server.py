"""HTTP plumbing of `selftaught serve`: a stdlib threaded server that maps `(method, path)` routes to
JSON answers, checks the bearer key, bounds what one client may ask, and can drop every open
connection at once.

It knows nothing of engines: a route is a function from a `Request` (the raw body, and a way to
ask whether the client is still there) to a JSON-able dict (`engines/server.py` supplies them), a
`TextResponse` (e.g. Prometheus metrics) or an `EventStream` (server-sent events), and any
`ApiError` it raises becomes an OpenAI-style error body. Every refusal is JSON. A dict or text
answer is sent with a `Content-Length`; an event stream with `Transfer-Encoding: chunked`, one
HTTP chunk per `data: ...` event, so the connection stays open for the next request. A stream
whose client hangs up is closed (`close()` on its iterator), so the work behind it stops. One
thread per connection, keep-alive (clients reuse connections), no TLS: bind to loopback or keep an
API key on.

Each answered request is reported to the server's `observer` (`endpoint, status, seconds`; the
endpoint is the route's path, or "other" for unknown paths), which `engines/server.py` turns into
`/metrics`.

Order of checks, so that an unauthenticated or oversized request costs the server little: the key
(from the headers; 401), the method and path (405, 404), the declared body size (411 without a
`Content-Length` on a POST or with a `Transfer-Encoding`, 400 for a malformed one, 413 above
`HttpLimits.max_body_bytes`, the body unread), then the body is read and routed. A refused body is
not read: the connection is closed after the answer (a small one is drained first so that the
client sees the answer rather than a reset). An unexpected error answers a generic 500; the details
go to the server log only.

Limits (`HttpLimits`): every socket read and write of a request times out after `timeout_s` (a
stalled upload gets a 408); a connection waiting for its next request (a new or a keep-alive one)
is closed after `idle_timeout_s`. At most `max_connections` connections are served at once, each by
its own thread. When all are taken, a new connection closes the one that has been idle the longest
(waiting for a request, none in progress), so idle sockets cannot lock clients out; when none is
idle, it waits in the listen backlog until one closes: served late, not refused.
"""

from __future__ import annotations

import hmac
import json
import logging
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from selftaught.engines.openai_protocol import ApiError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """What a route sees of a request."""

    body: bytes
    """The raw body (empty for a GET)."""
    client_gone: Callable[[], bool]
    """True once the client has closed its side of the connection: nobody will read the answer."""


@dataclass(frozen=True)
class TextResponse:
    """A non-JSON answer (status 200), sent with a Content-Length."""

    body: bytes
    content_type: str


@dataclass
class EventStream:
    """Server-sent events (status 200): each item of `events` is sent as `data: <item>\n\n`."""

    events: Iterator[str]


Route = Callable[[Request], "dict[str, Any] | TextResponse | EventStream"]
"""Answers a request (status 200); raises ApiError to refuse it."""

Observer = Callable[[str, int, float], None]
"""Told `(endpoint, status, seconds)` of every answered request."""

DRAIN_LIMIT_BYTES = 64 * 1024
"""A refused request's body up to this size is read and dropped before closing (see the module doc)."""


INTERNAL_ERROR = "internal server error; the server log has the details"
"""The whole answer to an unexpected error: its text could reveal paths or code."""


class DropConnection(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a route: close the connection without an answer, as a stalled or crashed server would."""


@dataclass(frozen=True)
class HttpLimits:
    """What one client may ask of the HTTP layer (see the module doc)."""

    max_body_bytes: int = 8 * 1024 * 1024
    """Largest request body read (413 above it)."""
    timeout_s: float = 60.0
    """Socket timeout of every read and write of a request on a client connection."""
    idle_timeout_s: float = 5.0
    """How long a connection may wait for its next request (uvicorn's keep-alive default)."""
    max_connections: int = 256
    """Connections (hence handler threads) served at once; a new one closes the longest idle one,
    else waits in the listen backlog."""

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "timeout_s", "idle_timeout_s", "max_connections"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


PUBLIC_PATHS = frozenset({"/health"})
"""Paths answered without the API key (liveness probes, as vLLM's `/health`)."""


class JsonHTTPServer(ThreadingHTTPServer):
    """Serves `routes`, keyed by `(method, path)` with the path's trailing slash dropped.

    With `api_key` set, every request must carry `Authorization: Bearer <key>` (401 otherwise).
    Open connections are tracked so that `drop_connections` can cut them, as a dying process would.
    """

    daemon_threads = True
    request_queue_size = 1024  # listen backlog; socketserver's 5 drops connects from concurrent clients

    def __init__(
        self,
        address: tuple[str, int],
        routes: Mapping[tuple[str, str], Route],
        api_key: str | None,
        limits: HttpLimits | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.routes = routes
        self.observer = observer
        self.paths = frozenset(path for _, path in routes)
        self.api_key = api_key
        self.limits = limits or HttpLimits()
        self.connections: set[socket.socket] = set()
        self.idle_since: dict[socket.socket, float] = {}
        """Connections waiting for their next request, and since when (monotonic seconds)."""
        self._connections_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.limits.max_connections)
        self._closing = threading.Event()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve `request` from a new thread once fewer than `max_connections` are served."""
        while not self._slots.acquire(timeout=0.05):
            if self._closing.is_set():  # `shutdown` must not wait for a slot
                self.shutdown_request(request)
                return
            self._close_longest_idle()
        with self._connections_lock:
            self.connections.add(request)
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: nobody else releases the slot
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def set_idle(self, connection: socket.socket, idle: bool) -> None:
        """Mark `connection` as waiting for its next request (or not: a request has arrived)."""
        with self._connections_lock:
            if idle:
                self.idle_since[connection] = time.monotonic()
            else:
                self.idle_since.pop(connection, None)

    def _close_longest_idle(self) -> None:
        """Close the connection idle the longest (its handler then ends and frees its slot)."""
        with self._connections_lock:
            if not self.idle_since:
                return
            connection = min(self.idle_since, key=self.idle_since.__getitem__)
            del self.idle_since[connection]
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        logger.debug(
            "all %d connection slots taken: closed the longest idle one", self.limits.max_connections
        )

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self.connections.discard(request)
            self.idle_since.pop(request, None)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Shut down every open client connection (their requests get no answer)."""
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    disable_nagle_algorithm = True  # headers and body are two writes: without this, +40 ms per answer
    server: JsonHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.limits.timeout_s)  # every read and write of this client

    def handle_one_request(self) -> None:
        """Wait at most `idle_timeout_s` for the next request line (closable meanwhile), then serve it."""
        self.server.set_idle(self.connection, True)
        self.connection.settimeout(self.server.limits.idle_timeout_s)
        self._status: int | None = None
        self._started = time.monotonic()  # reset when the request line arrives
        try:
            super().handle_one_request()
        finally:
            self._observe()

    def parse_request(self) -> bool:
        """A request line arrived: the connection is busy, its reads and writes get `timeout_s`."""
        self.server.set_idle(self.connection, False)
        self.connection.settimeout(self.server.limits.timeout_s)
        self._started = time.monotonic()
        return super().parse_request()

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def _observe(self) -> None:
        """Report the request just answered (if any) to the server's observer."""
        observer, status = self.server.observer, self._status
        if observer is None or status is None:
            return
        path = self.path.split("?")[0].rstrip("/")
        observer(path if path in self.server.paths else "other", status, time.monotonic() - self._started)

    def __getattr__(self, name: str) -> Any:
        """`do_<METHOD>` for every method but GET and POST: a JSON 405 (http.server would send HTML 501)."""
        if name.startswith("do_"):
            return self._serve_other_method
        raise AttributeError(name)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve_other_method(self) -> None:
        self._serve()

    def _serve(self) -> None:
        """Check the key, the route and the body's size, then read the body and route it."""
        route = self._route()
        if route is None:
            return
        raw = self._read_body()
        if raw is None:
            return
        try:
            status, response = 200, route(Request(raw, self._client_gone))
        except DropConnection:
            self.close_connection = True
            return
        except ApiError as err:
            status, response = err.status, err.body()
        except Exception:
            logger.exception("%s %s failed", self.command, self.path)
            status, response = 500, ApiError(500, INTERNAL_ERROR).body()
        if isinstance(response, EventStream):
            self._send_events(response)
        elif isinstance(response, TextResponse):
            self._send_body(200, response.body, response.content_type)
        else:
            self._send_json(status, response)

    def _route(self) -> Route | None:
        """The route for this request, or None after refusing it (401, 405, 404)."""
        path = self.path.rstrip("/")
        if path not in PUBLIC_PATHS and not self._authorized():
            self._refuse(ApiError(401, "missing or wrong API key (Authorization: Bearer <key>)"))
            return None
        route = self.server.routes.get((self.command, path))
        if route is not None:
            return route
        allowed = sorted(method for method, route_path in self.server.routes if route_path == path)
        if allowed or self.command not in ("GET", "POST"):
            self._refuse(
                ApiError(405, f"method {self.command} is not allowed here"),
                {"Allow": ", ".join(allowed or ["GET", "POST"])},
            )
        else:
            self._refuse(ApiError(404, f"no route {self.command} {self.path}"))
        return None

    def _read_body(self) -> bytes | None:
        """The request body, or None after refusing it (411, 400, 413, 408) or losing the client."""
        length = self._declared_length()
        if isinstance(length, ApiError):
            self._send_json(length.status, length.body(), close=True)
            return None
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            timeout = self.server.limits.timeout_s
            self._send_json(
                408, ApiError(408, f"the request body did not arrive within {timeout}s").body(), close=True
            )
            return None
        if len(raw) < length:  # the client hung up mid-body
            self.close_connection = True
            return None
        return raw

    def _declared_length(self) -> int | ApiError:
        """The declared body length, or the ApiError that refuses it."""
        if self.headers.get("Transfer-Encoding") is not None:
            return ApiError(411, "send the body with a Content-Length (no Transfer-Encoding)")
        declared = self.headers.get_all("Content-Length") or []
        if not declared:
            if self.command == "POST":
                return ApiError(411, "a POST needs a Content-Length header")
            return 0
        value = declared[0].strip()
        if len(set(declared)) > 1 or not (value.isascii() and value.isdigit()):
            return ApiError(400, "the Content-Length header must be one non-negative integer")
        cap = self.server.limits.max_body_bytes
        if int(value) > cap:
            return ApiError(
                413, f"the request body has {int(value)} bytes; this server takes at most {cap} bytes"
            )
        return int(value)

    def _refuse(self, error: ApiError, headers: Mapping[str, str] | None = None) -> None:
        """Answer `error` without routing; drain a small body (keeping the connection), else close."""
        length = self._declared_length()
        close = True
        if isinstance(length, int) and length <= DRAIN_LIMIT_BYTES:
            try:
                close = len(self.rfile.read(length)) < length
            except TimeoutError:
                pass
        self._send_json(error.status, error.body(), close=close, headers=headers)

    def _client_gone(self) -> bool:
        """True when the client closed the connection (read side at EOF) or it broke.

        A pipelined next request (bytes waiting) counts as present; it is not consumed.
        """
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)
        except (OSError, ValueError):  # reset, or already closed
            return True

    def _authorized(self) -> bool:
        expected = self.server.api_key
        sent = self.headers.get("Authorization", "")
        return expected is None or hmac.compare_digest(sent.encode(), f"Bearer {expected}".encode())

    def _send_json(
        self, status: int, body: dict[str, Any], close: bool = False, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send_body(status, json.dumps(body).encode(), "application/json", close, headers)

    def _send_events(self, stream: EventStream) -> None:
        """Send `stream` as server-sent events in HTTP chunks; a failed write closes the stream's iterator."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in stream.events:
                self._write_chunk(f"data: {event}\n\n".encode())
            self._write_chunk(b"")  # the last chunk: the answer is complete
        except DropConnection:
            self.close_connection = True
        finally:
            close = getattr(stream.events, "close", None)
            if close is not None:
                close()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _send_body(
        self,
        status: int,
        data: bytes,
        content_type: str,
        close: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")  # also sets self.close_connection
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)
