"""HTTP plumbing of `selftaught serve`: a stdlib threaded server that maps `(method, path)` routes to
JSON answers, checks the bearer key, and can drop every open connection at once.

It knows nothing of engines: a route is a function from the raw request body to a JSON-able dict
(`engines/server.py` supplies them), and any `ApiError` it raises becomes an OpenAI-style error body.
One thread per connection, keep-alive (clients reuse connections), no TLS: bind to loopback or
keep an API key on.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from selftaught.engines.openai_protocol import ApiError

logger = logging.getLogger(__name__)

Route = Callable[[bytes], dict[str, Any]]
"""Answers a request: raw body in, JSON body out (status 200); raises ApiError to refuse it."""


class DropConnection(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a route: close the connection without an answer, as a stalled or crashed server would."""


class JsonHTTPServer(ThreadingHTTPServer):
    """Serves `routes`, keyed by `(method, path)` with the path's trailing slash dropped.

    With `api_key` set, every request must carry `Authorization: Bearer <key>` (401 otherwise).
    Open connections are tracked so that `drop_connections` can cut them, as a dying process would.
    """

    daemon_threads = True
    request_queue_size = 1024  # listen backlog; socketserver's 5 drops connects from concurrent clients

    def __init__(
        self, address: tuple[str, int], routes: Mapping[tuple[str, str], Route], api_key: str | None
    ) -> None:
        self.routes = routes
        self.api_key = api_key
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

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        """Read the body (so a refused request leaves the connection usable), check the key, route."""
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._authorized():
            self._send_json(
                401, ApiError(401, "missing or wrong API key (Authorization: Bearer <key>)").body()
            )
            return
        route = self.server.routes.get((method, self.path.rstrip("/")))
        if route is None:
            self._send_json(404, ApiError(404, f"no route {method} {self.path}").body())
            return
        try:
            status, response = 200, route(raw)
        except DropConnection:
            self.close_connection = True
            return
        except ApiError as err:
            status, response = err.status, err.body()
        except Exception as err:
            logger.exception("%s failed", self.path)
            status, response = 500, ApiError(500, f"{self.path} failed: {type(err).__name__}: {err}").body()
        self._send_json(status, response)

    def _authorized(self) -> bool:
        expected = self.server.api_key
        sent = self.headers.get("Authorization", "")
        return expected is None or hmac.compare_digest(sent.encode(), f"Bearer {expected}".encode())

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)
