"""The ZooKeeper backend's replica against the server itself: after every kind of change (a new key,
a new value, a removed key, a new directory, the whole tree removed and made again) a read equals
a fresh walk, and costs round trips in proportion to the change, not to the tree."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from muster.backends.options import BackendOptions

pytest.importorskip("kazoo", reason="kazoo is not installed (pip install 'muster[zookeeper]')")

from kazoo.client import KazooClient  # noqa: E402

from muster.backends.zookeeper import ZooKeeperBackend  # noqa: E402


@pytest.fixture
def writer(zookeeper: Any) -> Iterator[Any]:
    client = KazooClient(hosts=zookeeper.node)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


async def test_the_replica_follows_every_kind_of_change(zookeeper: Any, writer: Any, key_prefix: str) -> None:
    root = f"{key_prefix}/services"
    servers = f"{root}/web/servers"
    writer.ensure_path(servers)
    for i in range(300):
        writer.create(f"{servers}/{i:03d}", f"v{i}".encode())
    backend = ZooKeeperBackend(options=BackendOptions(nodes=(zookeeper.node,)))
    fresh = ZooKeeperBackend(options=BackendOptions(nodes=(zookeeper.node,)))
    try:
        start = time.monotonic()
        snapshot = await backend.get_values([root])
        walk = time.monotonic() - start
        assert len(snapshot.values) == 300
        revision = snapshot.revision
        changes = [
            lambda i: writer.create(f"{servers}/new{i}", b"new"),
            lambda i: writer.set(f"{servers}/{i:03d}", b"changed"),
            lambda i: writer.delete(f"{servers}/{i:03d}"),
            lambda i: writer.create(f"{root}/api{i}/servers/x", b"api", makepath=True),
            lambda i: writer.create(f"{servers}/{i + 100:03d}/child", b"a leaf became a directory"),
        ]
        reads = []
        for i in range(20):
            await asyncio.to_thread(changes[i % len(changes)], i)
            revision = await asyncio.wait_for(backend.wait_changed([root], revision), timeout=5)
            start = time.monotonic()
            snapshot = await backend.get_values([root])
            reads.append(time.monotonic() - start)
            revision = snapshot.revision
        await asyncio.sleep(0.2)  # the last change's events have all arrived
        replica, walked = await backend.get_values([root]), await fresh.get_values([root])
        assert dict(replica.values) == dict(walked.values)
        print(f"\nzookeeper replica: first walk of 300 keys {walk * 1000:.1f}ms, "
              f"a read after one change max {max(reads) * 1000:.1f}ms")  # fmt: skip
        assert max(reads) < walk

        await asyncio.to_thread(writer.delete, root, recursive=True)
        await asyncio.wait_for(backend.wait_changed([root], revision), timeout=5)
        await asyncio.sleep(0.2)
        snapshot = await backend.get_values([root])
        assert dict(snapshot.values) == {}
        await asyncio.to_thread(writer.create, f"{root}/a/servers/b", b"1", makepath=True)
        await asyncio.wait_for(backend.wait_changed([root], snapshot.revision), timeout=5)
        await asyncio.sleep(0.2)
        assert dict((await backend.get_values([root])).values) == {f"{root}/a/servers/b": "1"}
    finally:
        await backend.aclose()
        await fresh.aclose()


async def test_a_reconnect_whose_handshake_hangs_is_cut_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that accepts but never answers (ZooKeeper 3.8 starting up can leave one so) must
    not hold the backend for its whole connect timeout (the session timeout, 10 s)."""
    import logging
    import socket

    from muster.stack.zookeeper import ZooKeeperProcess

    caplog.set_level(logging.INFO, logger="muster.backends.zookeeper")
    with ZooKeeperProcess(tmp_path / "zk") as server:
        backend = ZooKeeperBackend(options=BackendOptions(nodes=(server.node,)))
        try:
            await backend.get_values(["/"])
            await asyncio.to_thread(server.stop)
            silent = socket.create_server(("127.0.0.1", server.client_port))
            held: list[socket.socket] = []
            try:
                deadline = time.monotonic() + 5
                while "zookeeper.handshake.stalled" not in caplog.text and time.monotonic() < deadline:
                    try:
                        silent.settimeout(0.05)
                        held.append(silent.accept()[0])  # accepted, never answered
                    except TimeoutError:
                        pass
                    await asyncio.sleep(0)
                assert "zookeeper.handshake.stalled" in caplog.text
            finally:
                for conn in held:
                    conn.close()
                silent.close()
            await asyncio.to_thread(server.start)
            back = time.monotonic()
            await asyncio.wait_for(backend._up.wait(), timeout=5)
            assert time.monotonic() - back < 1.0
        finally:
            await backend.aclose()
