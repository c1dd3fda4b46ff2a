"""End to end through real etcd, ``muster confd -watch`` with the stock template, and nginx.

Prints:

* registration to first request at the new server, p50/p95/max over N samples, for a new
  service and for a new server of an existing service; with ``--background``, again with
  1,000 or 3,000 services registered (confd: 0.8 s and 6.7 s). With the Lua data plane
  both are a push to nginx; with the reload data plane, a render, check and reload.

  The service registers as muster's agent does (a put through its etcd client, on this
  process's loop) while a client polls nginx without pause over keep-alive connections;
  the new server stamps the first request it receives. Each figure is given from the
  put's start and from etcd's acknowledgement: the difference is etcd's commit (an
  fsync on this disk), the rest is muster and nginx.

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
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from muster.backends.etcd.v3_client import EtcdV3Client
from muster.backends.options import BackendOptions
from muster.stack.demo import DemoServer
from muster.stack.etcd import free_port
from muster.stack.local import Stack, UpOptions


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, samples: Samples) -> str:
    def figures(ms: list[float]) -> str:
        return f"p50 {statistics.median(ms):6.1f}  p95 {pct(ms, 0.95):6.1f}  max {max(ms):6.1f} ms"

    return (
        f"{name:<38} from put: {figures(samples.from_put)}   "
        f"from ack: {figures(samples.from_ack)}   (n={len(samples.from_put)})"
    )


class StampingServer(DemoServer):
    """A demo server that notes when its first request arrived (``time.perf_counter``)."""

    first: float | None = None

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        if self.first is None:
            self.first = time.perf_counter()
        return await super()._handle(request)


@dataclass
class Samples:
    """Registration to first request at the server, in ms: from the put's start and its ack."""

    from_put: list[float] = field(default_factory=list)
    from_ack: list[float] = field(default_factory=list)


async def until_served(
    session: aiohttp.ClientSession,
    url: str,
    server: StampingServer,
    register: Awaitable[object],
    into: Samples,
    timeout: float = 10.0,
) -> None:
    """Run ``register`` while polling ``url`` until ``server`` got a request; record both delays."""
    start = time.perf_counter()
    acked: list[float] = []

    async def put() -> None:
        await register
        acked.append(time.perf_counter())

    task = asyncio.create_task(put())
    while server.first is None:
        if time.perf_counter() - start > timeout:
            task.cancel()
            raise TimeoutError(f"{url} never reached {server.server_id}")
        try:
            async with session.get(url) as resp:
                await resp.read()
        except aiohttp.ClientError:
            pass
    await task
    into.from_put.append((server.first - start) * 1000)
    into.from_ack.append((server.first - acked[0]) * 1000)


async def settle(stack: Stack) -> None:
    """Let the last change's reload finish, so samples do not fold into one batch."""
    await asyncio.sleep(1.0)


async def latency(
    stack: Stack, samples: int, *, first: str = "", new_server: bool = True
) -> tuple[Samples, Samples]:
    assert stack.nginx is not None
    url = stack.nginx.url
    new_service, new_servers = Samples(), Samples()
    options = BackendOptions(nodes=tuple(stack.etcd_urls))
    async with aiohttp.ClientSession() as session, EtcdV3Client(options) as etcd, DemoServer("base") as base:

        async def put(key: str, port: int) -> None:
            value = json.dumps({"host": "127.0.0.1", "port": port})
            if stack.opts.backend == "etcd":  # the v2 keys API, as the seed post's curl
                async with session.put(f"{stack.etcd_urls[0]}/v2/keys{key}", data={"value": value}) as resp:
                    resp.raise_for_status()
            else:
                await etcd.put(key.encode(), value.encode())

        async def delete(key: str) -> None:
            if stack.opts.backend == "etcd":
                async with session.delete(f"{stack.etcd_urls[0]}/v2/keys{key}") as resp:
                    resp.raise_for_status()
            else:
                await etcd.delete_range(key.encode())

        await put("/services/pool/servers/base", base.port)
        while base.hits == 0:
            async with session.get(f"{url}/pool/") as resp:
                await resp.read()
        for i in range(samples):
            server = StampingServer(f"svc{i}")
            async with server:
                await settle(stack)
                name = f"lat{first}{i}"
                await until_served(
                    session,
                    f"{url}/{name}/",
                    server,
                    put(f"/services/{name}/servers/a", server.port),
                    new_service,
                )
            if not new_server:
                continue
            server = StampingServer(f"srv{i}")
            async with server:
                await settle(stack)
                key = f"/services/pool/servers/s{i}"
                await until_served(session, f"{url}/pool/", server, put(key, server.port), new_servers)
                await delete(key)
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
    from muster.dataplane import AdminError, LuaAdmin

    deadline = time.perf_counter() + timeout
    # Reading 30,000 services' state takes nginx longer than the default 2 s under load,
    # and longer still while the daemon pushes them all: a read that times out is retried.
    async with LuaAdmin(f"unix:{stack.admin_socket}", timeout=30.0) as admin:
        while True:
            try:
                if len((await admin.state()).services) >= services:
                    return
            except AdminError:
                pass
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
            print(summary("registration -> served, new service", new_service))
            print(summary("registration -> served, new server", new_server))
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
                new_service, new_server = await latency(stack, few, first=f"b{count}-")
                print(summary(f"  ...with {loaded} services registered", new_service))
                print(summary(f"  ...new server, {loaded} services", new_server))
        finally:
            await asyncio.to_thread(stack.stop)


if __name__ == "__main__":
    asyncio.run(main())
