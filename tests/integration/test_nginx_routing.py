"""End to end with real processes: etcd, ``muster confd -watch`` with the stock template, nginx.

Traffic is real HTTP through nginx to ``DemoServer`` backends, which count what they serve.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from muster.errors import Error
from muster.registration import registration
from muster.stack.confd import DaemonProcess
from muster.stack.demo import DemoServer
from muster.stack.etcd import EtcdProcess, etcd_available
from muster.stack.nginx import NginxProcess, nginx_available
from muster.stack.stock import NginxPaths, write_resource_for, write_resource_general

pytestmark = pytest.mark.skipif(
    not (nginx_available() and etcd_available()), reason="needs /usr/sbin/nginx and /usr/bin/etcd"
)


@dataclass
class Routing:
    etcd: EtcdProcess
    nginx: NginxProcess
    daemon: DaemonProcess
    dest: Path

    def put(self, key: str, value: str) -> None:
        self._call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def delete(self, key: str) -> None:
        self._call("/v3/kv/deleterange", {"key": _b64(key)})

    def _call(self, path: str, body: dict[str, str]) -> None:
        req = urllib.request.Request(self.etcd.client_url + path, data=json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()

    def rendered(self) -> str:
        return self.dest.read_text()

    async def wait_rendered(self, predicate: str, present: bool = True, timeout: float = 10.0) -> float:
        """Wait until ``predicate`` is (or is no longer) in the rendered file; return seconds taken."""
        start = time.monotonic()
        while (predicate in self.rendered()) != present:
            if time.monotonic() - start > timeout:
                raise AssertionError(
                    f"{predicate!r} present={not present} after {timeout}s:\n{self.daemon.log_tail()}"
                )
            await asyncio.sleep(0.01)
        return time.monotonic() - start

    async def wait_live(self, timeout: float = 10.0) -> None:
        """Wait until every active nginx worker was started after the rendered file was written.

        nginx forks new workers only after loading the new config, so then the file on
        disk is the config every new connection is served with.
        """
        written = self.dest.stat().st_mtime
        deadline = time.monotonic() + timeout
        while True:
            workers = self.nginx.worker_pids()
            if workers and all(_started_at(pid) > written for pid in workers):
                return
            assert time.monotonic() < deadline, (
                f"nginx did not load the new config:\n{self.daemon.log_tail()}"
            )
            await asyncio.sleep(0.01)

    async def wait_change_live(self, needle: str, present: bool = True, timeout: float = 10.0) -> None:
        await self.wait_rendered(needle, present, timeout)
        await self.wait_live(timeout)


def _started_at(pid: int) -> float:
    """When process ``pid`` started, in seconds since the epoch (10 ms resolution)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    since_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    # /proc/stat's btime is whole seconds; the boot clock gives the offset precisely.
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME) + since_boot


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _routing(base: Path, general: bool) -> Iterator[Routing]:
    nginx_proc = NginxProcess(base / "nginx", worker_processes=2)
    with EtcdProcess(base / "etcd" / "data") as etcd, nginx_proc as nginx:
        if general:
            # The general commands (shadow check, reload by pid file), as for a system nginx.
            paths = NginxPaths(nginx.conf_path, nginx.dest, nginx.pid_path, nginx.prefix)
            write_resource_general(base / "confd", paths)
        else:
            write_resource_for(base / "confd", nginx)  # what muster up runs
        # No panic guard: these tests watch servers (even a service's last) leave as they go.
        with DaemonProcess(
            base / "confd", [etcd.client_url], log_path=base / "muster.log", extra_args=["-panic-grace", "0"]
        ) as daemon:
            try:
                daemon.wait_file(nginx.dest, timeout=20)
            except Error:
                tail = daemon.log_tail().replace('\\"', '"')
                if 'function "services" not defined' in tail:
                    pytest.fail(
                        "the daemon's template functions lack muster.registry.index.service_funcs: "
                        "resources/render.py must merge service_funcs(store) into func_map(store)"
                    )
                raise
            nginx.wait_serving()
            yield Routing(etcd, nginx, daemon, nginx.dest)


@pytest.fixture(scope="module")
def routing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routing]:
    yield from _routing(tmp_path_factory.mktemp("routing"), general=False)


@pytest.fixture(scope="module")
def routing_general(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routing]:
    yield from _routing(tmp_path_factory.mktemp("routing-general"), general=True)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def fetch(client: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with client.get(url) as resp:
        return resp.status, await resp.text()


async def test_a_registered_server_gets_traffic_within_a_second(
    routing: Routing, client: aiohttp.ClientSession
) -> None:
    async with DemoServer("fresh-1") as server:
        url = f"{routing.nginx.url}/fresh/"
        started = time.monotonic()
        reg = registration("fresh", "127.0.0.1", server.port, server_id="fresh-1", ttl=5,
                           nodes=[routing.etcd.client_url])  # fmt: skip
        async with reg:
            await reg.wait_registered()
            while True:
                status, body = await fetch(client, url)
                if status == 200 and body == "fresh-1\n":
                    break
                assert time.monotonic() - started < 1.0, f"not routed after 1 s (last {status})"
                await asyncio.sleep(0.005)
            assert server.hits >= 1


async def test_a_deregistered_server_gets_nothing_after_the_reload(
    routing: Routing, client: aiohttp.ClientSession
) -> None:
    async with DemoServer("keep") as keep, DemoServer("leave") as leave:
        nodes = [routing.etcd.client_url]
        async with registration("dereg", "127.0.0.1", keep.port, server_id="keep", ttl=5, nodes=nodes) as r1:
            await r1.wait_registered()
            reg = registration("dereg", "127.0.0.1", leave.port, server_id="leave", ttl=5, nodes=nodes)
            async with reg:
                await reg.wait_registered()
                await routing.wait_change_live(f"127.0.0.1:{leave.port}")
                bodies = {(await fetch(client, f"{routing.nginx.url}/dereg/"))[1] for _ in range(40)}
                assert bodies == {"keep\n", "leave\n"}  # round robin over both
            # Deregistered: once the new config serves, no request may reach it.
            await routing.wait_change_live(f"127.0.0.1:{leave.port}", present=False)
            leave.hits = 0
            async with aiohttp.ClientSession() as fresh:  # no keep-alive to old workers
                results = [await fetch(fresh, f"{routing.nginx.url}/dereg/") for _ in range(100)]
            assert results == [(200, "keep\n")] * 100
            assert leave.hits == 0


async def test_a_killed_agent_drops_out_after_its_ttl(
    routing: Routing, client: aiohttp.ClientSession
) -> None:
    ttl = 3
    async with DemoServer("crash-1") as server:
        agent = subprocess.Popen(
            [sys.executable, "-m", "muster", "register", "--service", "crash", "--host", "127.0.0.1",
             "--port", str(server.port), "--id", "crash-1", "--ttl", str(ttl),
             "--node", routing.etcd.client_url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            addr = f"127.0.0.1:{server.port}"
            await routing.wait_rendered(addr, timeout=15)
            os.kill(agent.pid, signal.SIGKILL)
            killed = time.monotonic()
            agent.wait()
            # The key outlives the agent until its lease expires...
            await asyncio.sleep(1.0)
            assert addr in routing.rendered()
            # ...then it is gone, and nginx stops sending it traffic.
            await routing.wait_rendered(addr, present=False, timeout=ttl + 5)
            gone_after = time.monotonic() - killed
            assert ttl - 1 <= gone_after <= ttl + 4
            await routing.wait_live()
            server.hits = 0
            async with aiohttp.ClientSession() as fresh:
                status, _ = await fetch(fresh, f"{routing.nginx.url}/crash/")
            # No key is left under /services/crash, so the service itself is gone.
            assert status == 404
            assert server.hits == 0
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()


async def test_hostile_values_stay_out_and_the_config_stays_valid(
    routing_general: Routing, client: aiohttp.ClientSession
) -> None:
    routing = routing_general
    async with DemoServer("good") as good, DemoServer("later") as later:
        pwned_port = routing.nginx.status_port + 1
        # Crafted to pass `nginx -t` when pasted verbatim, as the seed's template does.
        injection = (
            f"127.0.0.1:80;\n}}\nserver {{ listen 127.0.0.1:{pwned_port}; return 200 pwned; }}\n"
            "upstream pad {\n server 127.0.0.1"
        )
        hostile = {
            "/services/evil/servers/inject": json.dumps({"host": injection, "port": 80}),
            "/services/evil/servers/include": json.dumps(
                {"host": "1.2.3.4; include /etc/passwd", "port": 80}
            ),
            "/services/evil/servers/brace": json.dumps({"host": "10.0.0.1", "port": "80}"}),
            "/services/evil/servers/notjson": "{not json",
            "/services/evil/servers/range": json.dumps({"host": "10.0.0.1", "port": 70000}),
            "/services/evil name/servers/a": json.dumps({"host": "127.0.0.1", "port": good.port}),
            "/services/evil;x/servers/a": json.dumps({"host": "127.0.0.1", "port": good.port}),
            "/services/mixed/servers/bad": "[1, 2]",
            "/services/mixed/servers/good": json.dumps({"host": "127.0.0.1", "port": good.port}),
        }
        try:
            for key, value in hostile.items():
                routing.put(key, value)
            await routing.wait_change_live(f"127.0.0.1:{good.port}")
            text = routing.rendered()
            for needle in ("pwned", "passwd", "evil name", "evil;x", "70000", "80}", "pad"):
                assert needle not in text
            routing.nginx.check()  # the whole config on disk is valid
            status, body = await fetch(client, f"{routing.nginx.url}/mixed/")
            assert (status, body) == (200, "good\n")
            status, _ = await fetch(client, f"{routing.nginx.url}/evil/")
            assert status == 503  # known service, no valid server
            with pytest.raises(aiohttp.ClientConnectionError):
                await fetch(client, f"http://127.0.0.1:{pwned_port}/")
            # Nothing froze: a later registration still goes live.
            routing.put(
                "/services/mixed/servers/later", json.dumps({"host": "127.0.0.1", "port": later.port})
            )
            await routing.wait_change_live(f"127.0.0.1:{later.port}")
            assert "bad" not in routing.rendered().split("upstream svc_mixed", 1)[1].split("}", 1)[0]
        finally:
            for key in [*hostile, "/services/mixed/servers/later"]:
                routing.delete(key)


async def test_a_server_that_dies_unannounced_costs_no_failed_request(routing: Routing) -> None:
    async with DemoServer("alive") as alive:
        dead = DemoServer("dead")
        await dead.start()
        nodes = [routing.etcd.client_url]
        async with (
            registration("crashy", "127.0.0.1", alive.port, server_id="alive", ttl=30, nodes=nodes) as r1,
            registration("crashy", "127.0.0.1", dead.port, server_id="dead", ttl=30, nodes=nodes) as r2,
        ):
            await r1.wait_registered()
            await r2.wait_registered()
            # Both servers may arrive in separate renders: wait for the file holding both
            # (not just the first render naming one), then for nginx to serve that file.
            await routing.wait_rendered(f"127.0.0.1:{alive.port}")
            await routing.wait_change_live(f"127.0.0.1:{dead.port}")
            await dead.stop()  # still registered: nginx finds out by connecting
            async with aiohttp.ClientSession() as session:
                results = [await fetch(session, f"{routing.nginx.url}/crashy/") for _ in range(50)]
            # proxy_next_upstream retries the refused connection on the other server.
            assert results == [(200, "alive\n")] * 50
