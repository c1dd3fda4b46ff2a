"""``muster register --backend zookeeper``: an ephemeral znode, put back when deleted, created again
in a new session after the old one expired, removed on SIGTERM and gone with a killed agent.

The agent runs as a real subprocess; znodes are read and deleted with a separate kazoo client.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from register_helpers import SpawnAgent, spawn_fixture  # noqa: F401  (the ``spawn`` fixture)

pytest.importorskip("kazoo", reason="kazoo is not installed (pip install 'muster[zookeeper]')")

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NoNodeError  # noqa: E402

TTL = 3  # also the agent's session timeout
INTERVAL = TTL / 3  # the agent checks its znode this often
SLACK = 0.5


@pytest.fixture
def probe(zookeeper: Any) -> Iterator[Any]:
    client = KazooClient(hosts=zookeeper.node)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


def read(probe: Any, key: str) -> tuple[dict[str, Any], int] | None:
    """The znode's JSON value and its ephemeral owner (0: persistent), or None."""
    try:
        data, stat = probe.get(key)
    except NoNodeError:
        return None
    return json.loads(data), stat.ephemeralOwner


def wait_for(probe: Any, key: str, present: bool, timeout: float) -> float:
    start = time.monotonic()
    while (read(probe, key) is not None) != present:
        if time.monotonic() - start > timeout:
            pytest.fail(f"{key} still {'absent' if present else 'present'} after {timeout}s")
        time.sleep(0.01)
    return time.monotonic() - start


def test_ephemeral_restored_renewed_and_removed(
    zookeeper: Any, probe: Any, key_prefix: str, spawn: SpawnAgent
) -> None:
    agent = spawn(zookeeper.node, "zookeeper", key_prefix, ttl=TTL)
    wait_for(probe, agent.key, True, timeout=20)
    entry = read(probe, agent.key)
    assert entry is not None
    value, owner = entry
    assert value == {"host": "127.0.0.1", "port": 8080} and owner != 0, entry

    # Deleted behind the agent's back: back within one refresh interval, in the same session.
    probe.delete(agent.key)
    took = wait_for(probe, agent.key, True, timeout=5)
    print(f"\nzookeeper: znode back {took:.3f}s after its deletion (refresh interval {INTERVAL:.1f}s)")
    assert took < INTERVAL + SLACK, f"{took:.2f}s\n{agent.output()}"
    assert read(probe, agent.key) == (value, owner)
    agent.wait_output(f"registration.key.restored key={agent.key}")

    # A frozen agent: the server expires its session and the znode goes; once it runs again
    # it opens a new session and creates the znode there.
    agent.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(probe, agent.key, False, timeout=TTL * 3)
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    wait_for(probe, agent.key, True, timeout=10)
    took = time.monotonic() - resumed
    print(f"zookeeper: znode re-created {took:.3f}s after the agent's session expired and it resumed")
    entry = read(probe, agent.key)
    assert entry is not None and entry[0] == value and entry[1] not in (0, owner), entry
    assert took < INTERVAL + 1.0, f"{took:.2f}s\n{agent.output()}"

    # SIGTERM: removed at once, exit 0, with the parents it left empty (else confd's reading
    # would see a key ``.../web/servers`` = "", a service without servers).
    assert agent.signal(signal.SIGTERM) == 0
    assert read(probe, agent.key) is None
    assert probe.exists(f"{key_prefix}/web") is None


def test_a_killed_agent_leaves_nothing_behind(
    zookeeper: Any, probe: Any, key_prefix: str, spawn: SpawnAgent
) -> None:
    agent = spawn(zookeeper.node, "zookeeper", key_prefix, ttl=TTL)
    wait_for(probe, agent.key, True, timeout=20)
    agent.proc.kill()
    agent.proc.wait()
    took = wait_for(probe, agent.key, False, timeout=TTL * 3)
    assert took <= TTL + 1.5, took
