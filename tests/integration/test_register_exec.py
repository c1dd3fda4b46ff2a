"""Exec mode against real etcd: the child is registered once it listens and deregistered before it stops."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

from register_helpers import Agent, SpawnAgent, spawn_fixture  # noqa: F401  (the ``spawn`` fixture)
from registry_probe import RegistryProbe

from muster.stack.etcd import EtcdProcess, free_port

# The child: listens on PORT after DELAY seconds; on SIGTERM it records whether its key is
# still in etcd (through the v3 gateway) and exits; SIGHUP is recorded; it exits with
# status 3 when the file DIE appears.
CHILD = r"""
import base64, json, os, signal, socket, sys, time, urllib.request
port, etcd, key, out, delay = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])

def key_present():
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    with urllib.request.urlopen(etcd + "/v3/kv/range", body, timeout=5) as r:
        return bool(json.loads(r.read()).get("kvs"))

def record(name, **fields):
    with open(os.path.join(out, name), "w") as f:
        json.dump(dict(fields, t=time.time()), f)

def on_term(signum, frame):
    record("term", signal=signum, key_present=key_present())
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGHUP, lambda s, f: record("hup"))
record("started")
time.sleep(delay)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(64)
srv.settimeout(0.05)
record("listening")
while not os.path.exists(os.path.join(out, "die")):
    try:
        srv.accept()[0].close()
    except OSError:
        pass
sys.exit(3)
"""

FAST = ["--check-interval", "0.1", "--rise", "1", "--fall", "2"]


def child(tmp_path: Path, etcd: EtcdProcess, key: str, port: int, delay: float = 0.0) -> list[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return [sys.executable, str(script), str(port), etcd.client_url, key, str(tmp_path), str(delay)]


def record(tmp_path: Path, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((tmp_path / name).read_text())
    return data


def spawn_exec(
    spawn: SpawnAgent, etcd: EtcdProcess, prefix: str, tmp_path: Path, *flags: str, delay: float = 0.0
) -> tuple[Agent, int]:
    port = free_port()
    key = f"{prefix}/web/servers/a"
    command = child(tmp_path, etcd, key, port, delay)
    agent = spawn(
        etcd.client_url, "etcdv3", prefix, "--port", str(port), *FAST, *flags, command=command, ttl=30
    )
    assert agent.key == key
    return agent, port


def test_deregisters_then_drains_then_stops_the_child(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, tmp_path: Path
) -> None:
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    agent, port = spawn_exec(spawn, etcd, key_prefix, tmp_path, "--drain", "1.0")
    probe.wait_for(agent.key, True, timeout=10)
    entry = probe.get(agent.key)
    assert entry is not None and json.loads(entry.value)["port"] == port
    agent.proc.send_signal(signal.SIGTERM)
    probe.wait_for(agent.key, False, timeout=5)
    deregistered = time.time()
    assert agent.proc.wait(timeout=15) == 0
    term = record(tmp_path, "term")
    assert term["key_present"] is False, "the child was signalled while still registered"
    assert term["signal"] == signal.SIGTERM
    drained = float(term["t"]) - deregistered  # type: ignore[arg-type]
    assert 0.7 <= drained <= 3.0, drained


def test_registers_only_once_the_child_listens(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, tmp_path: Path
) -> None:
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    agent, _ = spawn_exec(spawn, etcd, key_prefix, tmp_path, "--drain", "0", delay=1.5)
    probe.wait_for(agent.key, True, timeout=10)
    seen = time.time()
    listening = float(record(tmp_path, "listening")["t"])  # type: ignore[arg-type]
    assert seen >= listening, "registered before the child listened"
    assert agent.signal(signal.SIGTERM) == 0


def test_child_death_removes_the_key_at_once_and_passes_its_status(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, tmp_path: Path
) -> None:
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    agent, _ = spawn_exec(spawn, etcd, key_prefix, tmp_path)
    probe.wait_for(agent.key, True, timeout=10)
    (tmp_path / "die").touch()
    assert agent.proc.wait(timeout=10) == 3
    assert probe.get(agent.key) is None  # the TTL is 30 s: it was revoked
    assert "registration.child.exited" in agent.output()


def test_sighup_is_forwarded_to_the_child(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, tmp_path: Path
) -> None:
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    agent, _ = spawn_exec(spawn, etcd, key_prefix, tmp_path, "--drain", "0")
    probe.wait_for(agent.key, True, timeout=10)
    agent.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while not (tmp_path / "hup").exists():
        assert time.monotonic() < deadline, "SIGHUP never reached the child"
        time.sleep(0.02)
    assert probe.get(agent.key) is not None  # SIGHUP is not a shutdown
    assert agent.signal(signal.SIGTERM) == 0


def test_missing_command_is_a_clear_error(etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent) -> None:
    agent = spawn(etcd.client_url, "etcdv3", key_prefix, command=["/nonexistent/service"])
    assert agent.proc.wait(timeout=10) == 2
    assert "cannot run '/nonexistent/service'" in agent.output()


def test_no_drain_when_the_child_was_never_registered(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, tmp_path: Path
) -> None:
    agent, _ = spawn_exec(spawn, etcd, key_prefix, tmp_path, "--drain", "5", delay=30)
    deadline = time.monotonic() + 10
    while not (tmp_path / "started").exists():  # its handlers are in place, it does not listen
        assert time.monotonic() < deadline, agent.output()
        time.sleep(0.02)
    time.sleep(0.3)  # a few failing checks: never healthy, never registered
    started = time.monotonic()
    assert agent.signal(signal.SIGTERM) == 0, agent.output()
    assert time.monotonic() - started < 3.0
    assert record(tmp_path, "term")["key_present"] is False


def test_child_is_terminated_if_muster_is_killed(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, tmp_path: Path
) -> None:
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    agent, _ = spawn_exec(spawn, etcd, key_prefix, tmp_path)
    probe.wait_for(agent.key, True, timeout=10)
    agent.signal(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while not (tmp_path / "term").exists():
        assert time.monotonic() < deadline, "the child outlived muster"
        time.sleep(0.02)
    assert record(tmp_path, "term")["signal"] == signal.SIGTERM
    # Nobody revoked it: the key stays until its TTL (30 s here) runs out.
    assert probe.get(agent.key) is not None
