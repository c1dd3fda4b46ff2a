"""``muster register`` against a real etcd, v3 (leases) and v2 (TTLs): write, keep, remove, survive.

Every check reads etcd through ``registry_probe`` (a separate minimal client), and every
``muster register`` runs as a real subprocess receiving real signals.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import pytest
from register_helpers import SpawnAgent, spawn_fixture  # noqa: F401  (the ``spawn`` fixture)
from registry_probe import RegistryProbe, wait_until

from muster.stack.etcd import EtcdCluster, EtcdProcess, free_port

APIS = ["etcdv3", "etcd"]


@pytest.mark.parametrize("api", APIS)
def test_key_appears_with_value_and_ttl_and_sigterm_removes_it_before_exit(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, api: str
) -> None:
    probe = RegistryProbe(etcd.client_url, api)
    agent = spawn(etcd.client_url, api, key_prefix, "--meta", "zone=eu", ttl=30)
    probe.wait_for(agent.key, True, timeout=10)
    entry = probe.get(agent.key)
    assert entry is not None
    assert json.loads(entry.value) == {"host": "127.0.0.1", "port": 8080, "zone": "eu"}
    assert entry.ttl is not None and 25 <= entry.ttl <= 30, entry
    # A 30 s TTL cannot explain the key vanishing: only muster's revoke/delete can.
    assert agent.signal(signal.SIGTERM) == 0, agent.output()
    assert probe.get(agent.key) is None, agent.output()
    assert "registration.deregister.complete" in agent.output()


def test_sigint_also_deregisters(etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent) -> None:
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    agent = spawn(etcd.client_url, "etcdv3", key_prefix, ttl=30)
    probe.wait_for(agent.key, True, timeout=10)
    assert agent.signal(signal.SIGINT) == 0
    assert probe.get(agent.key) is None


@pytest.mark.parametrize("api", APIS)
def test_refreshes_keep_the_key_beyond_its_ttl(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, api: str
) -> None:
    probe = RegistryProbe(etcd.client_url, api)
    agent = spawn(etcd.client_url, api, key_prefix, ttl=2)
    probe.wait_for(agent.key, True, timeout=10)
    deadline = time.monotonic() + 5  # 2.5 TTLs
    while time.monotonic() < deadline:
        assert probe.get(agent.key) is not None, agent.output()
        time.sleep(0.1)
    assert agent.signal(signal.SIGTERM) == 0


@pytest.mark.slow
@pytest.mark.parametrize("api", APIS)
def test_kill_9_leaves_the_key_until_the_ttl_runs_out(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, api: str
) -> None:
    probe = RegistryProbe(etcd.client_url, api)
    agent = spawn(etcd.client_url, api, key_prefix, ttl=3)
    probe.wait_for(agent.key, True, timeout=10)
    agent.signal(signal.SIGKILL)
    killed = time.monotonic()
    assert probe.get(agent.key) is not None  # nobody deleted it
    probe.wait_for(agent.key, False, timeout=8)
    gone_after = time.monotonic() - killed
    # Refreshed at most a third of a TTL before the kill, so it lives 2-3 s more (+ etcd's tick).
    assert 1.0 <= gone_after <= 5.0, gone_after


@pytest.mark.parametrize("api", APIS)
def test_key_removed_behind_its_back_is_written_again(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, api: str
) -> None:
    """v3: the lease revoked (as after a snapshot restore); v2: the key deleted. Both come back."""
    probe = RegistryProbe(etcd.client_url, api)
    agent = spawn(etcd.client_url, api, key_prefix, ttl=3)
    probe.wait_for(agent.key, True, timeout=10)
    before = probe.get(agent.key)
    probe.delete(agent.key)
    took = probe.wait_for(agent.key, True, timeout=5)
    assert took < 2.5, took  # noticed at the next refresh (every TTL/3 = 1 s)
    after = probe.get(agent.key)
    assert after is not None and before is not None and after.value == before.value
    if api == "etcdv3":
        assert after.lease != before.lease
    assert "registration.lease.lost" in agent.output()
    assert agent.signal(signal.SIGTERM) == 0
    assert probe.get(agent.key) is None


@pytest.mark.slow
@pytest.mark.parametrize("api", APIS)
def test_etcd_stop_and_restart_ends_with_the_key_back_within_seconds(
    etcd_server_factory: Callable[..., EtcdProcess], spawn: SpawnAgent, api: str
) -> None:
    server = etcd_server_factory()
    probe = RegistryProbe(server.client_url, api)
    agent = spawn(server.client_url, api, "/services", ttl=2)
    probe.wait_for(agent.key, True, timeout=10)
    server.stop()
    time.sleep(4)  # two TTLs: a v2 TTL key expires meanwhile; v3 keeps its lease through a restart
    assert agent.proc.poll() is None, "muster register must not exit while etcd is away"
    server.start()
    took = probe.wait_for(agent.key, True, timeout=10)
    assert took < 4.0, f"key back {took:.2f}s after etcd returned\n{agent.output()}"
    # And it is kept alive afterwards, not just left over: still there two TTLs later.
    time.sleep(4)
    assert probe.get(agent.key) is not None, agent.output()
    assert agent.signal(signal.SIGTERM) == 0
    assert probe.get(agent.key) is None


def test_fails_over_to_the_next_node(etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    agent = spawn([dead, etcd.client_url], "etcdv3", key_prefix, ttl=3)
    probe.wait_for(agent.key, True, timeout=10)
    time.sleep(2.5)  # through a couple of refreshes
    assert probe.get(agent.key) is not None
    assert agent.signal(signal.SIGTERM) == 0
    assert probe.get(agent.key) is None


def test_starts_while_etcd_is_down_and_registers_when_it_comes(
    etcd_server_factory: Callable[..., EtcdProcess], spawn: SpawnAgent
) -> None:
    server = etcd_server_factory(start=False)
    agent = spawn(server.client_url, "etcdv3", "/services", ttl=5)
    time.sleep(1.5)
    assert agent.proc.poll() is None, agent.output()
    server.start()
    probe = RegistryProbe(server.client_url, "etcdv3")
    assert probe.wait_for(agent.key, True, timeout=10) < 4.0
    assert agent.signal(signal.SIGTERM) == 0


def test_sigterm_while_etcd_is_down_exits_within_the_stop_timeout(
    etcd_server_factory: Callable[..., EtcdProcess], spawn: SpawnAgent
) -> None:
    server = etcd_server_factory()
    probe = RegistryProbe(server.client_url, "etcdv3")
    agent = spawn(server.client_url, "etcdv3", "/services", "--stop-timeout", "1", ttl=5)
    probe.wait_for(agent.key, True, timeout=10)
    server.stop()
    started = time.monotonic()
    assert agent.signal(signal.SIGTERM) == 0
    assert time.monotonic() - started < 4.0
    assert "registration.deregister.abandoned" in agent.output()


def test_wait_until_helper_reports_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match="waiting for nothing"):
        wait_until(lambda: False, 0.05, "nothing")


@pytest.mark.slow
def test_keeps_the_lease_alive_when_its_cluster_member_dies(
    etcd_cluster: EtcdCluster, key_prefix: str, spawn: SpawnAgent
) -> None:
    urls = etcd_cluster.client_urls
    agent = spawn(urls, "etcdv3", key_prefix, ttl=3)
    survivor = RegistryProbe(urls[1], "etcdv3")
    survivor.wait_for(agent.key, True, timeout=10)
    etcd_cluster[0].kill()  # the member muster talks to
    deadline = time.monotonic() + 7  # over two TTLs, and a new election if member 0 led
    while time.monotonic() < deadline:
        try:
            entry = survivor.get(agent.key)
        except OSError:
            entry = None  # no leader for a moment; try again
        else:
            assert entry is not None, agent.output()
        time.sleep(0.2)
    assert agent.signal(signal.SIGTERM) == 0
    assert survivor.get(agent.key) is None
