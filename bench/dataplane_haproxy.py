"""HAProxy data plane figures: apply-to-traffic latency, churn under wrk load, push cost at scale.

    python bench/dataplane_haproxy.py [--rounds 200] [--churn 20] [--services 1000]

Prints: the time from ``apply`` to the first request routed to a new server (p50/p95),
the failed requests of a ``wrk -t2 -c20`` run while a server joins and leaves every
500 ms (and whether HAProxy's worker changed, i.e. reloaded), and the time to fill and
to re-read the slots of many services.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from muster.confd.store import KVStore
from muster.dataplane.haproxy.plane import HAProxyDataPlane
from muster.dataplane.haproxy.runtime import HAProxyCLI
from muster.dataplane.peers import Peer
from muster.resources.render import _StoreSlot, template_funcs
from muster.stack.etcd import free_port
from muster.stack.haproxy import HAProxyProcess, stock_dir

BACKEND = """
import sys
from aiohttp import web
name = sys.argv[1]
async def hello(request):
    return web.Response(text=name)
app = web.Application()
app.router.add_get("/{tail:.*}", hello)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
"""


def render(names: list[str]) -> str:
    source = (stock_dir() / "templates" / "services.cfg.tmpl").read_text()
    slot = _StoreSlot()
    slot.store = KVStore({f"/services/{n}/servers/x": "-" for n in names})
    from muster.gotemplate import Template

    return Template("t", funcs=template_funcs(slot, "haproxy")).parse(source).execute(None)


def start_backends(n: int) -> tuple[list[subprocess.Popen[bytes]], list[Peer]]:
    procs, peers = [], []
    for i in range(n):
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", BACKEND, f"b{i}", str(port)]))
        peers.append(Peer("127.0.0.1", port))
    return procs, peers


async def wait_up(peers: list[Peer]) -> None:
    async with aiohttp.ClientSession() as session:
        for peer in peers:
            for _ in range(500):
                try:
                    async with session.get(f"http://127.0.0.1:{peer.port}/"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.01)


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def latency(haproxy: HAProxyProcess, plane: HAProxyDataPlane, peers: list[Peer], rounds: int) -> None:
    base, extra = peers[0], peers[1:]
    url = f"{haproxy.url}/hello/"
    applies, routed = [], []
    async with aiohttp.ClientSession() as session:
        await plane.apply({"hello": [base]})
        for i in range(rounds):
            new = extra[i % len(extra)]
            name = f"b{peers.index(new)}"
            start = time.perf_counter()
            await plane.apply({"hello": [base, new]})
            applies.append(time.perf_counter() - start)
            while True:
                async with session.get(url) as resp:
                    if await resp.text() == name:
                        break
            routed.append(time.perf_counter() - start)
            await plane.apply({"hello": [base]})
    ms = [x * 1000 for x in routed]
    ams = [x * 1000 for x in applies]
    print(
        f"apply -> first routed request: p50 {statistics.median(ms):.2f} ms, p95 {pct(ms, 0.95):.2f} ms "
        f"(apply alone p50 {statistics.median(ams):.2f} ms; {rounds} rounds)"
    )


async def churn(haproxy: HAProxyProcess, plane: HAProxyDataPlane, peers: list[Peer], seconds: int) -> None:
    if shutil.which("wrk") is None:
        print("churn: wrk is not installed, skipped")
        return
    steady, flapping = peers[:2], peers[2]
    await plane.apply({"hello": steady})
    worker = haproxy.worker_pid()
    wrk = await asyncio.create_subprocess_exec(
        "wrk", "-t2", "-c20", f"-d{seconds}s", f"{haproxy.url}/hello/", stdout=asyncio.subprocess.PIPE
    )
    changes = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        members = steady + [flapping] if changes % 2 == 0 else steady
        await plane.apply({"hello": members})
        changes += 1
    out = (await wrk.communicate())[0].decode()
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: (.*)", out)
    print(
        f"churn {seconds}s, wrk -t2 -c20, {changes} membership changes: "
        f"{total.group(1) if total else '?'} requests, non-2xx {non2xx.group(1) if non2xx else 0}, "
        f"socket errors: {sockets.group(1) if sockets else 'none'}; "
        f"worker {'unchanged (no reload)' if haproxy.worker_pid() == worker else 'CHANGED'}"
    )


async def scale(haproxy: HAProxyProcess, peers: list[Peer], services: int) -> None:
    names = [f"svc{i}" for i in range(services)]
    haproxy.dest.write_text(render(["hello", *names]))
    await asyncio.to_thread(haproxy.reload)
    desired = {
        n: [Peer("127.0.0.1", 10000 + (i * 3 + k) % 50000) for k in range(3)] for i, n in enumerate(names)
    }
    plane = HAProxyDataPlane(HAProxyCLI(haproxy.admin_socket, timeout=60))
    start = time.perf_counter()
    await plane.apply(desired)
    fill = time.perf_counter() - start
    start = time.perf_counter()
    new = await asyncio.to_thread(haproxy.reload)
    reload_s = time.perf_counter() - start
    start = time.perf_counter()
    pushed = await plane.apply(desired)
    reread = time.perf_counter() - start
    print(
        f"{services} services x 3 servers: first fill {fill * 1000:.0f} ms; reload with pre-filled slots "
        f"{reload_s * 1000:.0f} ms (worker {new}); re-read after it {reread * 1000:.0f} ms, {pushed} to push"
    )


async def registration(haproxy: HAProxyProcess, plane: HAProxyDataPlane, peers: list[Peer], n: int) -> None:
    """Registration in a real etcd to the first request routed to the new server."""
    from muster.backends.etcd.v3 import EtcdV3Backend
    from muster.backends.options import BackendOptions
    from muster.dataplane.sink import MembershipSink
    from muster.stack.etcd import EtcdProcess, etcd_available

    if not etcd_available():
        print("registration: etcd is not installed, skipped")
        return
    root = "/services"
    sink = MembershipSink(plane, root)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp, EtcdProcess(Path(tmp) / "etcd") as etcd:
        async with (
            EtcdV3Backend(options=BackendOptions(nodes=(etcd.client_url,))) as backend,
            aiohttp.ClientSession() as session,
        ):

            async def follow() -> None:
                since = None
                while True:
                    snapshot = await backend.get_values([root])
                    await sink.apply(snapshot.values)
                    since = await backend.wait_changed([root], snapshot.revision or since)

            base = peers[0]
            base_value = json.dumps({"host": base.ip, "port": base.port}).encode()
            await backend.client.put(f"{root}/hello/servers/base".encode(), base_value)
            watcher = asyncio.create_task(follow())
            ms, after = [], []
            try:
                for i in range(n):
                    new = peers[1 + i % (len(peers) - 1)]
                    name = f"b{peers.index(new)}"
                    value = json.dumps({"host": new.ip, "port": new.port})
                    start = time.perf_counter()
                    lease = await backend.register(f"{root}/hello/servers/new", value, ttl=30)
                    registered = time.perf_counter()
                    while True:
                        async with session.get(f"{haproxy.url}/hello/") as resp:
                            if await resp.text() == name:
                                break
                    ms.append((time.perf_counter() - start) * 1000)
                    after.append((time.perf_counter() - registered) * 1000)
                    await lease.revoke()
                    await asyncio.sleep(0.02)
            finally:
                watcher.cancel()
    print(
        f"etcd registration -> first routed request: p50 {statistics.median(ms):.1f} ms, "
        f"p95 {pct(ms, 0.95):.1f} ms (n={n}; after register returned: p50 {statistics.median(after):.1f} ms)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--churn", type=int, default=20)
    parser.add_argument("--services", type=int, default=1000)
    args = parser.parse_args()
    procs, peers = start_backends(4)
    try:
        await wait_up(peers)
        with tempfile.TemporaryDirectory() as tmp:
            haproxy = HAProxyProcess(Path(tmp) / "haproxy")
            haproxy.write_config()
            haproxy.dest.write_text(render(["hello"]))
            with haproxy:
                plane = HAProxyDataPlane(HAProxyCLI(haproxy.admin_socket))
                await latency(haproxy, plane, peers, args.rounds)
                await registration(haproxy, HAProxyDataPlane(HAProxyCLI(haproxy.admin_socket)), peers, 50)
                if args.churn:
                    await churn(haproxy, plane, peers, args.churn)
                if args.services:
                    await scale(haproxy, peers, args.services)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
    version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split()[2]
    print(f"haproxy {version}")


if __name__ == "__main__":
    asyncio.run(main())
