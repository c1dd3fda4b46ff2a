"""The daemon in watch mode on a real ZooKeeper: latency (against etcd's in the same run), bursts,
a server restart and a lost session.

Keys are znodes under the per-test ``key_prefix`` on the session's ZooKeeper, written by a
separate kazoo client; tests that stop the server start a private one.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from daemon_it_helpers import ConfDir, Writer, daemon_config, eventually, read, running

from muster.stack.etcd import EtcdProcess

pytest.importorskip("kazoo", reason="kazoo is not installed (pip install 'muster[zookeeper]')")

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NodeExistsError  # noqa: E402

CHANGES = 50


class ZkWriter:
    """Another client writing znodes (parents made on the way), as ``zkCli.sh`` would."""

    def __init__(self, node: str) -> None:
        # Back as soon as the server is (as the daemon's backend is): the figures below time
        # the daemon, not this writer's reconnect backoff.
        retry = {"max_tries": -1, "delay": 0.05, "backoff": 2, "max_delay": 0.1, "max_jitter": 0.01}
        self.client = KazooClient(hosts=node, connection_retry=retry)
        self.client.start(timeout=15)

    def _put(self, key: str, value: bytes) -> None:
        # One write, as a registration makes it: an empty znode first (ensure_path) would be
        # a change of its own, rendered as "" before the value arrives.
        try:
            self.client.create(key, value, makepath=True)
        except NodeExistsError:
            self.client.set(key, value)

    async def put(self, key: str, value: str) -> None:
        await asyncio.to_thread(self._put, key, value.encode())

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete, key, recursive=True)

    def close(self) -> None:
        self.client.stop()
        self.client.close()


@pytest.fixture
def zk_writer(zookeeper: Any) -> Iterator[ZkWriter]:
    writer = ZkWriter(zookeeper.node)
    yield writer
    writer.close()


def expire_session(node: str, client: Any) -> None:
    """End ``client``'s session on the server, as a long partition would (kazoo's harness does this)."""
    other = KazooClient(hosts=node, client_id=client.client_id)
    other.start(timeout=10)
    other.stop()
    other.close()


async def _latencies(confdir: ConfDir, dest: Path, cfg: Any, put: Any, root: str) -> list[float]:
    out = []
    async with running(cfg) as daemon:
        await eventually(lambda: daemon.batches >= 1)
        for i in range(CHANGES):
            # A lone change each time: past the debounce window (0.2 s) after the last batch,
            # else the figure is the window itself for both stores.
            await asyncio.sleep(0.25)
            value = f"10.1.{i // 250}.{i % 250}:80"
            await put(f"{root}/services/web/servers/{i:03d}", value)
            out.append(await eventually(lambda v=value: v in read(dest), timeout=5))
    return out


async def test_watch_latency_p50_against_etcd(
    zookeeper: Any, zk_writer: ZkWriter, etcd: EtcdProcess, key_prefix: str, tmp_path: Path
) -> None:
    zk_dir = ConfDir(tmp_path / "zk")
    zk_dest = zk_dir.add("nginx", prefix=key_prefix)
    zk = await _latencies(zk_dir, zk_dest, daemon_config(zk_dir, "zookeeper", zookeeper.node), zk_writer.put,
                          key_prefix)  # fmt: skip
    etcd_dir = ConfDir(tmp_path / "etcd")
    etcd_dest = etcd_dir.add("nginx", prefix=key_prefix)
    async with Writer("etcdv3", etcd.client_url) as w:
        et = await _latencies(etcd_dir, etcd_dest, daemon_config(etcd_dir, "etcdv3", etcd.client_url), w.put,
                              key_prefix)  # fmt: skip
    p50_zk, p50_etcd = statistics.median(zk), statistics.median(et)
    print(
        f"\nwatch latency over {CHANGES} changes: zookeeper p50={p50_zk * 1000:.1f}ms "
        f"max={max(zk) * 1000:.1f}ms; etcdv3 p50={p50_etcd * 1000:.1f}ms max={max(et) * 1000:.1f}ms"
    )
    assert p50_zk < 0.5, zk


async def test_burst_of_200_keys_reloads_at_most_3_times(
    zookeeper: Any, zk_writer: ZkWriter, key_prefix: str, tmp_path: Path
) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    async with running(daemon_config(confdir, "zookeeper", zookeeper.node)) as daemon:
        await eventually(lambda: daemon.batches >= 1)
        await asyncio.sleep(0.3)
        before = confdir.reload_count()
        for i in range(200):
            await zk_writer.put(f"{key_prefix}/services/web/servers/{i:03d}", f"10.0.{i // 250}.{i % 250}:80")
        await eventually(lambda: read(dest).count("server ") == 200, timeout=10)
        await asyncio.sleep(1.0)  # nothing more may follow
        reloads = confdir.reload_count() - before
    print(f"\n200-key burst on zookeeper: {reloads} reloads")
    assert 1 <= reloads <= 3, reloads
    assert read(dest).count("server ") == 200
    assert all(f"10.0.0.{i}:80;" in read(dest) for i in range(200))


async def test_server_restart_and_lost_session(tmp_path: Path) -> None:
    """Both survived, each time with a change applied within 1 s of the server's (session's) return."""
    from muster.stack.zookeeper import ZooKeeperProcess, zookeeper_available

    if not zookeeper_available():
        pytest.skip("Debian's zookeeper package or java is not installed")
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx")
    with ZooKeeperProcess(tmp_path / "zk") as server:
        writer = ZkWriter(server.node)
        try:
            async with running(daemon_config(confdir, "zookeeper", server.node)) as daemon:
                await eventually(lambda: daemon.batches >= 1)
                await writer.put("/services/web/servers/a", "10.0.0.1:80")
                await eventually(lambda: "10.0.0.1:80" in read(dest), timeout=5)

                # A restart: the daemon rides out 2 s without a server.
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(2.0)
                assert daemon.backend.outage() is not None
                await asyncio.to_thread(server.start)
                # Timed from the write's acknowledgement: the writer's own reconnect (kazoo's
                # backoff, seconds on a busy machine) is not the daemon's delay.
                await writer.put("/services/web/servers/b", "10.0.0.2:80")
                t_back = time.monotonic()
                await eventually(lambda: "10.0.0.2:80" in read(dest), timeout=5)
                restart = time.monotonic() - t_back

                # A lost session: the server drops it, and with it every watch.
                client = daemon.backend._client
                old_session = client.client_id[0]
                await asyncio.to_thread(expire_session, server.node, client)
                await writer.put("/services/web/servers/c", "10.0.0.3:80")
                t_lost = time.monotonic()
                await eventually(lambda: "10.0.0.3:80" in read(dest), timeout=5)
                session = time.monotonic() - t_lost
                assert client.client_id[0] != old_session
                # Watches were set again in the new session: a later change still arrives.
                await asyncio.sleep(0.3)
                await writer.put("/services/web/servers/d", "10.0.0.4:80")
                await eventually(lambda: "10.0.0.4:80" in read(dest), timeout=2)
                assert daemon.backend.outage() is None
        finally:
            writer.close()
    print(
        f"\nzookeeper: change applied {restart:.3f}s after the restart, {session:.3f}s after the lost session"
    )
    assert restart < 1.0, restart
    assert session < 1.0, session
