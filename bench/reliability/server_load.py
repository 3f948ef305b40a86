"""Probe: `selftaught serve` under concurrent load, and its limits checked against the running server.

Starts `selftaught serve --model tiny-world --port 0` as a subprocess (the cached tiny-world student),
then:

1. load: `--clients` concurrent clients (asyncio + httpx, one keep-alive connection each) send
   `POST /v1/completions` for `--seconds` seconds: short world prompts, `max_tokens` 16, half greedy
   and half sampled (temperature 1). Reports requests/s, p50/p95/p99 latency, errors, and the server
   process's RSS and thread count before, at peak and after the load (psutil, sampled every 0.1 s);
2. limit checks against the same server: `n` and `max_tokens` above their caps, a prompt above the
   token cap, a prompt under the cap but longer than the model's context, a body above the body cap
   (a declared `Content-Length`, and a real upload), malformed JSON, PUT / DELETE (a JSON 405),
   an unknown path (a JSON 404), a client that disconnects mid-request with a long generation (the
   server should abandon the work: a request sent right after must not wait for it), and
   `--half-open` connections that send nothing (the thread count must stay bounded; a normal
   client's wait is measured while they stay open);
3. a second server started with `--api-key-env`: a request without the key, with a wrong key,
   with the right key, and `GET /health` without the key.

It prints the CPU model, core count and load average at the start and end, a table of check /
expected / observed / ok, and the load figures.

    .venv/bin/python bench/reliability/server_load.py                 # 64 clients x 20 s, ~2-3 min
    .venv/bin/python bench/reliability/server_load.py --clients 16 --seconds 10 --half-open 0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}
MODEL = "tiny"
KEY_ENV = "SERVER_LOAD_PROBE_KEY"


# --- the server process ---------------------------------------------------------------------------


class Server:
    """`selftaught serve` in a subprocess; `url` once it prints its address."""

    def __init__(self, threads: int, extra: list[str] = (), env: dict[str, str] | None = None) -> None:
        argv = [sys.executable, "-m", "selftaught.cli", "serve", "--model", "tiny-world", "--port", "0"]
        argv += ["--served-model-name", MODEL, *extra]
        self.proc = subprocess.Popen(
            argv,
            env={**ENV, **(env or {}), "OMP_NUM_THREADS": str(threads)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        line = self.proc.stdout.readline()
        match = re.search(r"at (http://\S+/v1)", line)
        if not match:
            self.proc.kill()
            raise SystemExit(f"the server did not start: {line!r}\n{''.join(self.stderr[-20:])}")
        self.url = match.group(1)
        self.host, port = re.match(r"http://([^:/]+):(\d+)", self.url).groups()
        self.port = int(port)
        threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()

    def _drain(self, stream: Any) -> None:
        for line in stream:
            self.stderr.append(line)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Monitor:
    """Samples the server process's RSS (MiB) and thread count every 0.1 s from a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> tuple[float, int]:
        try:
            import psutil

            process = psutil.Process(self.pid)
            return process.memory_info().rss / 2**20, process.num_threads()
        except ImportError:
            status = Path(f"/proc/{self.pid}/status").read_text()
            rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024
            return rss, int(re.search(r"Threads:\s+(\d+)", status).group(1))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss, threads = self.now()
            except Exception:  # the process is gone
                return
            self.samples.append((time.monotonic(), rss, threads))
            time.sleep(0.1)

    def between(self, start: float, end: float) -> tuple[float, int]:
        """Peak RSS and peak thread count sampled in [start, end]."""
        window = [(r, t) for s, r, t in self.samples if start <= s <= end] or [self.now()]
        return max(r for r, _ in window), max(t for _, t in window)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --- load -----------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    tokens: int = 0


def world_prompts(num: int) -> list[str]:
    rng = random.Random(0)
    return ["+".join(str(rng.randint(1, 99)) for _ in range(rng.randint(2, 4))) + "=" for _ in range(num)]


async def load(url: str, clients: int, seconds: float) -> LoadResult:
    prompts = world_prompts(256)
    result = LoadResult()
    deadline = time.monotonic() + seconds

    async def client(i: int) -> None:
        rng = random.Random(i)
        async with httpx.AsyncClient(base_url=url, timeout=120) as http:
            k = 0
            while time.monotonic() < deadline:
                body = {"model": MODEL, "prompt": rng.choice(prompts), "max_tokens": 16}
                body["temperature"] = 0.0 if (i + k) % 2 == 0 else 1.0
                k += 1
                start = time.monotonic()
                try:
                    response = await http.post("/completions", json=body)
                    if response.status_code == 200:
                        result.latencies.append(time.monotonic() - start)
                        result.tokens += response.json()["usage"]["completion_tokens"]
                        continue
                    error = f"HTTP {response.status_code}"
                except httpx.HTTPError as err:
                    error = type(err).__name__
                result.errors[error] = result.errors.get(error, 0) + 1

    start = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    result.seconds = time.monotonic() - start
    return result


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# --- the checks -----------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    expected: str
    observed: str
    ok: bool


def post(url: str, body: Any, timeout: float = 60, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/completions", json=body, timeout=timeout, **kwargs)


def describe(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        text = f"{response.status_code} param={error.get('param')} {str(error.get('message', ''))[:70]!r}"
    except ValueError:
        text = f"{response.status_code} (not JSON: {response.text[:40]!r})"
    return text


def is_json_error(response: httpx.Response, status: int, param: str | None = "any") -> bool:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return response.status_code == status and (param == "any" or error.get("param") == param)


def raw_request(host: str, port: int, head: str, body: bytes = b"", timeout: float = 30) -> str:
    """Send a hand-written request; the status line and body of the answer (or the socket error)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            sock.sendall(head.encode() + body)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data:
                    header, _, rest = data.partition(b"\r\n\r\n")
                    length = re.search(rb"Content-Length: (\d+)", header)
                    if length and len(rest) >= int(length.group(1)):
                        break
        except OSError as err:
            return f"socket error: {type(err).__name__}"
    header, _, rest = data.partition(b"\r\n\r\n")
    return header.split(b"\r\n", 1)[0].decode() + " " + rest.decode(errors="replace")[:80]


def limit_checks(server: Server, monitor: Monitor, half_open: int, timeout_s: float) -> list[Check]:
    url, checks = server.url, []

    def add(name: str, expected: str, observed: str, ok: bool) -> None:
        checks.append(Check(name, expected, observed, ok))
        print(f"   {'ok ' if ok else 'BAD'} {name}: {observed}", flush=True)

    r = post(url, {"model": MODEL, "prompt": "1+1=", "n": 33, "max_tokens": 4})
    add("n=33 (cap 32)", "400 naming n", describe(r), is_json_error(r, 400, "n"))
    r = post(url, {"model": MODEL, "prompt": "1+1=", "max_tokens": 4097})
    add(
        "max_tokens=4097 (cap 4096)",
        "400 naming max_tokens",
        describe(r),
        is_json_error(r, 400, "max_tokens"),
    )

    from selftaught.world.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    rng = random.Random(1)
    long_prompt = " ".join(str(rng.randint(0, 10**6)) for _ in range(6000))
    num_tokens = len(tokenizer(long_prompt)["input_ids"])
    r = post(url, {"model": MODEL, "prompt": long_prompt, "max_tokens": 4})
    add(f"prompt of {num_tokens} tokens (cap 8192)", "400", describe(r), is_json_error(r, 400))
    context_prompt = " ".join(str(rng.randint(0, 10**6)) for _ in range(300))
    num_tokens = len(tokenizer(context_prompt)["input_ids"])
    r = post(url, {"model": MODEL, "prompt": context_prompt, "max_tokens": 4})
    add(f"prompt of {num_tokens} tokens (model context 512)", "400", describe(r), is_json_error(r, 400))

    cap = 8 * 1024 * 1024
    head = (
        f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {cap + 1}\r\n\r\n"
    )
    observed = raw_request(server.host, server.port, head)
    add(
        "declared body of cap+1 bytes (8 MiB + 1), none sent",
        "413 JSON",
        observed,
        observed.startswith("HTTP/1.1 413") and '"error"' in observed,
    )
    big = json.dumps({"model": MODEL, "prompt": "x" * (cap + 1000)}).encode()
    try:
        observed = describe(
            httpx.post(
                f"{url}/completions", content=big, timeout=60, headers={"Content-Type": "application/json"}
            )
        )
        ok = observed.startswith("413")
    except httpx.HTTPError as err:
        observed, ok = f"{type(err).__name__} (the upload was cut; no answer read)", False
    add("real upload of 8 MiB + 1 kB", "413 (or the connection closed)", observed, ok or "Error" in observed)
    r = httpx.post(
        f"{url}/completions", content=b"{not json", timeout=30, headers={"Content-Type": "application/json"}
    )
    add("malformed JSON body", "400 JSON", describe(r), is_json_error(r, 400))

    for method in ("PUT", "DELETE"):
        r = httpx.request(method, f"{url}/completions", timeout=30)
        add(
            f"{method} /v1/completions",
            "405 JSON",
            describe(r) + f" Allow={r.headers.get('allow')}",
            is_json_error(r, 405),
        )
    r = httpx.get(f"{url}/no-such-path", timeout=30)
    add("GET /v1/no-such-path", "404 JSON", describe(r), is_json_error(r, 404))

    add_disconnect_checks(server, add)
    if half_open:
        add_half_open_checks(server, monitor, half_open, timeout_s, add)
    return checks


def timed_greedy(url: str) -> tuple[float, int]:
    start = time.monotonic()
    r = post(url, {"model": MODEL, "prompt": "12+34=", "max_tokens": 16, "temperature": 0}, timeout=300)
    return time.monotonic() - start, r.status_code


LONG_CLIENTS = 8
"""Clients that each send the long request, with distinct seeds: each runs as its own batch, in turn."""


def long_body(seed: int) -> bytes:
    body = {"model": MODEL, "prompt": "7+8=", "n": 32, "max_tokens": 4096, "temperature": 5.0, "seed": seed}
    return json.dumps(body).encode()


def add_disconnect_checks(server: Server, add: Any) -> None:
    url = server.url
    base, _ = timed_greedy(url)
    results: list[tuple[int, int]] = []

    def answered(seed: int) -> None:
        r = httpx.post(
            f"{url}/completions",
            content=long_body(seed),
            timeout=300,
            headers={"Content-Type": "application/json"},
        )
        results.append((r.status_code, r.json()["usage"]["completion_tokens"] if r.status_code == 200 else 0))

    start = time.monotonic()
    threads = [threading.Thread(target=answered, args=(seed,)) for seed in range(LONG_CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    during, _ = timed_greedy(url)
    for thread in threads:
        thread.join()
    full = time.monotonic() - start
    add(
        f"{LONG_CLIENTS} long requests (n=32, max_tokens=4096, T=5, distinct seeds), answered",
        "200 each",
        f"{[s for s, _ in results].count(200)}x200 in {full:.2f}s, {sum(t for _, t in results)} "
        f"tokens; a greedy request sent 0.3 s in took {during:.2f}s (alone: {base:.2f}s)",
        all(s == 200 for s, _ in results),
    )

    sockets = []
    for seed in range(LONG_CLIENTS):
        body = long_body(100 + seed)
        head = (
            f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        sock = socket.create_connection((server.host, server.port))
        sock.sendall(head.encode() + body)
        sockets.append(sock)
    time.sleep(0.3)
    for sock in sockets:
        sock.close()
    after, status = timed_greedy(url)
    ok = status == 200 and after < max(0.25 * full, base + 0.5)
    add(
        f"{LONG_CLIENTS} clients send such requests and hang up 0.3 s in; then a greedy request",
        f"200, well under the {full:.1f}s of the answered ones",
        f"{status} in {after:.2f}s",
        ok,
    )
    statuses = [timed_greedy(url)[1] for _ in range(3)]
    add("server still serves after the disconnects", "200 x3", str(statuses), statuses == [200, 200, 200])


def add_half_open_checks(server: Server, monitor: Monitor, count: int, timeout_s: float, add: Any) -> None:
    _, threads_before = monitor.now()
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect((server.host, server.port))
        except BlockingIOError:
            pass
        sockets.append(sock)
    time.sleep(2)
    _, threads_open = monitor.now()
    start = time.monotonic()
    try:
        waited, status = timed_greedy(server.url)
        observed = f"{status} after {waited:.1f}s"
        served = status == 200
    except httpx.HTTPError as err:
        waited, served = time.monotonic() - start, False
        observed = f"{type(err).__name__} after {waited:.1f}s"
    _, threads_peak = monitor.between(start - 3, time.monotonic())
    add(
        f"{count} half-open connections: server threads",
        "bounded (<= 256 + a few)",
        f"{threads_before} before, {threads_open} with them open, peak {threads_peak}",
        threads_peak <= 256 + threads_before + 4,
    )
    add(
        f"normal client while the {count} are open",
        f"served within 5 s (the idle ones time out after {timeout_s:.0f}s)",
        observed,
        served and waited < 5,
    )
    for sock in sockets:
        sock.close()
    time.sleep(2)
    waited, status = timed_greedy(server.url)
    _, threads_after = monitor.now()
    add(
        "after closing them",
        "200 at once; threads back down",
        f"{status} in {waited:.2f}s; {threads_after} threads",
        status == 200 and waited < 5 and threads_after <= threads_before + 4,
    )


def key_checks(threads: int) -> list[Check]:
    checks = []
    server = Server(threads, ["--api-key-env", KEY_ENV], env={KEY_ENV: "probe-secret"})
    try:
        body = {"model": MODEL, "prompt": "1+1=", "max_tokens": 4}
        for name, headers, status in (
            ("no key, key set", {}, 401),
            ("wrong key", {"Authorization": "Bearer nope"}, 401),
            ("right key", {"Authorization": "Bearer probe-secret"}, 200),
        ):
            r = post(server.url, body, headers=headers)
            ok = r.status_code == status and (status == 200 or is_json_error(r, status))
            checks.append(
                Check(
                    f"keyed server: {name}",
                    str(status),
                    describe(r) if status != 200 else str(r.status_code),
                    ok,
                )
            )
        r = httpx.get(server.url.removesuffix("/v1") + "/health", timeout=30)
        checks.append(
            Check(
                "keyed server: GET /health without the key",
                "200",
                f"{r.status_code} {r.text[:50]}",
                r.status_code == 200,
            )
        )
    finally:
        server.stop()
    for c in checks:
        print(f"   {'ok ' if c.ok else 'BAD'} {c.name}: {c.observed}", flush=True)
    return checks


# --- main -----------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default: 64)")
    parser.add_argument("--seconds", type=float, default=20, help="load duration (default: 20)")
    parser.add_argument("--half-open", type=int, default=300, help="idle connections to open (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="the server's OMP_NUM_THREADS (default: 1)")
    args = parser.parse_args()

    print(f"machine: {machine()}; load average at start: {loadavg()}")
    print(
        f"server: selftaught serve --model tiny-world --port 0 (OMP_NUM_THREADS={args.threads}), defaults "
        f"otherwise; {args.clients} clients x {args.seconds:.0f}s, max_tokens 16, half greedy\n",
        flush=True,
    )
    started = time.monotonic()
    server = Server(args.threads)
    monitor = Monitor(server.proc.pid)
    try:
        time.sleep(0.5)
        rss_start, threads_start = monitor.now()
        timed_greedy(server.url)  # warm up
        load_start = time.monotonic()
        result = asyncio.run(load(server.url, args.clients, args.seconds))
        load_end = time.monotonic()
        rss_peak, threads_peak = monitor.between(load_start, load_end)
        time.sleep(1)
        rss_end, threads_end = monitor.now()
        ok = len(result.latencies)
        print("load:")
        print(
            f"   requests answered: {ok} in {result.seconds:.1f}s = {ok / result.seconds:.1f} req/s "
            f"({result.tokens / result.seconds:.0f} completion tok/s)"
        )
        lat = result.latencies
        print(
            f"   latency p50 / p95 / p99 / max: {percentile(lat, 50):.3f} / {percentile(lat, 95):.3f} / "
            f"{percentile(lat, 99):.3f} / {max(lat, default=float('nan')):.3f} s "
            f"(mean {statistics.fmean(lat or [0]):.3f})"
        )
        print(f"   errors: {sum(result.errors.values())} {result.errors or ''}")
        print(
            f"   server RSS start / peak / end: {rss_start:.0f} / {rss_peak:.0f} / {rss_end:.0f} MiB; "
            f"threads {threads_start} / {threads_peak} / {threads_end}\n",
            flush=True,
        )
        print("limit checks:", flush=True)
        checks = limit_checks(server, monitor, args.half_open, 60.0)
        rss_final, threads_final = monitor.now()
        _, threads_max = monitor.between(0, time.monotonic())
        rss_max, _ = monitor.between(0, time.monotonic())
    finally:
        monitor.stop()
        server.stop()
    checks += key_checks(args.threads)

    print("\n| check | expected | observed | ok |")
    print("|---|---|---|---|")
    for c in checks:
        print(f"| {c.name} | {c.expected} | {c.observed} | {'ok' if c.ok else 'NO'} |")
    print(f"\n{sum(c.ok for c in checks)}/{len(checks)} checks ok")
    print(
        f"load: {args.clients} clients x {result.seconds:.1f}s: {ok / result.seconds:.1f} req/s, "
        f"p50 {percentile(lat, 50) * 1000:.0f} ms, p95 {percentile(lat, 95) * 1000:.0f} ms, "
        f"p99 {percentile(lat, 99) * 1000:.0f} ms, {sum(result.errors.values())} errors; "
        f"RSS {rss_start:.0f} / {rss_peak:.0f} / {rss_end:.0f} MiB (start / peak / end of load), "
        f"{rss_max:.0f} MiB peak over the whole probe, {rss_final:.0f} at its end; threads "
        f"{threads_start} / {threads_peak} / {threads_end} under load, {threads_max} peak over the probe, "
        f"{threads_final} at its end"
    )
    print(f"wall time {time.monotonic() - started:.0f}s; load average at end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
