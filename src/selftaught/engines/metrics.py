"""`GET /metrics` of `selftaught serve`: counters, gauges and a latency histogram in the Prometheus
text exposition format (version 0.0.4), written by hand: no `prometheus_client` dependency.

| metric | type | what |
|---|---|---|
| `selftaught_requests_total{endpoint, status}` | counter | answered HTTP requests (unknown paths: endpoint "other") |
| `selftaught_request_duration_seconds{endpoint}` | histogram | request line to last byte of the answer (streams included) |
| `selftaught_prompt_tokens_total` | counter | prompt tokens of answered generation requests |
| `selftaught_completion_tokens_total` | counter | generated tokens of answered generation requests |
| `selftaught_requests_abandoned_total` | counter | generation requests whose client hung up before the answer |
| `selftaught_queue_length` | gauge | requests waiting for the engine thread |
| `selftaught_open_connections` | gauge | client connections open now (idle keep-alive ones included) |
| `selftaught_policy_version` | gauge | version of the served weights (absent when the engine has none) |
"""

from __future__ import annotations

import math
import threading
from collections import Counter

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Upper bounds of the latency histogram's buckets, in seconds (`+Inf` is added)."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServerMetrics:
    """Thread-safe counts of a server's traffic; `render` writes them with the current gauges."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.abandoned = 0
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """One answered request (the `http_server.Observer` signature)."""
        with self._lock:
            self.requests[(endpoint, status)] += 1
            buckets = self._buckets.setdefault(endpoint, [0] * (len(LATENCY_BUCKETS_S) + 1))
            for i, bound in enumerate((*LATENCY_BUCKETS_S, math.inf)):
                buckets[i] += seconds <= bound
            self._sums[endpoint] = self._sums.get(endpoint, 0.0) + seconds

    def add_tokens(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def add_abandoned(self) -> None:
        with self._lock:
            self.abandoned += 1

    def render(self, gauges: dict[str, tuple[str, float | None]]) -> str:
        """The exposition text; `gauges` maps a name (without prefix) to `(help, value)`, None skipped."""
        with self._lock:
            lines = _family("requests_total", "counter", "HTTP requests answered, by endpoint and status.")
            for (endpoint, status), count in sorted(self.requests.items()):
                lines.append(
                    f'selftaught_requests_total{{endpoint="{_label(endpoint)}",status="{status}"}} {count}'
                )
            lines += _family(
                "request_duration_seconds",
                "histogram",
                "Time from the request line to the end of the answer.",
            )
            for endpoint, buckets in sorted(self._buckets.items()):
                label = f'endpoint="{_label(endpoint)}"'
                for bound, count in zip((*LATENCY_BUCKETS_S, math.inf), buckets, strict=True):
                    le = "+Inf" if bound == math.inf else repr(bound)
                    lines.append(f'selftaught_request_duration_seconds_bucket{{{label},le="{le}"}} {count}')
                lines.append(f"selftaught_request_duration_seconds_sum{{{label}}} {self._sums[endpoint]!r}")
                lines.append(f"selftaught_request_duration_seconds_count{{{label}}} {buckets[-1]}")
            for name, text, value in [
                ("prompt_tokens_total", "Prompt tokens of answered generation requests.", self.prompt_tokens),
                (
                    "completion_tokens_total",
                    "Generated tokens of answered generation requests.",
                    self.completion_tokens,
                ),
                (
                    "requests_abandoned_total",
                    "Generation requests whose client hung up first.",
                    self.abandoned,
                ),
            ]:
                lines += [*_family(name, "counter", text), f"selftaught_{name} {value}"]
        for name, (text, gauge) in gauges.items():
            if gauge is not None:
                lines += [*_family(name, "gauge", text), f"selftaught_{name} {gauge}"]
        return "\n".join(lines) + "\n"


def _family(name: str, kind: str, text: str) -> list[str]:
    return [f"# HELP selftaught_{name} {text}", f"# TYPE selftaught_{name} {kind}"]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
