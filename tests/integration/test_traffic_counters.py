"""nginx's traffic counters (muster_traffic.lua) against a real nginx: exact, per server, exported."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterable
from pathlib import Path

import aiohttp
import pytest
from backend_helpers import text_backend
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from muster.dataplane import DataPlane, LuaAdmin, Peer
from muster.dataplane.nginx.conf import LuaSettings, http_block, lua_available, main_block
from muster.observe.metrics import traffic_families
from muster.observe.traffic import TrafficSnapshot, parse_traffic
from muster.stack.nginx import NginxProcess, nginx_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not nginx_available(), reason="nginx is not installed"),
    pytest.mark.skipif(not lua_available(), reason="libnginx-mod-http-lua is not installed"),
]

# The stock template's Lua location, reduced to what counting needs.
SERVER = """\
server {
    listen 127.0.0.1:%(port)d;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_connect_timeout 1s;
    proxy_next_upstream error timeout;
    location ~ ^/(?<muster_service>[A-Za-z0-9._-]+)/ {
        error_page 500 = @muster_no_peer;
        rewrite ^/[^/]+/(.*)$ /$1 break;
        proxy_pass http://muster_balancer;
    }
    location @muster_no_peer {
        content_by_lua_block { require("muster_balancer").no_peer() }
    }
}
"""


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: connections to it are refused


async def wait_requests(admin: LuaAdmin, service: str, want: int, timeout: float = 15.0) -> TrafficSnapshot:
    """Poll until the counters of ``service`` add up to ``want`` (a worker flushes every second)."""
    deadline = time.monotonic() + timeout
    while True:
        snap = parse_traffic(await admin.traffic(), time.time())
        total = sum(t.requests for (svc, _), t in snap.servers.items() if svc == service)
        if total >= want or time.monotonic() > deadline:
            return snap
        await asyncio.sleep(0.2)


async def test_per_server_counts_sum_to_the_requests_sent(tmp_path: Path) -> None:
    settings = LuaSettings(admin_socket=tmp_path / "admin.sock")
    nginx = NginxProcess(
        tmp_path / "nginx",
        worker_processes=2,
        main_snippets=[main_block()],
        http_snippets=[http_block(settings)],
    )
    nginx.write_config()
    (nginx.include_dir / "test.conf").write_text(SERVER % {"port": nginx.port})
    a, port_a = await text_backend("a")
    b, port_b = await text_backend("b")
    dead = dead_port()
    n = 90
    try:
        with nginx:
            async with LuaAdmin(f"unix:{settings.admin_socket}") as admin:
                await DataPlane(admin).apply(
                    {"hello": [Peer("127.0.0.1", port_a), Peer("127.0.0.1", port_b), Peer("127.0.0.1", dead)]}
                )
                statuses: list[int] = []
                async with aiohttp.ClientSession() as session:
                    for i in range(n):
                        async with session.get(f"http://127.0.0.1:{nginx.port}/hello/x{i}") as resp:
                            await resp.read()
                            statuses.append(resp.status)
                    for _ in range(5):  # never pushed: 404, counted as reaching no server
                        async with session.get(f"http://127.0.0.1:{nginx.port}/nosuch/") as resp:
                            assert resp.status == 404
                assert statuses == [200] * n, "the dead server's tries are retried on the next"
                snap = await wait_requests(admin, "hello", n)
                hello = {server: t for (svc, server), t in snap.servers.items() if svc == "hello"}
                assert sum(t.requests for t in hello.values()) == n, hello
                assert sum(t.codes[1] for t in hello.values()) == n, "all 2xx"
                a_, b_, d_ = (hello.get(f"127.0.0.1:{p}") for p in (port_a, port_b, dead))
                assert a_ is not None and b_ is not None and a_.requests > 0 and b_.requests > 0
                # The dead server served nothing; every try it got failed and was retried.
                assert d_ is not None and d_.requests == 0 and d_.errors > 0
                assert a_.retried + b_.retried == d_.errors
                assert sum(a_.buckets) == a_.requests and a_.bytes > 0 and a_.latency_sum >= 0
                snap = await wait_requests(admin, "nosuch", 5)
                assert snap.servers[("nosuch", "-")].requests == 5
                assert snap.servers[("nosuch", "-")].codes[3] == 5, "4xx"

                # Exported with service and server labels, parsed by prometheus_client itself.
                class One(Collector):
                    def collect(self) -> Iterable[Metric]:
                        return traffic_families(snap)

                registry = CollectorRegistry()
                registry.register(One())
                text = generate_latest(registry).decode()
                requests = {
                    (s.labels["service"], s.labels["server"], s.labels["code"]): s.value
                    for family in text_string_to_metric_families(text)
                    for s in family.samples
                    if s.name == "muster_requests_total"
                }
                assert sum(v for (svc, _, _), v in requests.items() if svc == "hello") == n
                assert requests[("hello", f"127.0.0.1:{port_a}", "2xx")] == a_.requests

                # Servers that left can be forgotten; the others keep counting.
                await admin.forget_traffic([("hello", f"127.0.0.1:{dead}")])
                after = parse_traffic(await admin.traffic(), time.time())
                assert ("hello", f"127.0.0.1:{dead}") not in after.servers
                assert after.servers[("hello", f"127.0.0.1:{port_a}")].requests == a_.requests
    finally:
        await a.cleanup()
        await b.cleanup()


async def test_counts_survive_a_reload(tmp_path: Path) -> None:
    settings = LuaSettings(admin_socket=tmp_path / "admin.sock")
    nginx = NginxProcess(
        tmp_path / "nginx",
        worker_processes=1,
        main_snippets=[main_block()],
        http_snippets=[http_block(settings)],
    )
    nginx.write_config()
    (nginx.include_dir / "test.conf").write_text(SERVER % {"port": nginx.port})
    a, port_a = await text_backend("a")
    try:
        with nginx:
            async with LuaAdmin(f"unix:{settings.admin_socket}") as admin:
                await DataPlane(admin).apply({"hello": [Peer("127.0.0.1", port_a)]})
                async with aiohttp.ClientSession() as session:
                    for _ in range(10):
                        async with session.get(f"http://127.0.0.1:{nginx.port}/hello/") as resp:
                            await resp.read()
                    # The old worker flushes as it exits; the dict outlives the reload.
                    await asyncio.to_thread(nginx.reload)
                    for _ in range(10):
                        async with session.get(f"http://127.0.0.1:{nginx.port}/hello/") as resp:
                            await resp.read()
                snap = await wait_requests(admin, "hello", 20)
                assert snap.servers[("hello", f"127.0.0.1:{port_a}")].requests == 20
    finally:
        await a.cleanup()
