"""Health-gated registration against real etcd: TCP, HTTP and command checks remove and restore the key."""

from __future__ import annotations

import http.server
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from register_helpers import SpawnAgent, spawn_fixture  # noqa: F401  (the ``spawn`` fixture)
from registry_probe import RegistryProbe

from muster.stack.etcd import EtcdProcess

FAST = ["--check-interval", "0.1", "--check-timeout", "0.5", "--rise", "2", "--fall", "2"]


class Listener:
    """A TCP port the test opens and closes at will."""

    def __init__(self) -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.sock: socket.socket | None = None

    def open(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(512)
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@pytest.fixture
def listener() -> Iterator[Listener]:
    lis = Listener()
    yield lis
    lis.close()


@pytest.mark.parametrize("api", ["etcdv3", "etcd"])
def test_tcp_check_gates_the_key(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, listener: Listener, api: str
) -> None:
    probe = RegistryProbe(etcd.client_url, api)
    agent = spawn(
        etcd.client_url, api, key_prefix, "--check-tcp", f"127.0.0.1:{listener.port}", *FAST, ttl=30
    )
    # Nothing listens: the key must never be written.
    pytest.raises(AssertionError, probe.wait_for, agent.key, True, timeout=1.0)
    listener.open()
    probe.wait_for(agent.key, True, timeout=5)
    listener.close()
    took = probe.wait_for(agent.key, False, timeout=5)
    assert took < 2.0, took  # fall=2 at 0.1 s, far below the 30 s TTL
    listener.open()
    probe.wait_for(agent.key, True, timeout=5)
    assert agent.signal(signal.SIGTERM) == 0
    assert probe.get(agent.key) is None
    log = agent.output()
    assert "registration.health.changed healthy=False" in log
    assert "registration.health.changed healthy=True" in log


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_http_check_follows_the_status(etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent) -> None:
    class handler(_Handler):  # noqa: N801 - a fresh class per test holds this test's status
        status = 200

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
        probe = RegistryProbe(etcd.client_url, "etcdv3")
        agent = spawn(etcd.client_url, "etcdv3", key_prefix, "--check-http", url, *FAST, ttl=30)
        probe.wait_for(agent.key, True, timeout=5)
        handler.status = 503
        probe.wait_for(agent.key, False, timeout=5)
        handler.status = 302  # redirects count as healthy, as in haproxy
        probe.wait_for(agent.key, True, timeout=5)
        assert agent.signal(signal.SIGTERM) == 0
    finally:
        server.shutdown()
        server.server_close()


def test_command_check_follows_the_exit_status(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, tmp_path: Path
) -> None:
    flag = tmp_path / "healthy"
    flag.touch()
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    agent = spawn(etcd.client_url, "etcdv3", key_prefix, "--check-cmd", f"test -f {flag}", *FAST, ttl=30)
    probe.wait_for(agent.key, True, timeout=5)
    flag.unlink()
    probe.wait_for(agent.key, False, timeout=5)
    flag.touch()
    probe.wait_for(agent.key, True, timeout=5)
    assert agent.signal(signal.SIGTERM) == 0
    assert probe.get(agent.key) is None


def test_hanging_command_check_times_out_as_a_failure(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, tmp_path: Path
) -> None:
    flag = tmp_path / "hang"
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    command = f"if [ -f {flag} ]; then sleep 30; fi"
    agent = spawn(
        etcd.client_url,
        "etcdv3",
        key_prefix,
        "--check-cmd",
        command,
        "--check-interval",
        "0.1",
        "--check-timeout",
        "0.2",
        "--rise",
        "1",
        "--fall",
        "2",
        ttl=30,
    )
    probe.wait_for(agent.key, True, timeout=5)
    flag.touch()
    probe.wait_for(agent.key, False, timeout=5)
    assert agent.signal(signal.SIGTERM) == 0
    assert "timed out after 0.2s" in agent.output()
