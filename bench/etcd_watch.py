"""Watch latency and snapshot cost of muster's etcd backends against a real etcd.

For each backend (etcdv3 over the JSON gateway, etcd v2 keys API):

* watch latency: a write sent by a second client to ``wait_changed`` returning, p50/p95/max
  over N writes, with the watch already open (the daemon's steady state);
* chained latency: the same, with a fresh ``wait_changed`` from the last revision per write
  (what the daemon does after each render);
* after restart: etcd stopped and started while a watch is open, then a write: time to seen;
* snapshot: ``get_values`` of 10,000 services x 3 servers (30,000 keys) read from etcd;
* at scale: with those 30,000 keys watched, a write to ``wait_changed`` returning plus the
  ``get_values`` that follows (the daemon's per-change cost before rendering).

    python bench/etcd_watch.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from muster.backends import create
from muster.backends.etcd.v2 import EtcdV2Backend
from muster.backends.etcd.v3 import EtcdV3Backend
from muster.backends.options import BackendOptions
from muster.stack.etcd import EtcdProcess

Backend = EtcdV3Backend | EtcdV2Backend


async def write(backend: Backend, key: str, value: str) -> None:
    if isinstance(backend, EtcdV3Backend):
        await backend.client.put(key.encode(), value.encode())
    else:
        await backend.client.put(key, value)


def summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    p50 = statistics.median(ms)
    return f"{name:<28} p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  max {ms[-1]:6.2f} ms  (n={len(ms)})"


async def watch_latency(watcher: Backend, writer: Backend, n: int) -> tuple[list[float], list[float]]:
    snap = await watcher.get_values(["/bench"])
    since = snap.revision
    open_watch: list[float] = []
    for i in range(n):
        waiter = asyncio.create_task(watcher.wait_changed(["/bench"], since))
        await asyncio.sleep(0.01)  # the watch is open before the write
        t0 = time.perf_counter()
        await write(writer, f"/bench/k{i % 10}", str(i))
        since = await waiter
        open_watch.append(time.perf_counter() - t0)
    chained: list[float] = []
    for i in range(n):
        t0 = time.perf_counter()
        await write(writer, f"/bench/k{i % 10}", f"c{i}")
        since = await watcher.wait_changed(["/bench"], since)
        chained.append(time.perf_counter() - t0)
    return open_watch, chained


async def after_restart(proc: EtcdProcess, name: str) -> float:
    opts = BackendOptions(nodes=(proc.client_url,))
    watcher, writer = create(name, opts), create(name, opts)
    assert isinstance(watcher, EtcdV3Backend | EtcdV2Backend) and isinstance(
        writer, EtcdV3Backend | EtcdV2Backend
    )
    try:
        snap = await watcher.get_values(["/restart"])
        waiter = asyncio.create_task(watcher.wait_changed(["/restart"], snap.revision))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(proc.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(proc.start)
        t0 = time.perf_counter()
        await write(writer, "/restart/k", name)
        await asyncio.wait_for(waiter, 10)
        return time.perf_counter() - t0
    finally:
        await watcher.aclose()
        await writer.aclose()


async def snapshot_cost(backend: Backend, services: int = 10_000, servers: int = 3) -> tuple[float, int]:
    sem = asyncio.Semaphore(64)

    async def one(i: int, j: int) -> None:
        async with sem:
            await write(
                backend, f"/big/services/s{i:05d}/servers/h{j}", f'{{"host":"10.0.{j}.{i % 250}","port":80}}'
            )

    await asyncio.gather(*(one(i, j) for i in range(services) for j in range(servers)))
    t0 = time.perf_counter()
    snap = await backend.get_values(["/big/services"])
    return time.perf_counter() - t0, len(snap.values)


async def at_scale(watcher: Backend, writer: Backend, n: int) -> list[float]:
    snap = await watcher.get_values(["/big/services"])
    since = snap.revision
    samples = []
    for i in range(n):
        waiter = asyncio.create_task(watcher.wait_changed(["/big/services"], since))
        await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        await write(writer, f"/big/services/s{i:05d}/servers/h0", f'{{"host":"10.9.9.9","port":{i}}}')
        since = await waiter
        snap = await watcher.get_values(["/big/services"])
        samples.append(time.perf_counter() - t0)
        assert len(snap.values) == 30_000
    return samples


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("etcdv3", "etcd"):
            with EtcdProcess(Path(tmp) / name) as proc:
                opts = BackendOptions(nodes=(proc.client_url,))
                watcher, writer = create(name, opts), create(name, opts)
                assert isinstance(watcher, EtcdV3Backend | EtcdV2Backend)
                assert isinstance(writer, EtcdV3Backend | EtcdV2Backend)
                try:
                    open_watch, chained = await watch_latency(watcher, writer, n)
                    print(summary(f"{name} write->seen (open)", open_watch))
                    print(summary(f"{name} write->seen (chained)", chained))
                    elapsed, keys = await snapshot_cost(writer)
                    print(f"{name + ' snapshot':<28} {keys} keys in {elapsed * 1000:.0f} ms")
                    print(summary(f"{name} 30k: write->snapshot", await at_scale(watcher, writer, n)))
                finally:
                    await watcher.aclose()
                    await writer.aclose()
                seen = await after_restart(proc, name)
                print(f"{name + ' after restart':<28} write->seen {seen * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
