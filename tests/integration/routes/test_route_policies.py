"""Route policies through real nginx in both data planes: split, sticky hashing, timeouts,
retries, websockets, rate limits and headers; and, with Lua, changes with no reload."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter

import aiohttp
import pytest
from route_helpers import Backends, base, fetch, settle, spread, wait_for

from muster.stack.etcd import etcd_available
from muster.stack.local import Stack
from muster.stack.nginx import nginx_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd"),
]


def register(stack: Stack, backends: Backends, service: str, *idents: str, **kw: float | int) -> None:
    for ident in idents:
        stack.put(f"/services/{service}/servers/{ident}", backends.add(ident, **kw).server_value())


def route(stack: Stack, service: str, value: dict[str, object]) -> None:
    stack.put(f"/services/{service}/route", json.dumps(value))


@pytest.mark.slow
async def test_a_five_percent_split_lands_within_one_and_a_half_percent(
    stack: Stack, backends: Backends
) -> None:
    register(stack, backends, "api", "v1")
    register(stack, backends, "api-v2", "v2")
    route(stack, "api", {"split": {"api-v2": 5}, "headers": {"response": {"X-Routed": "1"}}})
    url = base(stack)
    await wait_for(url, "h", "/api-v2/", "v2")
    deadline = time.monotonic() + 20
    while (await fetch_once(url, "/api/")).response_headers.get("X-Routed") != "1":
        assert time.monotonic() < deadline, "the route never applied"
        await asyncio.sleep(0.05)
    await settle(stack)
    seen = await spread(url, "h", "/api/", 10_000, concurrency=16)
    assert sum(seen.values()) == 10_000 and set(seen) <= {"v1", "v2"}, seen
    assert abs(seen["v2"] / 10_000 - 0.05) <= 0.015, seen


async def fetch_once(url: str, path: str, host: str = "h", **kw: object):  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:
        return await fetch(session, url, host, path, **kw)


async def test_cookie_hashing_sticks_and_moves_about_one_nth_when_a_server_joins(
    stack: Stack, backends: Backends
) -> None:
    register(stack, backends, "sticky", "s1", "s2", "s3", "s4")
    route(stack, "sticky", {"balance": "hash:cookie:sid"})
    url = base(stack)
    deadline = time.monotonic() + 20
    while not (await fetch_once(url, "/sticky/")).ident.startswith("s"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    # Hashing applies once every worker sees the route: one client on one server, 100 times.
    deadline = time.monotonic() + 20
    while True:
        one = await spread(url, "h", "/sticky/", 100, headers={"Cookie": "sid=client-7"})
        if len(one) == 1:
            break
        assert time.monotonic() < deadline, one
        await asyncio.sleep(0.1)

    await settle(stack)

    async def placement() -> dict[str, str]:
        async with aiohttp.ClientSession() as session:
            return {
                f"c{i}": (await fetch(session, url, "h", "/sticky/", headers={"Cookie": f"sid=c{i}"})).ident
                for i in range(400)
            }

    before = await placement()
    assert len(set(before.values())) == 4, Counter(before.values())
    register(stack, backends, "sticky", "s5")
    deadline = time.monotonic() + 20
    while "s5" not in set((after := await placement()).values()):
        assert time.monotonic() < deadline, "the fifth server never took traffic"
        await asyncio.sleep(0.1)
    await settle(stack)
    after = await placement()
    moved = [c for c in before if before[c] != after[c]]
    assert all(after[c] == "s5" for c in moved), "a join only moves clients to the new server"
    # About 1/5, not most clients. The ring's points are CRC32s of the servers' addresses,
    # whose ports are random here: over 3,000 simulated port draws the share moved ranged
    # 0.04-0.40 (p50 0.195; 1.6% above the 0.32 this bound had, which failed CI once).
    assert 0.02 <= len(moved) / 400 <= 0.45, len(moved)


async def test_a_slow_server_gets_504_after_the_read_timeout(stack: Stack, backends: Backends) -> None:
    register(stack, backends, "slow", "slow1", delay=4.0)
    route(stack, "slow", {"timeouts": {"read": 1}, "retries": 0})
    url = base(stack)
    deadline = time.monotonic() + 20
    while True:
        started = time.monotonic()
        answer = await fetch_once(url, "/slow/")
        took = time.monotonic() - started
        if answer.status == 504:
            break
        assert time.monotonic() < deadline, answer
    assert 0.9 <= took < 3.0, took


async def test_retries_stop_at_the_configured_count(stack: Stack, backends: Backends) -> None:
    register(stack, backends, "flaky", "f1", "f2", "f3", "f4")
    route(
        stack,
        "flaky",
        {"retries": 2, "retry_on": ["error", "timeout", "503"], "headers": {"response": {"X-R": "a"}}},
    )
    url = base(stack)
    deadline = time.monotonic() + 20
    while (await fetch_once(url, "/flaky/")).response_headers.get("X-R") != "a":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await settle(stack)
    flaky = [e for e in backends.started if e.ident.startswith("f")]
    for e in flaky:
        e.hits = 0
    answer = await fetch_once(url, "/flaky/", headers={"X-Status": "503"})
    assert answer.status == 503
    assert sum(e.hits for e in flaky) == 3, [e.hits for e in flaky]
    # Without 503 among retry_on, the first answer is final.
    route(stack, "flaky", {"retries": 2, "headers": {"response": {"X-R": "b"}}})
    while (await fetch_once(url, "/flaky/")).response_headers.get("X-R") != "b":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await settle(stack)
    for e in flaky:
        e.hits = 0
    assert (await fetch_once(url, "/flaky/", headers={"X-Status": "503"})).status == 503
    assert sum(e.hits for e in flaky) == 1


async def test_websocket_headers_and_rate_limit(stack: Stack, backends: Backends) -> None:
    register(stack, backends, "ws", "w1")
    route(
        stack,
        "ws",
        {
            "hosts": ["ws.example.com"],
            "paths": ["/"],
            "websocket": True,
            "headers": {"request": {"X-Team": "blue team"}, "response": {"X-Frame-Options": "DENY"}},
            "rate_limit": {"rate": 50, "burst": 50},
        },
    )
    url = base(stack)
    await wait_for(url, "ws.example.com", "/chat", "w1")
    await settle(stack)
    answer = await wait_for(url, "ws.example.com", "/chat", "w1")
    assert answer.headers.get("X-Team") == "blue team" and answer.path == "/chat"
    assert answer.response_headers.get("X-Frame-Options") == "DENY"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url + "/chat", headers={"Host": "ws.example.com"}) as ws:
            await ws.send_str("hello")
            reply = await asyncio.wait_for(ws.receive(), 10)
            assert reply.data == "w1:hello"
    await asyncio.sleep(2.5)  # the bucket drains: the burst starts from empty
    started = time.monotonic()
    seen = await spread(url, "ws.example.com", "/x", 150, concurrency=30)
    elapsed = time.monotonic() - started
    # 50 at once, plus what the bucket drained (50 r/s) while the burst was sent.
    assert 50 <= seen["w1"] <= 50 + int(elapsed * 50) + 2, (seen, elapsed)
    assert seen["429"] == 150 - seen["w1"], seen


async def test_lua_route_changes_apply_without_a_reload(stack: Stack, backends: Backends, plane: str) -> None:
    if plane != "lua":
        pytest.skip("the reload plane reloads by design")
    assert stack.nginx is not None
    register(stack, backends, "api", "a1")
    register(stack, backends, "web", "b1")
    url = base(stack)
    await wait_for(url, "h", "/api/", "a1")
    await wait_for(url, "h", "/web/", "b1")
    workers = stack.nginx.worker_pids()
    took: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(20):
            # Apart by more than the daemon's debounce window (0.2 s): each change alone.
            await asyncio.sleep(0.3)
            owner = ("api", "a1") if i % 2 else ("web", "b1")
            started = time.monotonic()
            route(stack, owner[0], {"paths": [f"/r{i}/"]})
            while (await fetch(session, url, "h", f"/r{i}/")).ident != owner[1]:
                assert time.monotonic() - started < 10
            took.append(time.monotonic() - started)
    assert stack.nginx.worker_pids() == workers, "a route change must not reload nginx"
    print(
        f"route change to traffic: p50 {statistics.median(took) * 1000:.1f} ms, max {max(took) * 1000:.1f} ms"
    )
    assert statistics.median(took) < 0.5  # the figure is the bench's (bench/routes.py); CI is busy
