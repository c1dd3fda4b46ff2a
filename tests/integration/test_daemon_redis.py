"""The daemon in watch mode on a real Redis: latency (against etcd's in the same run), bursts,
a server restart.

Keys are strings under the per-test ``key_prefix`` on the session's redis-server, written by a
separate redis-py client; the restart test starts a private server (with an append-only file,
so its keys survive the restart as a production Redis's would).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from daemon_it_helpers import ConfDir, Writer, daemon_config, eventually, read, running

from muster.stack.etcd import EtcdProcess

pytest.importorskip("redis", reason="redis-py is not installed (pip install 'muster[redis]')")

import redis.asyncio  # noqa: E402

CHANGES = 50


@pytest.fixture
async def raw(redis_server: Any) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
    yield client
    await client.aclose()


async def _latencies(dest: Path, cfg: Any, put: Any, root: str) -> list[float]:
    out = []
    async with running(cfg) as daemon:
        await eventually(lambda: daemon.batches >= 1)
        await asyncio.sleep(0.3)  # the watch is subscribed
        for i in range(CHANGES):
            # A lone change each time: past the debounce window (0.2 s) after the last batch.
            await asyncio.sleep(0.25)
            value = f"10.1.{i // 250}.{i % 250}:80"
            await put(f"{root}/services/web/servers/{i:03d}", value)
            out.append(await eventually(lambda v=value: v in read(dest), timeout=5))
    return out


async def test_watch_latency_p50_against_etcd(
    redis_server: Any, raw: redis.asyncio.Redis, etcd: EtcdProcess, key_prefix: str, tmp_path: Path
) -> None:
    rdir = ConfDir(tmp_path / "redis")
    rdest = rdir.add("nginx", prefix=key_prefix)
    rs = await _latencies(rdest, daemon_config(rdir, "redis", redis_server.node), raw.set, key_prefix)
    etcd_dir = ConfDir(tmp_path / "etcd")
    etcd_dest = etcd_dir.add("nginx", prefix=key_prefix)
    async with Writer("etcdv3", etcd.client_url) as w:
        et = await _latencies(
            etcd_dest, daemon_config(etcd_dir, "etcdv3", etcd.client_url), w.put, key_prefix
        )
    p50_redis, p50_etcd = statistics.median(rs), statistics.median(et)
    print(
        f"\nwatch latency over {CHANGES} changes: redis p50={p50_redis * 1000:.1f}ms "
        f"max={max(rs) * 1000:.1f}ms; etcdv3 p50={p50_etcd * 1000:.1f}ms max={max(et) * 1000:.1f}ms"
    )
    assert p50_redis < 0.5, rs


async def test_burst_of_200_keys_reloads_at_most_3_times(
    redis_server: Any, raw: redis.asyncio.Redis, key_prefix: str, tmp_path: Path
) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    async with running(daemon_config(confdir, "redis", redis_server.node)) as daemon:
        await eventually(lambda: daemon.batches >= 1)
        await asyncio.sleep(0.3)
        before = confdir.reload_count()
        for i in range(200):
            await raw.set(f"{key_prefix}/services/web/servers/{i:03d}", f"10.0.{i // 250}.{i % 250}:80")
        await eventually(lambda: read(dest).count("server ") == 200, timeout=10)
        await asyncio.sleep(1.0)  # nothing more may follow
        reloads = confdir.reload_count() - before
    print(f"\n200-key burst on redis: {reloads} reloads")
    assert 1 <= reloads <= 3, reloads
    assert all(f"10.0.0.{i}:80;" in read(dest) for i in range(200))


async def test_server_restart(redis_server_factory: Callable[..., Any], tmp_path: Path) -> None:
    """Survived, with a change applied within 1 s of the server's return."""
    server = redis_server_factory(appendonly=True)
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx")
    writer = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
    try:
        async with running(daemon_config(confdir, "redis", server.node)) as daemon:
            await eventually(lambda: daemon.batches >= 1)
            await asyncio.sleep(0.3)
            await writer.set("/services/web/servers/a", "10.0.0.1:80")
            await eventually(lambda: "10.0.0.1:80" in read(dest), timeout=5)

            await asyncio.to_thread(server.stop)  # the daemon rides out 2 s without a server
            await asyncio.sleep(2.0)
            assert daemon.backend.outage() is not None  # type: ignore[attr-defined]
            await asyncio.to_thread(server.start)
            t_back = time.monotonic()
            await writer.set("/services/web/servers/b", "10.0.0.2:80")
            await eventually(lambda: "10.0.0.2:80" in read(dest), timeout=5)
            restart = time.monotonic() - t_back
            assert "10.0.0.1:80" in read(dest)  # kept across the restart

            await asyncio.sleep(0.3)  # the watch is live again: a later change arrives too
            await writer.set("/services/web/servers/c", "10.0.0.3:80")
            await eventually(lambda: "10.0.0.3:80" in read(dest), timeout=2)
            assert daemon.backend.outage() is None  # type: ignore[attr-defined]
    finally:
        await writer.aclose()
    print(f"\nredis: change applied {restart:.3f}s after the restart")
    assert restart < 1.0, restart


async def test_notifications_refused_falls_back_to_the_interval(
    redis_server_factory: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """CONFIG renamed away and notifications off: said at start, and changes still arrive."""
    server = redis_server_factory(extra_args=["--rename-command", "CONFIG", ""])
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx")
    writer = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
    try:
        with caplog.at_level("WARNING", logger="muster"):
            async with running(daemon_config(confdir, "redis", server.node, interval=1)) as daemon:
                await eventually(lambda: daemon.batches >= 1)
                await eventually(lambda: "keyspace notifications are off" in caplog.text, timeout=5)
                await writer.set("/services/web/servers/a", "10.0.0.1:80")
                took = await eventually(lambda: "10.0.0.1:80" in read(dest), timeout=5)
    finally:
        await writer.aclose()
    assert "watch.unsupported" in caplog.text
    assert took < 2.5, took
