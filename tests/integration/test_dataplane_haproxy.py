"""The HAProxy data plane against a real HAProxy: membership changes reach traffic with no reload."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from backend_helpers import ipv6_loopback, text_backend

from muster.backends.etcd.v3 import EtcdV3Backend
from muster.backends.options import BackendOptions
from muster.confd.store import KVStore
from muster.config import Config
from muster.daemon import Daemon
from muster.daemon.backend import close_backend, create_backend
from muster.dataplane import Peer
from muster.dataplane.haproxy.plane import HAProxyDataPlane, RuntimeAPIError, haproxy_sink
from muster.dataplane.haproxy.runtime import HAProxyCLI
from muster.dataplane.haproxy.slots import parse_servers_state
from muster.dataplane.sink import MembershipSink, membership
from muster.gotemplate import Template
from muster.resources.render import _StoreSlot, template_funcs
from muster.resources.spec import load_resources
from muster.stack.etcd import EtcdProcess
from muster.stack.haproxy import HAProxyProcess, haproxy_available, stock_dir, write_resource_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not haproxy_available(), reason="haproxy is not installed (apt install haproxy)"),
]


def render_stock(values: Mapping[str, str], mode: str) -> str:
    """The shipped template, rendered as the daemon renders it."""
    source = (stock_dir() / "templates" / "services.cfg.tmpl").read_text()
    slot = _StoreSlot()
    slot.store = KVStore(values)
    return Template("services.cfg.tmpl", funcs=template_funcs(slot, mode)).parse(source).execute(None)


def registered(servers: Mapping[str, list[tuple[str, int]]]) -> dict[str, str]:
    """Registry values for ``{service: [(host, port), ...]}``, in the seed post's layout."""
    values = {}
    for name, entries in servers.items():
        for i, (host, port) in enumerate(entries):
            values[f"/services/{name}/servers/s{i}"] = json.dumps({"host": host, "port": port})
    return values


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[HAProxyProcess]:
    proc = HAProxyProcess(tmp_path / "haproxy")
    proc.write_config()
    # Structure only: two services, no servers yet (the slots are filled at runtime).
    proc.dest.write_text(render_stock(_empty("hello", "other"), "haproxy"))
    with proc:
        yield proc


def _empty(*names: str) -> dict[str, str]:
    # A service directory with an entry that is not valid: the service exists, with no server.
    return {f"/services/{n}/servers/placeholder": "not json" for n in names}


@pytest.fixture
def plane(haproxy: HAProxyProcess) -> HAProxyDataPlane:
    return HAProxyDataPlane(HAProxyCLI(haproxy.admin_socket))


class Backend:
    """A small aiohttp server answering its name, counting the requests it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.headers: Mapping[str, str] = {}
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, port: int = 0) -> Backend:
        async def hello(request: web.Request) -> web.Response:
            self.count += 1
            self.headers = request.headers
            return web.Response(text=f"{self.name} {request.path_qs}")

        app = web.Application()
        app.router.add_get("/{tail:.*}", hello)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    @property
    def peer(self) -> Peer:
        return Peer("127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    started = [await Backend(name).start() for name in ("a", "b", "c")]
    yield started
    for backend in started:
        await backend.stop()


async def hits(url: str, n: int, session: aiohttp.ClientSession | None = None) -> Counter[str]:
    """Answers to ``n`` GETs as ``"STATUS NAME"`` (one keep-alive session, like a real client)."""
    seen: Counter[str] = Counter()
    own = session is None
    session = session or aiohttp.ClientSession()
    try:
        for _ in range(n):
            async with session.get(url) as resp:
                body = await resp.text()
                seen[f"{resp.status} {body.split(' ')[0] if resp.status == 200 else ''}".strip()] += 1
    finally:
        if own:
            await session.close()
    return seen


async def test_membership_changes_need_no_reload(
    haproxy: HAProxyProcess, plane: HAProxyDataPlane, backends: list[Backend]
) -> None:
    a, b, _ = backends
    url = f"{haproxy.url}/hello/"
    worker = haproxy.worker_pid()
    assert await hits(url, 2) == Counter({"503": 2}), "empty slots: no server"

    assert await plane.apply({"hello": [a.peer]}) == 1
    assert await hits(url, 6) == Counter({"200 a": 6})

    await plane.apply({"hello": [a.peer, b.peer]})
    assert await hits(url, 20) == Counter({"200 a": 10, "200 b": 10})

    await plane.apply({"hello": [b.peer]})
    assert await hits(url, 6) == Counter({"200 b": 6})
    # Unchanged membership: nothing to send.
    assert await plane.apply({"hello": [b.peer]}) == 0
    assert haproxy.worker_pid() == worker, "a membership change must not reload haproxy"
    assert "New worker" not in haproxy.log_path.read_text().split("Loading success", 1)[1]


async def test_prefix_is_stripped_and_services_are_separate(
    haproxy: HAProxyProcess, plane: HAProxyDataPlane, backends: list[Backend]
) -> None:
    a, b, _ = backends
    await plane.apply({"hello": [a.peer], "other": [b.peer]})
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{haproxy.url}/hello/x/y?q=1", headers={"Host": "example.org"}) as resp:
            assert (resp.status, await resp.text()) == (200, "a /x/y?q=1")
        assert a.headers["Host"] == "example.org"
        assert a.headers["X-Forwarded-For"] == a.headers["X-Real-IP"] == "127.0.0.1"
        assert a.headers["X-Forwarded-Proto"] == "http"
        async with session.get(f"{haproxy.url}/other/") as resp:
            assert (resp.status, await resp.text()) == (200, "b /")
        async with session.get(f"{haproxy.url}/nosuch/") as resp:
            assert resp.status == 404


async def test_removed_server_gets_no_traffic(
    haproxy: HAProxyProcess, plane: HAProxyDataPlane, backends: list[Backend]
) -> None:
    a, b, c = backends
    url = f"{haproxy.url}/hello/"
    async with aiohttp.ClientSession() as session:  # keep-alive to haproxy across the change
        await plane.apply({"hello": [a.peer, b.peer]})
        await hits(url, 10, session)
        assert a.count == 5 and b.count == 5  # haproxy keeps idle connections to both
        await plane.apply({"hello": [b.peer]})
        before = a.count
        assert await hits(url, 30, session) == Counter({"200 b": 30})
        assert a.count == before, "a removed server must get no request"
        # Its slot is reused for the next server: traffic follows the new address.
        await plane.apply({"hello": [b.peer, c.peer]})
        assert await hits(url, 10, session) == Counter({"200 b": 5, "200 c": 5})
        assert a.count == before


async def test_weights_shape_the_split(
    haproxy: HAProxyProcess, plane: HAProxyDataPlane, backends: list[Backend]
) -> None:
    a, b, _ = backends
    url = f"{haproxy.url}/hello/"
    await plane.apply({"hello": [Peer(a.peer.ip, a.port, 3), b.peer]})
    assert await hits(url, 80) == Counter({"200 a": 60, "200 b": 20})
    # A weight change alone is one command; registry weights above 256 keep their ratio.
    await plane.apply({"hello": [Peer(a.peer.ip, a.port, 1000), Peer(b.peer.ip, b.port, 1000)]})
    assert await hits(url, 40) == Counter({"200 a": 20, "200 b": 20})


async def test_restarted_haproxy_gets_its_state_back(
    haproxy: HAProxyProcess, plane: HAProxyDataPlane, backends: list[Backend]
) -> None:
    a, b, _ = backends
    url = f"{haproxy.url}/hello/"
    sink = MembershipSink(plane, verify_interval=0.05)  # type: ignore[arg-type]  # duck-typed plane
    await sink.apply(registered({"hello": [("127.0.0.1", a.port), ("127.0.0.1", b.port)]}))
    assert await hits(url, 4) == Counter({"200 a": 2, "200 b": 2})

    verify = asyncio.create_task(sink.run())
    try:
        await asyncio.to_thread(haproxy.stop)
        await asyncio.sleep(0.3)  # the verify loop finds no haproxy, says so, and keeps going
        assert not verify.done()
        await asyncio.to_thread(haproxy.start)  # a fresh process: every slot empty again
        for _ in range(100):  # the verify loop sees the new worker and fills its slots
            if (await hits(url, 1))["503"] == 0:
                break
            await asyncio.sleep(0.02)
        assert await hits(url, 4) == Counter({"200 a": 2, "200 b": 2})
    finally:
        verify.cancel()


async def test_muster_restart_adopts_what_haproxy_holds(
    haproxy: HAProxyProcess, plane: HAProxyDataPlane, backends: list[Backend]
) -> None:
    a, b, _ = backends
    await plane.apply({"hello": [a.peer, b.peer]})
    fresh = HAProxyDataPlane(HAProxyCLI(haproxy.admin_socket))  # a new muster process
    assert await fresh.apply({"hello": [a.peer, b.peer]}) == 0, "nothing to change"
    assert await fresh.apply({"other": [a.peer]}) == 2, "hello emptied, other filled"
    assert await hits(f"{haproxy.url}/hello/", 2) == Counter({"503": 2})


async def test_reload_keeps_every_server_and_drops_no_request(
    haproxy: HAProxyProcess, plane: HAProxyDataPlane, backends: list[Backend]
) -> None:
    a, b, c = backends
    url = f"{haproxy.url}/hello/"
    await plane.apply({"hello": [a.peer, b.peer], "late": [c.peer]})  # late has no backend yet
    # A structure change: a new service's backend, rendered, then a reload.
    haproxy.dest.write_text(render_stock(_empty("hello", "other", "late"), "haproxy"))
    stop = asyncio.Event()

    async def load() -> Counter[str]:
        seen: Counter[str] = Counter()
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                seen += await hits(url, 1, session)
        return seen

    loader = asyncio.create_task(load())
    await asyncio.sleep(0.2)
    old = haproxy.worker_pid()
    new = await asyncio.to_thread(haproxy.reload)
    await asyncio.sleep(0.2)
    stop.set()
    seen = await loader
    assert new != old
    assert set(seen) == {"200 a", "200 b"} and seen["200 a"] > 20, seen
    # The new worker started with the old one's slots: nothing to push for hello, and the
    # new backend is filled as soon as the reload is seen.
    assert await plane.apply({"hello": [a.peer, b.peer], "late": [c.peer]}) == 1
    assert await hits(f"{haproxy.url}/late/", 2) == Counter({"200 c": 2})


async def test_reload_cmd_and_check_cmd(haproxy: HAProxyProcess, plane: HAProxyDataPlane) -> None:
    good = haproxy.dest.with_name("staged.cfg")
    good.write_text(render_stock(_empty("hello", "new"), "haproxy"))
    check = haproxy.check_cmd().replace("{{.src}}", str(good))
    assert subprocess.run(check, shell=True, capture_output=True).returncode == 0
    bad = haproxy.dest.with_name("bad.cfg")
    bad.write_text("backend svc_x\n    server s1 127.0.0.1:80 nonsense\n")
    result = subprocess.run(
        haproxy.check_cmd().replace("{{.src}}", str(bad)), shell=True, capture_output=True
    )
    assert result.returncode != 0 and b"nonsense" in result.stderr

    old = haproxy.worker_pid()
    good.replace(haproxy.dest)
    assert subprocess.run(haproxy.reload_cmd(), shell=True).returncode == 0
    assert haproxy.worker_pid() != old
    async with aiohttp.ClientSession() as session, session.get(f"{haproxy.url}/new/") as resp:
        assert resp.status == 503  # the new service's backend exists, with no server yet

    # A config that does not load: the reload fails and the old worker keeps serving.
    haproxy.dest.write_text("backend svc_x\n    server s1 127.0.0.1:80\n    server s1 127.0.0.1:81\n")
    worker = haproxy.worker_pid()
    result = subprocess.run(haproxy.reload_cmd(timeout=5), shell=True, capture_output=True)
    assert result.returncode == 1 and b"reload failed" in result.stderr
    assert haproxy.worker_pid() == worker


def test_stock_resource_loads_and_renders_both_modes(tmp_path: Path) -> None:
    proc = HAProxyProcess(tmp_path / "haproxy")
    proc.write_config()
    toml = write_resource_for(tmp_path / "confdir", proc)
    specs, errors = load_resources(toml.parent, toml.parent.parent / "templates")
    assert [s.dest for s in specs] == [proc.dest] and not errors
    shipped, errors = load_resources(stock_dir() / "conf.d", stock_dir() / "templates")
    assert [s.dest for s in shipped] == [Path("/etc/haproxy/muster-services.cfg")] and not errors

    values = registered({"hello": [("127.0.0.1", 8001), ("::1", 8002)]})
    reload_mode = render_stock(values, "reload")
    assert "server s0 127.0.0.1:8001\n" in reload_mode and "server s1 [::1]:8002\n" in reload_mode
    runtime = render_stock(values, "haproxy")
    assert "server-template s 1-16 0.0.0.0:0 disabled" in runtime and "8001" not in runtime
    many = render_stock(registered({"hello": [("127.0.0.1", 8000 + i) for i in range(8)]}), "haproxy")
    assert "server-template s 1-32 " in many, "slots grow before they run out"
    for text in (reload_mode, runtime):
        staged = tmp_path / "staged.cfg"
        staged.write_text(text)
        check = proc.check_cmd().replace("{{.src}}", str(staged))
        assert subprocess.run(check, shell=True, capture_output=True).returncode == 0


async def test_reload_mode_routes_rendered_servers(tmp_path: Path, backends: list[Backend]) -> None:
    a, b, _ = backends
    proc = HAProxyProcess(tmp_path / "haproxy")
    proc.write_config()
    proc.dest.write_text(
        render_stock(registered({"hello": [("127.0.0.1", a.port), ("127.0.0.1", b.port)]}), "reload")
    )
    with proc:
        assert await hits(f"{proc.url}/hello/", 4) == Counter({"200 a": 2, "200 b": 2})


async def test_hostile_input_never_reaches_haproxy(
    haproxy: HAProxyProcess, plane: HAProxyDataPlane, backends: list[Backend]
) -> None:
    a, _, _ = backends
    # Peers are validated on construction: no address, no command.
    for host in ("1.2.3.4; shutdown frontend muster", "127.0.0.1\nshow info", "example.com"):
        with pytest.raises(ValueError):
            Peer(host, 80)
    with pytest.raises(ValueError):
        Peer("127.0.0.1", 0)
    # Registry values go through the same validation as the template's: bad entries drop out.
    values = registered({"hello": [("127.0.0.1", a.port)]}) | {
        "/services/hello/servers/evil": json.dumps({"host": "127.0.0.1;shutdown frontend muster", "port": 1}),
        "/services/hello/servers/evil2": json.dumps({"host": "127.0.0.1", "port": "1\nshow info"}),
        "/services/hello;x/servers/a": json.dumps({"host": "127.0.0.1", "port": 1}),
    }
    assert membership(values) == {"hello": [("127.0.0.1", a.port, 1)]}
    # A service name that could carry a command is never sent.
    assert await plane.apply({"hello": [a.peer], "x;shutdown frontend muster": [a.peer]}) == 1
    with pytest.raises(ValueError, match="not one runtime API command"):
        await plane.cli.run(["show info;shutdown frontend muster"])
    assert await hits(f"{haproxy.url}/hello/", 3) == Counter({"200 a": 3})


async def test_unreachable_haproxy_is_a_clear_error(tmp_path: Path) -> None:
    plane = HAProxyDataPlane(HAProxyCLI(tmp_path / "missing.sock"))
    with pytest.raises(RuntimeAPIError, match="haproxy runtime API"):
        await plane.apply({})


def test_reload_helper_reports_a_missing_haproxy(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "muster.stack.haproxy", "reload", "--state-dir", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 1 and "haproxy" in result.stderr


async def test_dead_server_costs_no_failed_request(
    haproxy: HAProxyProcess, plane: HAProxyDataPlane, backends: list[Backend]
) -> None:
    a, b, _ = backends
    await b.stop()  # b's port is now closed: connections are refused
    await plane.apply({"hello": [a.peer, b.peer]})
    assert await hits(f"{haproxy.url}/hello/", 20) == Counter({"200 a": 20})
    # The first refused connection took b out (observe layer4, like nginx's max_fails)...
    stat = await plane.cli.command("show stat")
    rows = {f[1]: f[17] for f in (line.split(",") for line in stat.splitlines()) if f[0] == "svc_hello"}
    slots = parse_servers_state(await plane.cli.command("show servers state svc_hello"))
    slot = {s.peer.port: s.name for s in slots if s.peer is not None}
    assert rows[slot[b.port]].startswith("DOWN") and rows[slot[a.port]].startswith("UP"), rows
    # ...and a health check brings it back once it answers again (same address, same slot).
    again = await Backend("b2").start(port=b.port)
    try:
        for _ in range(300):
            if (await hits(f"{haproxy.url}/hello/", 2))["200 b2"]:
                break
            await asyncio.sleep(0.01)
        assert await hits(f"{haproxy.url}/hello/", 4) == Counter({"200 a": 2, "200 b2": 2})
    finally:
        await again.stop()


@pytest.mark.slow
async def test_churn_under_load_fails_no_request(
    haproxy: HAProxyProcess, plane: HAProxyDataPlane, backends: list[Backend]
) -> None:
    a, b, c = backends
    url = f"{haproxy.url}/hello/"
    worker = haproxy.worker_pid()
    await plane.apply({"hello": [a.peer, b.peer]})
    stop = asyncio.Event()

    async def client() -> Counter[str]:
        seen: Counter[str] = Counter()
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                try:
                    seen += await hits(url, 1, session)
                except aiohttp.ClientError as exc:
                    seen[type(exc).__name__] += 1
        return seen

    clients = [asyncio.create_task(client()) for _ in range(8)]
    for i in range(20):  # c joins and leaves every 200 ms
        await asyncio.sleep(0.2)
        await plane.apply({"hello": [a.peer, b.peer, c.peer] if i % 2 == 0 else [a.peer, b.peer]})
    stop.set()
    seen = sum([await t for t in clients], Counter[str]())
    assert set(seen) == {"200 a", "200 b", "200 c"}, seen
    assert haproxy.worker_pid() == worker


async def test_registry_to_traffic_through_etcd(
    etcd: EtcdProcess,
    key_prefix: str,
    haproxy: HAProxyProcess,
    plane: HAProxyDataPlane,
    backends: list[Backend],
) -> None:
    a, b, _ = backends
    root = f"{key_prefix}/services"
    url = f"{haproxy.url}/hello/"
    sink = MembershipSink(plane, root)  # type: ignore[arg-type]  # duck-typed plane
    async with EtcdV3Backend(options=BackendOptions(nodes=(etcd.client_url,))) as backend:

        async def follow() -> None:
            # What the daemon's watch does for a data-plane sink: every change is applied.
            since = None
            while True:
                snapshot = await backend.get_values([root])
                await sink.apply(snapshot.values)
                since = await backend.wait_changed([root], snapshot.revision or since)

        watcher = asyncio.create_task(follow())
        try:
            value = json.dumps({"host": "127.0.0.1", "port": a.port})
            lease_a = await backend.register(f"{root}/hello/servers/a", value, ttl=30)
            start = time.perf_counter()
            while (await hits(url, 1))["200 a"] == 0:
                assert time.perf_counter() - start < 1.0, "not routed within a second"
            value = json.dumps({"host": "127.0.0.1", "port": b.port})
            lease_b = await backend.register(f"{root}/hello/servers/b", value, ttl=30)
            while (await hits(url, 1))["200 b"] == 0:
                assert time.perf_counter() - start < 2.0
            await lease_a.revoke()  # deregistration: a must get no more requests
            for _ in range(100):
                if set(await hits(url, 2)) == {"200 b"}:
                    break
                await asyncio.sleep(0.01)
            before = a.count
            assert await hits(url, 10) == Counter({"200 b": 10}) and a.count == before
            await lease_b.revoke()
        finally:
            watcher.cancel()


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
async def test_ipv6_servers_fill_slots(haproxy: HAProxyProcess, plane: HAProxyDataPlane) -> None:
    runner, port = await text_backend("v6", "::1")
    try:
        await plane.apply({"hello": [Peer("::1", port)]})
        assert await hits(f"{haproxy.url}/hello/", 3) == Counter({"200 v6": 3})
        # The slot's state reads back as the same peer: a fresh plane has nothing to do.
        fresh = HAProxyDataPlane(HAProxyCLI(haproxy.admin_socket))
        assert await fresh.apply({"hello": [Peer("::1", port)]}) == 0
    finally:
        await runner.cleanup()


async def test_daemon_end_to_end_with_the_haproxy_sink(
    etcd: EtcdProcess,
    key_prefix: str,
    tmp_path: Path,
    haproxy: HAProxyProcess,
    backends: list[Backend],
) -> None:
    """etcd -> the daemon (stock resource: render, haproxy -c, reload) and the sink -> traffic."""
    a, b, _ = backends
    write_resource_for(tmp_path / "confdir", haproxy)
    config = replace(
        Config(),
        confdir=str(tmp_path / "confdir"),
        backend="etcdv3",
        nodes=(etcd.client_url,),
        watch=True,
        prefix=key_prefix,
        debounce_window=0.01,
    )
    root = f"{key_prefix}/services"
    backend = create_backend(config)
    daemon = Daemon(config, backend, sinks=[haproxy_sink(haproxy.admin_socket, root, verify_interval=0.2)])
    url = f"{haproxy.url}/hello/"
    task = None
    try:
        async with EtcdV3Backend(options=BackendOptions(nodes=(etcd.client_url,))) as registry:
            # Registered before the daemon starts: the daemon's first batch reads the sink's
            # snapshot and the resource's separately, so a change between the two reads
            # would reach the sink only with the next change (reported to the daemon's owner).
            value = json.dumps({"host": "127.0.0.1", "port": a.port})
            await registry.register(f"{root}/hello/servers/a", value, ttl=30)
            task = asyncio.create_task(daemon.run_watch())
            # A new service: rendered, checked and reloaded; then its slots are filled.
            for _ in range(500):
                if (await hits(url, 1))["200 a"]:
                    break
                await asyncio.sleep(0.02)
            for _ in range(500):  # the first batch (render, check, reload) is done
                if daemon.batches:
                    break
                await asyncio.sleep(0.02)
            assert "server-template s 1-16" in haproxy.dest.read_text()
            assert "svc_other" not in haproxy.dest.read_text()
            assert await hits(url, 2) == Counter({"200 a": 2}), "the reload kept a's slot"
            worker = haproxy.worker_pid()
            # A new server of an existing service: no reload.
            value = json.dumps({"host": "127.0.0.1", "port": b.port})
            await registry.register(f"{root}/hello/servers/b", value, ttl=30)
            for _ in range(200):
                if (await hits(url, 1))["200 b"]:
                    break
                await asyncio.sleep(0.01)
            assert await hits(url, 10) == Counter({"200 a": 5, "200 b": 5})
            assert haproxy.worker_pid() == worker, "a server change must not reload haproxy"
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await close_backend(backend)
