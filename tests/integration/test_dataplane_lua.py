"""The Lua data plane against a real nginx: membership changes reach traffic with no reload."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from backend_helpers import ipv6_loopback, text_backend

from muster.dataplane import AdminError, DataPlane, LuaAdmin, Peer
from muster.dataplane.nginx.admin import AdminState, admin_address_problem
from muster.dataplane.nginx.conf import LuaSettings, http_block, lua_available, main_block
from muster.stack.nginx import NginxProcess, nginx_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not nginx_available(), reason="nginx is not installed"),
    pytest.mark.skipif(not lua_available(), reason="libnginx-mod-http-lua is not installed"),
]

LOCATION = """\
server {
    listen 127.0.0.1:%(port)d;
    location /hello/ {
        set $muster_service hello;
        access_by_lua_block {
            if not require("muster_balancer").has_peers(ngx.var.muster_service) then
                return ngx.exit(503)
            end
        }
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_next_upstream error timeout;
        proxy_connect_timeout 1s;
        proxy_pass http://muster_balancer/;
    }
    # The README's pattern: a balancer that finds no peer exits with 500, answered here.
    location /nopeer/ {
        set $muster_service nopeer;
        error_page 500 = @muster_no_peer;
        proxy_pass http://muster_balancer/;
    }
    location @muster_no_peer {
        content_by_lua_block { require("muster_balancer").no_peer() }
    }
    # No lookup before the balancer: it alone must notice membership changes.
    location /plain/ {
        set $muster_service hello;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://muster_balancer/;
    }
}
"""


def lua_nginx(tmp_path: Path, workers: int = 1, server: str = LOCATION) -> NginxProcess:
    """nginx with the Lua data plane (admin socket ``tmp_path/admin.sock``) and ``server``,
    a config with ``%(port)d`` for nginx's port; not started."""
    settings = LuaSettings(admin_socket=tmp_path / "admin.sock")
    proc = NginxProcess(
        tmp_path / "nginx",
        worker_processes=workers,
        main_snippets=[main_block()],
        http_snippets=[http_block(settings)],
    )
    proc.write_config()
    (proc.include_dir / "test.conf").write_text(server % {"port": proc.port})
    return proc


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxProcess]:
    with lua_nginx(tmp_path, workers=2) as proc:
        yield proc


@pytest.fixture
async def admin(nginx: NginxProcess, tmp_path: Path) -> AsyncIterator[LuaAdmin]:
    async with LuaAdmin(f"unix:{tmp_path / 'admin.sock'}") as client:
        yield client


async def hits(url: str, n: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            async with session.get(url) as resp:
                seen[f"{resp.status} {await resp.text()}"] += 1
    return seen


async def test_membership_changes_need_no_reload(nginx: NginxProcess, admin: LuaAdmin) -> None:
    url = f"http://127.0.0.1:{nginx.port}/hello/"
    a, port_a = await text_backend("a")
    b, port_b = await text_backend("b")
    try:
        workers = nginx.worker_pids()
        assert all(k.startswith("503") for k in await hits(url, 2)), "no peers yet: 503"

        plane = DataPlane(admin)
        assert await plane.apply({"hello": [Peer("127.0.0.1", port_a)]}) == 1
        assert await hits(url, 6) == Counter({"200 a": 6})

        await plane.apply({"hello": [Peer("127.0.0.1", port_a), Peer("127.0.0.1", port_b)]})
        seen = await hits(url, 20)
        assert seen["200 a"] > 0 and seen["200 b"] > 0 and sum(seen.values()) == 20

        await plane.apply({"hello": [Peer("127.0.0.1", port_b)]})
        assert await hits(url, 6) == Counter({"200 b": 6})
        # An unchanged membership pushes nothing.
        assert await plane.apply({"hello": [Peer("127.0.0.1", port_b)]}) == 0
        assert nginx.worker_pids() == workers, "a membership change must not reload nginx"
    finally:
        await a.cleanup()
        await b.cleanup()


async def test_balancer_alone_follows_membership_changes(tmp_path: Path) -> None:
    # A location that runs no Lua of its own: the balancer once served a worker's cached
    # peers forever. One worker, so the second round surely meets the cache of the first.
    proc = lua_nginx(tmp_path, workers=1)
    url = f"http://127.0.0.1:{proc.port}/plain/"
    a, port_a = await text_backend("a")
    b, port_b = await text_backend("b")
    try:
        with proc:
            async with LuaAdmin(f"unix:{tmp_path / 'admin.sock'}") as admin:
                plane = DataPlane(admin)
                await plane.apply({"hello": [Peer("127.0.0.1", port_a)]})
                assert await hits(url, 4) == Counter({"200 a": 4})
                await plane.apply({"hello": [Peer("127.0.0.1", port_b)]})
                assert await hits(url, 4) == Counter({"200 b": 4})
    finally:
        await a.cleanup()
        await b.cleanup()


async def test_no_peer_answers_404_for_unknown_and_503_for_empty(
    nginx: NginxProcess, admin: LuaAdmin
) -> None:
    url = f"http://127.0.0.1:{nginx.port}/nopeer/"
    a, port_a = await text_backend("a")
    try:
        # Never pushed: the server's own answer for an unknown path (no `location /` here: 404).
        assert [k.split(" ", 1)[0] for k in (await hits(url, 2)).elements()] == ["404", "404"]
        plane = DataPlane(admin)
        await plane.apply({"nopeer": []})
        assert await hits(url, 2) == Counter({"503 no server of nopeer is available\n": 2})
        await plane.apply({"nopeer": [Peer("127.0.0.1", port_a)]})
        assert await hits(url, 2) == Counter({"200 a": 2})
    finally:
        await a.cleanup()


async def test_dead_peer_is_retried_on_the_next(nginx: NginxProcess, admin: LuaAdmin) -> None:
    url = f"http://127.0.0.1:{nginx.port}/hello/"
    a, port_a = await text_backend("a")
    b, port_b = await text_backend("b")
    await b.cleanup()  # b's port is now closed: connections are refused
    try:
        await DataPlane(admin).apply({"hello": [Peer("127.0.0.1", port_a), Peer("127.0.0.1", port_b)]})
        assert await hits(url, 20) == Counter({"200 a": 20})
        # max_fails=1: after its first refused connection a worker leaves b out for
        # fail_timeout, so 20 requests cost at most one attempt on b per worker.
        refused = nginx.log_path.read_text().count(f"127.0.0.1:{port_b}/")
        assert 1 <= refused <= 2
    finally:
        await a.cleanup()


async def test_weights_shape_the_split(nginx: NginxProcess, admin: LuaAdmin) -> None:
    url = f"http://127.0.0.1:{nginx.port}/hello/"
    a, port_a = await text_backend("a")
    b, port_b = await text_backend("b")
    try:
        await DataPlane(admin).apply({"hello": [Peer("127.0.0.1", port_a, 3), Peer("127.0.0.1", port_b, 1)]})
        seen = await hits(url, 80)
        # Two workers each run smooth weighted round robin: 3:1 per worker, whatever the split.
        assert 50 <= seen["200 a"] <= 70 and seen["200 a"] + seen["200 b"] == 80
    finally:
        await a.cleanup()
        await b.cleanup()


async def test_restarted_nginx_gets_everything_again(nginx: NginxProcess, admin: LuaAdmin) -> None:
    url = f"http://127.0.0.1:{nginx.port}/hello/"
    a, port_a = await text_backend("a")
    try:
        plane = DataPlane(admin)
        await plane.apply({"hello": [Peer("127.0.0.1", port_a)]})
        await asyncio.to_thread(nginx.restart)
        assert all(k.startswith("503") for k in await hits(url, 2)), "a restart empties the shared dict"
        # An ordinary apply trusts its last push; the periodic verify notices nginx lost
        # it (a foreign generation) and pushes everything again.
        assert await plane.apply({"hello": [Peer("127.0.0.1", port_a)]}) == 0
        assert await plane.apply({"hello": [Peer("127.0.0.1", port_a)]}, verify=True) == 1
        assert await hits(url, 3) == Counter({"200 a": 3})
    finally:
        await a.cleanup()


async def test_sink_verify_loop_repushes_after_a_restart(nginx: NginxProcess, admin: LuaAdmin) -> None:
    from muster.dataplane.sink import MembershipSink

    url = f"http://127.0.0.1:{nginx.port}/hello/"
    a, port_a = await text_backend("a")
    sink = MembershipSink(DataPlane(admin), verify_interval=0.1)
    runner = asyncio.create_task(sink.run())
    try:
        await sink.apply({"/services/hello/servers/a": f'{{"host": "127.0.0.1", "port": {port_a}}}'})
        assert await hits(url, 2) == Counter({"200 a": 2})
        await asyncio.to_thread(nginx.restart)
        for _ in range(50):
            if (await hits(url, 1)) == Counter({"200 a": 1}):
                break
            await asyncio.sleep(0.1)
        assert await hits(url, 2) == Counter({"200 a": 2}), "the verify loop must re-push"
    finally:
        runner.cancel()
        await a.cleanup()


async def test_a_push_behind_muster_s_back_is_undone_by_the_verify(
    nginx: NginxProcess, admin: LuaAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"http://127.0.0.1:{nginx.port}/hello/"
    a, port_a = await text_backend("a")
    evil, port_evil = await text_backend("evil")
    try:
        plane = DataPlane(admin)
        await plane.apply({"hello": [Peer("127.0.0.1", port_a)]})
        # Someone who reached the socket: one service hijacked, one added.
        await admin.put_service("hello", f"127.0.0.1 {port_evil} 1\n".encode())
        await admin.put_service("added", f"127.0.0.1 {port_evil} 1\n".encode())
        assert await hits(url, 2) == Counter({"200 evil": 2})
        assert await plane.apply({"hello": [Peer("127.0.0.1", port_a)]}) == 0, "a plain apply trusts its push"
        assert await plane.apply({"hello": [Peer("127.0.0.1", port_a)]}, verify=True) == 2
        assert await hits(url, 2) == Counter({"200 a": 2})
        assert set((await admin.state()).services) == {"hello"}
        assert plane.drifted == 2 and plane.last_drift == ["added", "hello"]
        assert any("dataplane.verify.drift" in m and "count=2" in m for m in caplog.messages)
        assert await plane.apply({"hello": [Peer("127.0.0.1", port_a)]}, verify=True) == 0
        assert plane.last_drift == []
    finally:
        await a.cleanup()
        await evil.cleanup()


async def test_stale_services_from_an_earlier_muster_are_dropped(admin: LuaAdmin) -> None:
    await DataPlane(admin).apply({"old": [Peer("127.0.0.1", 9)], "hello": [Peer("127.0.0.1", 10)]})
    await DataPlane(admin).apply({"hello": [Peer("127.0.0.1", 10)]})  # a new muster process
    assert set((await admin.state()).services) == {"hello"}


async def test_admin_refuses_bad_input(admin: LuaAdmin) -> None:
    with pytest.raises(AdminError, match="400"):
        await admin.put_service("hello", b"1.2.3.4; include /etc/passwd 80 1\n")
    # Names cannot be resolved in the balancer phase; ports and weights in nginx's ranges.
    for line in (b"example.com 80 1", b"1.2.3.256 80 1", b"10.0.0.1 0 1", b"10.0.0.1 80 0", b"::g 80 1"):
        with pytest.raises(AdminError, match="bad peer line"):
            await admin.put_service("hello", line + b"\n")
    await admin.put_service("hello", b"10.0.0.1 65535 1000\n::ffff:10.0.0.2 1 1\n")
    with pytest.raises(AdminError, match="400"):
        await admin.put_service("bad}name", b"")
    with pytest.raises(AdminError, match="404"):
        await admin._request("GET", "/muster/nope")


async def test_unreachable_admin_is_a_clear_error(tmp_path: Path) -> None:
    async with LuaAdmin(f"unix:{tmp_path / 'missing.sock'}") as client:
        with pytest.raises(AdminError, match="nginx admin endpoint"):
            await DataPlane(client).apply({})


def test_admin_refuses_clients_from_elsewhere(tmp_path: Path) -> None:
    # The admin location wired into a TCP server whose client address comes from a
    # header (realip): nginx sees 10.1.2.3 and 127.0.0.1 alike, and only the latter may push.
    proc = lua_nginx(
        tmp_path,
        server="server {\n"
        "    listen 127.0.0.1:%(port)d;\n"
        "    set_real_ip_from 127.0.0.1;\n"
        "    real_ip_header X-Real-IP;\n"
        '    location /muster/ { content_by_lua_block { require("muster_admin").handle() } }\n'
        "}\n",
    )
    with proc:
        url = f"{proc.url}/muster/state"
        remote = urllib.request.Request(url, headers={"X-Real-IP": "10.1.2.3"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(remote, timeout=5)
        refused.value.close()  # the error holds the response open
        assert refused.value.code == 403
        local = urllib.request.Request(url, headers={"X-Real-IP": "127.0.0.1"})
        with urllib.request.urlopen(local, timeout=5) as resp:
            assert resp.status == 200 and resp.read().startswith(b"generation")


def test_admin_address_must_be_local() -> None:
    for address in (
        "unix:/run/muster/admin.sock",
        "http://127.0.0.1:9000",
        "http://[::1]:9000",
        "http://localhost:1",
    ):
        assert admin_address_problem(address) is None, address
    for address in (
        "http://10.0.0.5:9000",
        "https://127.0.0.1:9000",
        "unix:",
        "127.0.0.1:9000",
        "http://h:1",
    ):
        assert admin_address_problem(address) is not None, address
    with pytest.raises(AdminError, match="loopback only"):
        LuaAdmin("http://192.0.2.1:9000")


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_peers_are_balanced_and_retried(nginx: NginxProcess, admin: LuaAdmin) -> None:
    runner, live = await text_backend("v6", "::1")
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        dead = sock.getsockname()[1]  # bound, never listening: connections are refused
        try:
            await DataPlane(admin).apply({"hello": [Peer("::1", live), Peer("::1", dead)]})
            assert await hits(f"http://127.0.0.1:{nginx.port}/hello/", 10) == Counter({"200 v6": 10})
            # The failed peer is recognised in $upstream_addr's "[::1]:PORT" form and left out.
            assert 1 <= nginx.log_path.read_text().count(f"[::1]:{dead}/") <= 2
        finally:
            await runner.cleanup()


def test_a_location_without_a_service_name_is_a_clear_error(tmp_path: Path) -> None:
    proc = lua_nginx(
        tmp_path,
        server="server { listen 127.0.0.1:%(port)d; location / { proxy_pass http://muster_balancer; } }\n",
    )
    with proc:
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(f"{proc.url}/x/", timeout=5)
        failed.value.close()
        assert failed.value.code == 500
        assert "sets no $muster_service" in proc.log_path.read_text()


async def test_only_the_named_services_are_looked_at(nginx: NginxProcess, admin: LuaAdmin) -> None:
    url = f"http://127.0.0.1:{nginx.port}/hello/"
    a, port_a = await text_backend("a")
    b, port_b = await text_backend("b")
    try:
        plane = DataPlane(admin)
        desired = {"hello": [Peer("127.0.0.1", port_a)], "other": [Peer("127.0.0.1", 9)]}
        assert await plane.apply(desired) == 2
        desired["hello"] = [Peer("127.0.0.1", port_b)]
        desired["other"] = [Peer("127.0.0.1", 10)]  # not named below: left alone
        assert await plane.apply(desired, only={"hello"}) == 1
        assert await hits(url, 4) == Counter({"200 b": 4})
        del desired["hello"]
        assert await plane.apply(desired, only={"hello"}) == 1  # gone: deleted in nginx
        assert all(k.startswith("503") for k in await hits(url, 2))
        state = await admin.state()
        assert set(state.services) == {"other"}
        assert await plane.apply(desired) == 1, "an apply without only finds the unnamed change"
    finally:
        await a.cleanup()
        await b.cleanup()


async def test_verify_reads_every_service_only_when_someone_else_pushed(admin: LuaAdmin) -> None:
    plane = DataPlane(admin)
    desired = {"hello": [Peer("127.0.0.1", 9)], "other": [Peer("127.0.0.1", 8)]}
    await plane.apply(desired)
    full_reads = 0
    real_state = admin.state

    async def counted_state() -> AdminState:
        nonlocal full_reads
        full_reads += 1
        return await real_state()

    admin.state = counted_state  # type: ignore[method-assign]
    desired["hello"] = [Peer("127.0.0.1", 10)]
    assert await plane.apply(desired, only={"hello"}) == 1
    assert await plane.apply(desired, verify=True) == 0
    assert full_reads == 0, "our own pushes are counted: the summary alone says nothing drifted"
    await admin.put_service("hello", b"127.0.0.1 11 1\n")  # behind muster's back
    assert await plane.apply(desired, verify=True) == 1 and plane.drifted == 1 and full_reads == 1
    assert await plane.apply(desired, verify=True) == 0 and full_reads == 1
