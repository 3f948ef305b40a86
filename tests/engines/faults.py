"""Test aid: an `EngineServer.request_hook` that fails chosen generation requests with a 429, a 500
or a stall, the faults a real server (or the network in front of it) deals its clients."""

from __future__ import annotations

import threading
import time
from collections import Counter

from selftaught.engines.http_server import DropConnection
from selftaught.engines.openai_protocol import ApiError
from selftaught.types import StrEnum


class Fault(StrEnum):
    """What `FaultInjector` does to a request."""

    RATE_LIMIT = "429"
    SERVER_ERROR = "500"
    STALL = "stall"
    """Hold the request `stall_s` seconds, then drop the connection without an answer."""


class FaultInjector:
    """Fails chosen generation requests, numbered 0, 1, ... in order of arrival; pass it to
    `EngineServer(request_hook=...)`.

    The numbering lives in the injector, so one injector shared by a server and its restarted
    successor keeps counting. `injected` counts the faults dealt so far.
    """

    def __init__(self, faults: dict[int, Fault], stall_s: float = 5.0) -> None:
        self.faults = faults
        self.stall_s = stall_s
        self.num_requests = 0
        self.injected: Counter[Fault] = Counter()
        self._lock = threading.Lock()

    def __call__(self) -> None:
        """Deal the fault planned for the request arriving now, if any (else let it be served)."""
        fault = self.next_fault()
        if fault is Fault.STALL:
            time.sleep(self.stall_s)
            raise DropConnection
        if fault is not None:
            raise ApiError(int(fault), f"injected fault {fault}")

    def next_fault(self) -> Fault | None:
        """The fault for the request arriving now (None: serve it normally)."""
        with self._lock:
            fault = self.faults.get(self.num_requests)
            self.num_requests += 1
            if fault is not None:
                self.injected[fault] += 1
        return fault
