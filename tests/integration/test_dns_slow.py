"""A server registered by a DNS name that takes 8 s to resolve delays no other change.

Real etcd, nginx and ``muster confd -watch`` (in both data planes), and a real slow DNS
server: a tiny UDP server on a loopback address of its own, port 53, answering after a
delay. Only the daemon sees it: it runs under ``unshare --mount`` with a private
``/etc/resolv.conf`` bind-mounted over the host's (the mount dies with the daemon), so the
host's resolver, etcd and nginx are untouched. nginx never needs it: muster renders (or
pushes) the addresses it resolved, never the name. Needs root (port 53, the mount).
"""

from __future__ import annotations

import asyncio
import heapq
import os
import random
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from backend_helpers import text_backend

from muster.dataplane.nginx.conf import LuaSettings, http_block, lua_available, main_block
from muster.stack.confd import DaemonProcess
from muster.stack.etcd import EtcdProcess, etcd_available
from muster.stack.nginx import NginxProcess, nginx_available
from muster.stack.stock import write_resource_for

SLOW = "slow.muster.test"
SLOW_SECONDS = 8.0
GONE = "gone.muster.test"


def _namespace_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root: a DNS server on port 53 and a private /etc/resolv.conf mount"
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "needs unshare and mount (util-linux)"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"unshare --mount fails here: {probe.stderr.decode(errors='replace').strip()}"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd"),
    pytest.mark.skipif(_namespace_problem() is not None, reason=str(_namespace_problem())),
]


class SlowDns:
    """A DNS server on ``ADDRESS:53`` answering A (and empty AAAA) queries for ``names``
    after their delay, NXDOMAIN for any other name; ``asked`` counts A queries per name."""

    def __init__(self, names: dict[str, tuple[str, float]]) -> None:
        self.names = names
        self.asked: dict[str, int] = {}
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(20):  # a loopback address of its own: another test may run one too
            self.address = (
                f"127.{random.randrange(1, 255)}.{random.randrange(0, 255)}.{random.randrange(1, 255)}"
            )
            try:
                self._sock.bind((self.address, 53))
                break
            except OSError:
                continue
        else:
            self._sock.close()
            raise OSError("no free loopback address for the DNS server")
        self._thread = threading.Thread(target=self._serve, name="slow-dns", daemon=True)

    def __enter__(self) -> SlowDns:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        due: list[tuple[float, int, bytes, tuple[str, int]]] = []
        sequence = 0
        while not self._stop.is_set():
            now = time.monotonic()
            while due and due[0][0] <= now:
                _, _, reply, peer = heapq.heappop(due)
                self._sock.sendto(reply, peer)
            self._sock.settimeout(max(0.001, min(0.05, due[0][0] - now)) if due else 0.05)
            try:
                query, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply, delay = self._answer(query)
            except (struct.error, IndexError, UnicodeDecodeError):
                continue
            sequence += 1
            heapq.heappush(due, (time.monotonic() + delay, sequence, reply, peer))

    def _answer(self, query: bytes) -> tuple[bytes, float]:
        qid, _flags, _qd = struct.unpack_from("!HHH", query, 0)
        labels, offset = [], 12
        while query[offset]:
            length = query[offset]
            labels.append(query[offset + 1 : offset + 1 + length].decode("ascii"))
            offset += 1 + length
        qtype = struct.unpack_from("!H", query, offset + 1)[0]
        question = query[12 : offset + 5]
        name = ".".join(labels).lower()
        found = self.names.get(name)
        if found is None:  # NXDOMAIN, at once
            return struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question, 0.0
        address, delay = found
        if qtype != 1:  # AAAA and the rest: no such record
            return struct.pack("!HHHHHH", qid, 0x8180, 1, 0, 0, 0) + question, delay
        self.asked[name] = self.asked.get(name, 0) + 1
        record = struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton(address)
        return struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + record, delay


class NamespacedDaemon(DaemonProcess):
    """``muster confd`` with ``resolv_conf`` bind-mounted over /etc/resolv.conf in a mount
    namespace of its own (unshare execs it: its pid is the daemon's)."""

    def __init__(self, *args: object, resolv_conf: Path, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.resolv_conf = resolv_conf

    def command(self) -> list[str]:
        script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        inner = super().command()
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            str(self.resolv_conf),
            *inner,
        ]


@dataclass
class Stack:
    etcd: EtcdProcess
    nginx: NginxProcess
    daemon: DaemonProcess
    dns: SlowDns

    def put(self, key: str, host: str, port: int) -> None:
        import base64
        import json

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        body = {"key": b64(key), "value": b64(json.dumps({"host": host, "port": port}))}
        req = urllib.request.Request(self.etcd.client_url + "/v3/kv/put", data=json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()

    def get(self, service: str) -> str | None:
        try:
            with urllib.request.urlopen(f"{self.nginx.url}/{service}/", timeout=2) as resp:
                return f"{resp.status} {resp.read().decode()}"
        except urllib.error.HTTPError as exc:
            with exc:
                return f"{exc.code}"
        except OSError:
            return None

    async def routed(self, service: str, body: str, timeout: float = 10.0) -> float:
        """Seconds until ``GET /service/`` answers ``200 body``."""
        started = time.monotonic()
        while await asyncio.to_thread(self.get, service) != f"200 {body}":
            if time.monotonic() - started > timeout:
                raise AssertionError(f"/{service}/ not routed in {timeout}s:\n{self.daemon.log_tail(40)}")
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    def logged(self, needle: str) -> bool:
        return needle in self.daemon.log_path.read_text(errors="replace")


def _stack(base: Path, lua: bool) -> Iterator[Stack]:
    admin = base / "run" / "admin.sock"
    admin.parent.mkdir(parents=True)
    admin.parent.chmod(0o700)
    snippets: dict[str, list[str]] = {}
    if lua:
        snippets = {
            "main_snippets": [main_block()],
            "http_snippets": [http_block(LuaSettings(admin_socket=admin))],
        }
    resolv = base / "resolv.conf"
    with SlowDns({SLOW: ("127.0.0.1", SLOW_SECONDS)}) as dns:
        # One try, long enough for the slow answer: glibc's default (5 s, twice) would give up.
        resolv.write_text(f"nameserver {dns.address}\noptions timeout:20 attempts:1\n")
        with EtcdProcess(base / "etcd" / "data") as etcd, NginxProcess(base / "nginx", **snippets) as nginx:  # type: ignore[arg-type]
            write_resource_for(base / "confd", nginx)
            plane = (
                ["-dataplane", "lua", "-dataplane-admin", f"unix:{admin}"]
                if lua
                else ["-dataplane", "reload"]
            )
            daemon = NamespacedDaemon(
                base / "confd",
                [etcd.client_url],
                log_path=base / "muster.log",
                extra_args=plane,
                resolv_conf=resolv,
            )
            with daemon:
                daemon.wait_file(nginx.dest, timeout=20)
                nginx.wait_serving()
                yield Stack(etcd, nginx, daemon, dns)


@pytest.fixture(params=["reload", "lua"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    lua = request.param == "lua"
    if lua and not lua_available():
        pytest.skip("libnginx-mod-http-lua is not installed")
    yield from _stack(tmp_path, lua)


async def test_a_slow_dns_name_delays_no_unrelated_change(stack: Stack, tmp_path: Path) -> None:
    lua = "lua" in " ".join(stack.daemon.extra_args)
    late_event = "dataplane.resolve.late" if lua else "services.host.late"
    runners = []
    try:
        ports = {}
        for name in ("fast", "slow", "b1", "b2", "b3", "after"):
            runner, ports[name] = await text_backend(name)
            runners.append(runner)
        stack.put("/services/fast/servers/a", "127.0.0.1", ports["fast"])
        await stack.routed("fast", "fast", timeout=15)

        registered = time.monotonic()
        stack.put("/services/slow/servers/s", SLOW, ports["slow"])
        stack.put("/services/gone/servers/g", GONE, ports["slow"])  # NXDOMAIN: costs only itself
        deadline = time.monotonic() + 5
        while not stack.logged(f"{late_event} host={SLOW}"):  # its one wait (0.5 s) is over
            assert time.monotonic() < deadline, stack.daemon.log_tail(40)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # that batch's reload, if any, is done too

        took = {}
        for name in ("b1", "b2", "b3"):  # unrelated changes while the slow lookup runs
            assert time.monotonic() - registered < SLOW_SECONDS - 1, "the slow lookup must still be running"
            stack.put(f"/services/{name}/servers/x", "127.0.0.1", ports[name])
            took[name] = await stack.routed(name, name, timeout=10)
            await asyncio.sleep(0.3)

        # The slow name answers at last: muster routes it without any registry change.
        await stack.routed("slow", "slow", timeout=20)
        took["slow, after registering"] = time.monotonic() - registered
        stack.put("/services/after/servers/x", "127.0.0.1", ports["after"])
        took["after"] = await stack.routed("after", "after", timeout=10)

        plane = "lua" if lua else "reload"
        print(f"\n{plane} plane, seconds to route: " + ", ".join(f"{k}={v:.3f}" for k, v in took.items()))
        for name in ("b1", "b2", "b3", "after"):
            assert took[name] < 1.0, f"{plane}: {name} took {took[name]:.2f}s with a slow name registered"
        assert SLOW_SECONDS <= took["slow, after registering"] < SLOW_SECONDS + 4
        assert stack.dns.asked.get(SLOW, 0) <= 2, "one lookup (and not one per change)"
        failed_event = "dataplane.resolve.failed" if lua else "services.host.unresolved"
        log = stack.daemon.log_path.read_text(errors="replace")
        assert log.count(f"{failed_event} host={GONE}") == 1, "logged once per change of state"
        if not lua:
            rendered = stack.nginx.dest.read_text()
            assert SLOW not in rendered and f"127.0.0.1:{ports['slow']}" in rendered, "nginx gets addresses"
        assert await asyncio.to_thread(stack.get, "fast") == "200 fast"  # the backends share this loop
    finally:
        for runner in runners:
            await runner.cleanup()
