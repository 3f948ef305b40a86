"""OpenAIEngine over a fleet of fake servers (async httpx.MockTransport): load spreading, failover
after connection errors, 5xx and timeouts, the shared cache, pickling; the Fleet's picking rules."""

from __future__ import annotations

import asyncio
import json
import pickle

import httpx
import pytest

from selftaught.engines.base import SamplingParams, ServerError
from selftaught.engines.fleet import Fleet, ServerState
from selftaught.engines.openai import OpenAIConfig, OpenAIEngine
from selftaught.types import Prompt

A, B, C = "http://a.test/v1", "http://b.test/v1", "http://c.test/v1"
PROMPTS = [Prompt(id=f"p{i}", messages=[], text=f"question {i}") for i in range(24)]
SAMPLING = SamplingParams(n=2, seed=5, max_new_tokens=4)


class FakeFleet:
    """Servers by host: each answers after `delay_s[host]` with a text that names the request only
    (not the server), or fails as `faults[host]` says: an exception, a status code, or "hang"."""

    def __init__(self, delay_s: dict[str, float] | None = None, faults: dict | None = None) -> None:
        self.delay_s = delay_s or {}
        self.faults = faults or {}
        self.answered: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self._in_flight: dict[str, int] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self._in_flight[host] = self._in_flight.get(host, 0) + 1
        self.max_in_flight[host] = max(self.max_in_flight.get(host, 0), self._in_flight[host])
        try:
            fault = self.faults.get(host)
            if fault == "hang":
                await asyncio.sleep(60)
            if isinstance(fault, Exception):
                raise fault
            if isinstance(fault, int):
                return httpx.Response(fault, json={"error": {"message": "down"}})
            await asyncio.sleep(self.delay_s.get(host, 0.0))
            body = json.loads(request.content)
            self.answered[host] = self.answered.get(host, 0) + 1
            text = f"{body['prompt']}|seed={body['seed']}"
            return httpx.Response(
                200, json={"choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}
            )
        finally:
            self._in_flight[host] -= 1


def fleet_engine(server: FakeFleet, urls: list[str], **overrides) -> OpenAIEngine:
    settings = dict(model="m", base_url=urls, backoff_s=0.001, max_backoff_s=0.01, timeout_s=2.0)
    config = OpenAIConfig(**(settings | overrides))
    return OpenAIEngine(config, transport=httpx.MockTransport(server))


def texts(results) -> list[list[str]]:
    return [[c.text for c in row] for row in results]


EXPECTED = [[f"question {i}|seed={5 + j}" for j in range(2)] for i in range(24)]


def test_one_url_in_a_list_works_as_a_string():
    server = FakeFleet()
    assert texts(fleet_engine(server, [A]).generate(PROMPTS, SAMPLING)) == EXPECTED
    assert OpenAIConfig(model="m", base_url=A).base_urls == [A]


def test_requests_go_to_the_least_loaded_server_within_the_per_server_limit():
    server = FakeFleet(delay_s={"a.test": 0.05, "b.test": 0.005})
    engine = fleet_engine(server, [A, B], max_concurrency=4)
    assert texts(engine.generate(PROMPTS, SAMPLING)) == EXPECTED
    assert server.answered["a.test"] + server.answered["b.test"] == 48
    assert server.answered["b.test"] > 2 * server.answered["a.test"]  # the fast server does more
    assert max(server.max_in_flight.values()) <= 4
    assert engine.stats.requests_by_server == {A: server.answered["a.test"], B: server.answered["b.test"]}


@pytest.mark.parametrize(
    "fault",
    [httpx.ConnectError("refused"), httpx.RemoteProtocolError("closed"), 503, "hang"],
    ids=["refused", "dropped", "5xx", "timeout"],
)
def test_a_failed_servers_requests_are_retried_on_the_others_and_it_is_rested(fault):
    server = FakeFleet(faults={"b.test": fault})
    engine = fleet_engine(server, [A, B, C], max_concurrency=3, timeout_s=0.2, max_retries=2)
    assert texts(engine.generate(PROMPTS, SAMPLING)) == EXPECTED
    assert "b.test" not in server.answered
    # Only the requests in flight on B when it first failed (at most its 3 slots) failed there.
    assert 1 <= engine.stats.failures_by_server[B] <= 3
    assert sum(engine.stats.requests_by_server.values()) == 48
    assert engine.servers[1].down_until > 0


def test_a_rate_limited_request_moves_to_another_server_which_is_not_rested():
    server = FakeFleet(faults={"b.test": 429})
    engine = fleet_engine(server, [B, A], max_retries=3)
    assert texts(engine.generate(PROMPTS[:1], SamplingParams(n=1, seed=5))) == [EXPECTED[0][:1]]
    assert engine.stats.failures_by_server == {B: 1} and engine.stats.retry_reasons == {"HTTP 429": 1}
    assert engine.servers[0].down_until == 0.0  # 429 is load, not a fault


def test_the_last_live_server_is_retried_with_backoff_and_the_call_fails_with_the_reason():
    server = FakeFleet(faults={"a.test": httpx.ConnectError("refused"), "b.test": 502})
    engine = fleet_engine(server, [A, B], max_retries=4)
    with pytest.raises(ServerError, match="failed 5 times"):
        engine.generate(PROMPTS[:1], SamplingParams(n=1))
    assert engine.stats.num_http_requests == 5
    assert sum(s.down_until > 0 for s in engine.servers) == 1  # never both down


def test_one_cache_serves_the_fleet_whatever_the_urls(tmp_path):
    cache = str(tmp_path / "cache.sqlite")
    first = fleet_engine(FakeFleet(), [A, B], cache_path=cache)
    assert texts(first.generate(PROMPTS, SAMPLING)) == EXPECTED
    other = FakeFleet()
    again = fleet_engine(other, [C], cache_path=cache)  # another server: same keys
    assert texts(again.generate(PROMPTS, SAMPLING)) == EXPECTED
    assert again.stats.num_cache_hits == 48 and again.stats.num_http_requests == 0 and not other.answered


def test_the_engine_pickles_as_its_config(tmp_path):
    config = OpenAIConfig(model="m", base_url=[A, B], cache_path=str(tmp_path / "c.sqlite"))
    copy = pickle.loads(pickle.dumps(OpenAIEngine(config)))
    assert copy.config == config and copy.stats.num_http_requests == 0 and len(copy.cache) == 0
    with pytest.raises(TypeError, match="custom transport"):
        pickle.dumps(fleet_engine(FakeFleet(), [A]))


@pytest.mark.parametrize(
    ("base_url", "message"),
    [([], "empty list"), ([A, "ftp://x"], "http://"), ([A, A], "twice")],
)
def test_bad_fleets_are_refused_with_the_field(base_url, message):
    with pytest.raises(ValueError, match=message):
        OpenAIConfig(model="m", base_url=base_url)


def test_fleet_picks_least_outstanding_rests_failures_and_keeps_one_up():
    now = [100.0]
    servers = [ServerState(A), ServerState(B)]
    fleet = Fleet(servers, max_per_server=2, down_s=10.0, clock=lambda: now[0])

    async def scenario() -> None:
        first, second, third = [await fleet.acquire() for _ in range(3)]
        assert [s.url for s in (first, second, third)] == [A, B, A]
        fleet.release(second, failed=True)  # B rested: A is up
        assert servers[1].down_until == 110.0 and fleet.pick() is None  # A full, B resting
        fleet.release(first, failed=True)  # A is the last live server: never rested
        assert servers[0].down_until == 0.0 and fleet.pick() is servers[0]
        now[0] = 111.0
        fleet.release(third, failed=False)
        assert fleet.pick() is servers[0]  # both up, both idle: the first listed

    asyncio.run(scenario())


def test_acquire_waits_for_a_rested_server_to_come_back():
    servers = [ServerState(A, outstanding=1), ServerState(B)]
    fleet = Fleet(servers, max_per_server=1, down_s=0.05)
    servers[1].down_until = fleet.clock() + 0.05
    server = asyncio.run(asyncio.wait_for(fleet.acquire(), 2.0))
    assert server is servers[1] and server.outstanding == 1
