"""Which server of a fleet answers the next request: least outstanding requests, failed servers rested.

`OpenAIEngine` with several base URLs sends each request to the live server with the fewest
requests in flight (ties: the first listed), at most `max_per_server` at a time on each, so a slow
server gets less work and a fast one more. A server whose attempt failed with a connection error,
a timeout or a 5xx is marked down for `down_s` seconds while another server is up, and its
requests go to the others; after that it gets requests again (the next one is its probe). The
last live server is never marked down: with nowhere else to go, a failure is retried there with
the engine's backoff, as with a single URL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class ServerState:
    """One base URL and what the engine knows about it (kept across `generate` calls)."""

    url: str
    outstanding: int = 0
    """Requests sent and not yet answered."""
    down_until: float = 0.0
    """Clock time before which it gets no requests (0: never failed)."""


class Fleet:
    """The servers as one event loop sees them: `acquire` a server for an attempt, `release` it with
    the outcome. Single-threaded (asyncio): picking and counting happen between awaits."""

    def __init__(
        self,
        servers: list[ServerState],
        *,
        max_per_server: int,
        down_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not servers:
            raise ValueError("a fleet needs at least one server")
        self.servers = servers
        self.max_per_server = max_per_server
        self.down_s = down_s
        self.clock = clock
        self._released = asyncio.Event()

    def is_up(self, server: ServerState) -> bool:
        return server.down_until <= self.clock()

    def others_up(self, server: ServerState) -> bool:
        """True when a server other than `server` can take requests now."""
        return any(self.is_up(s) for s in self.servers if s is not server)

    def pick(self, avoid: ServerState | None = None) -> ServerState | None:
        """The live server with the fewest requests in flight and a free slot (ties: the first
        listed; `avoid` only when no other has a free slot), or None."""
        free = [s for s in self.servers if self.is_up(s) and s.outstanding < self.max_per_server]
        others = [s for s in free if s is not avoid]
        return min(others or free, key=lambda s: s.outstanding, default=None)

    async def acquire(self, avoid: ServerState | None = None) -> ServerState:
        """Wait for a server with a free slot (one coming back from rest counts), and take the slot;
        a retry passes the server that just failed it as `avoid`."""
        while (server := self.pick(avoid)) is None:
            self._released.clear()
            now = self.clock()
            resting = [s.down_until - now for s in self.servers if s.down_until > now]
            try:
                await asyncio.wait_for(self._released.wait(), min(resting) if resting else None)
            except asyncio.TimeoutError:
                pass
        server.outstanding += 1
        return server

    def release(self, server: ServerState, *, failed: bool) -> None:
        """Give the slot back; a failed attempt rests `server` for `down_s` while another server is up."""
        server.outstanding -= 1
        if failed and self.others_up(server):
            server.down_until = self.clock() + self.down_s
        self._released.set()
