"""End to end through real etcd, ``muster confd -watch`` with the stock template, and nginx.

Prints:

* registration to first routed request, p50/p95/max over N samples, for a new service
  (a structure change: render, whole-config check, reload) and for a new server of an
  existing service (the same path with the reload data plane); with ``--background``,
  again with 1,000 or 3,000 services registered (confd: 0.8 s and 6.7 s).

Churn under load (requests served, failures, reloads) is ``bench/churn.py``.

    python bench/e2e_routing.py [--samples 30] [--backend etcdv3|etcd] [--background 1000 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from muster.stack.demo import DemoServer
from muster.stack.etcd import free_port
from muster.stack.local import Stack, UpOptions


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, ms: list[float]) -> str:
    return (
        f"{name:<34} p50 {statistics.median(ms):7.1f} ms   p95 {pct(ms, 0.95):7.1f} ms   "
        f"max {max(ms):7.1f} ms   (n={len(ms)})"
    )


async def first_routed(session: aiohttp.ClientSession, url: str, body: str, timeout: float = 10.0) -> float:
    """Poll ``url`` until it answers ``body``; return the time that took, in ms."""
    start = time.perf_counter()
    while True:
        try:
            async with session.get(url) as resp:
                if resp.status == 200 and await resp.text() == body:
                    return (time.perf_counter() - start) * 1000
        except aiohttp.ClientError:
            pass
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{url} never answered {body!r}")


async def settle(stack: Stack) -> None:
    """Let the last change's reload finish, so samples do not fold into one batch."""
    await asyncio.sleep(1.0)


async def latency(
    stack: Stack, samples: int, *, first: str = "", new_server: bool = True
) -> tuple[list[float], list[float]]:
    assert stack.nginx is not None
    url = stack.nginx.url
    new_service: list[float] = []
    new_servers: list[float] = []
    connector = aiohttp.TCPConnector(force_close=True)  # each poll on a fresh connection
    async with aiohttp.ClientSession(connector=connector) as session, DemoServer("base") as base:
        value = json.dumps({"host": "127.0.0.1", "port": base.port})
        await asyncio.to_thread(stack.put, "/services/pool/servers/base", value)
        await first_routed(session, f"{url}/pool/", "base\n", timeout=60)
        for i in range(samples):
            async with DemoServer(f"svc{i}") as server:
                value = json.dumps({"host": "127.0.0.1", "port": server.port})
                await settle(stack)
                name = f"lat{first}{i}"
                put = asyncio.create_task(asyncio.to_thread(stack.put, f"/services/{name}/servers/a", value))
                new_service.append(await first_routed(session, f"{url}/{name}/", f"svc{i}\n"))
                await put
            if not new_server:
                continue
            async with DemoServer(f"srv{i}") as server:
                value = json.dumps({"host": "127.0.0.1", "port": server.port})
                await settle(stack)
                key = f"/services/pool/servers/s{i}"
                put = asyncio.create_task(asyncio.to_thread(stack.put, key, value))
                new_servers.append(await first_routed(session, f"{url}/pool/", f"srv{i}\n"))
                await put
                await asyncio.to_thread(stack.delete, key)
    return new_service, new_servers


def preload(stack: Stack, services: int) -> None:
    """Register ``services`` services of 3 servers each, 128 keys per etcd v3 transaction."""
    import base64
    import urllib.request

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    puts = [
        (
            f"/services/bg{i}/servers/s{j}",
            json.dumps({"host": f"10.{i // 250 % 250}.{i % 250}.{j + 1}", "port": 8080}),
        )
        for i in range(services)
        for j in range(3)
    ]
    for start in range(0, len(puts), 128):
        ops = [{"requestPut": {"key": b64(k), "value": b64(v)}} for k, v in puts[start : start + 128]]
        body = json.dumps({"success": ops}).encode()
        req = urllib.request.Request(f"{stack.etcd_urls[0]}/v3/kv/txn", data=body)
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()


async def wait_rendered(stack: Stack, needle: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in stack.dest.read_text():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{needle!r} never rendered")
        await asyncio.sleep(0.1)


async def wait_pushed(stack: Stack, services: int, timeout: float = 120.0) -> None:
    """With the Lua data plane nothing is rendered per service: ask nginx what it holds."""
    from muster.dataplane import LuaAdmin

    deadline = time.perf_counter() + timeout
    async with LuaAdmin(f"unix:{stack.admin_socket}") as admin:
        while len((await admin.state()).services) < services:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"nginx never held {services} services")
            await asyncio.sleep(0.2)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--backend", choices=["etcdv3", "etcd"], default="etcdv3")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--dataplane", choices=["auto", "lua", "reload"], default="auto",
        help="lua: membership pushed to nginx (no reload); reload: render and reload",
    )  # fmt: skip
    parser.add_argument(
        "--background", type=int, nargs="*", default=[],
        help="also measure with this many services (3 servers each) registered, e.g. 1000 3000",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="muster-bench-") as tmp:
        opts = UpOptions(
            port=free_port(),
            etcd_port=free_port(),
            backend=args.backend,
            state_dir=Path(tmp),
            workers=args.workers,
            dataplane=args.dataplane,
        )
        stack = Stack(opts)
        await asyncio.to_thread(stack.start)
        try:
            mode = "lua" if stack.lua else "reload"
            print(f"muster e2e routing: backend={args.backend}, workers={args.workers}, dataplane={mode}")
            new_service, new_server = await latency(stack, args.samples)
            print(summary("registration -> routed, new service", new_service))
            print(summary("registration -> routed, new server", new_server))
            loaded = 0
            for count in args.background:
                if args.backend != "etcdv3":
                    break
                await asyncio.to_thread(preload, stack, count)
                loaded = count
                if stack.lua:
                    await wait_pushed(stack, count)
                else:
                    await wait_rendered(stack, f"location /bg{count - 1}/ ")
                await settle(stack)
                few = max(5, args.samples // 3)
                new_service, _ = await latency(stack, few, first=f"b{count}-", new_server=False)
                print(summary(f"  ...with {loaded} services registered", new_service))
        finally:
            await asyncio.to_thread(stack.stop)


if __name__ == "__main__":
    asyncio.run(main())
