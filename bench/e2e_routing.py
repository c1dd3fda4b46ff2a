"""End to end through real etcd, ``muster confd -watch`` with the stock template, and nginx.

Prints:

* registration to first routed request, p50/p95/max over N samples, for a new service
  (a structure change: render, whole-config check, reload) and for a new server of an
  existing service (the same path with the reload data plane); with ``--background``,
  again with 1,000 or 3,000 services registered (confd: 0.8 s and 6.7 s);
* churn: ``wrk -t2 -c20`` through nginx for D seconds while one server of the loaded
  service joins and leaves every 500 ms: requests, non-2xx answers, socket errors and
  reloads (the seed's confd stack: about 80,000 requests, 50-80 socket errors, 60 reloads);
  once with the backends in a process of their own, once inside this one. The socket
  errors are wrk's read errors on keep-alive connections that a retiring nginx worker
  closes right after answering (about 5 per reload at 20 connections); they come from
  the reload itself (the same with nginx answering directly) and only fewer reloads
  (coalesced changes, or the zero-reload data plane) remove them.

    python bench/e2e_routing.py [--samples 30] [--churn 20] [--backend etcdv3|etcd] [--background 1000 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import sys
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


def parse_wrk(output: str) -> dict[str, int]:
    found = re.search(r"(\d+) requests in", output)
    figures = {"requests": int(found.group(1)) if found else 0}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    for name, value in zip(
        ("connect", "read", "write", "timeout"), errors.groups() if errors else "0000", strict=True
    ):
        figures[f"socket_{name}"] = int(value)
    return figures


def reloads(stack: Stack) -> int:
    assert stack.daemon is not None
    return stack.daemon.log_path.read_text(errors="replace").count("command.reload.complete")


async def churn(stack: Stack, seconds: int, in_process: bool) -> tuple[dict[str, int], int, int, bool]:
    """wrk through nginx while one server joins and leaves every 500 ms.

    The backends run in a process of their own (as real services do) unless ``in_process``.
    """
    assert stack.nginx is not None
    ids = ["c1", "c2", "c3", "churner"]
    if in_process:
        servers = [DemoServer(i) for i in ids]
        for server in servers:
            await server.start()
        ports = {s.server_id: s.port for s in servers}
    else:
        # One process per server, as real services run (and so they use both cores).
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "muster.stack.demo", sid, stdout=asyncio.subprocess.PIPE
            )
            for sid in ids
        ]
        ports = {}
        for proc in procs:
            assert proc.stdout is not None
            line = (await proc.stdout.readline()).decode()
            ports.update({k: int(v) for k, v in (item.split("=") for item in line.split())})
    try:
        for sid in ids[:3]:
            value = json.dumps({"host": "127.0.0.1", "port": ports[sid]})
            await asyncio.to_thread(stack.put, f"/services/churn/servers/{sid}", value)
        url = f"{stack.nginx.url}/churn/"
        async with aiohttp.ClientSession() as session:
            await first_routed(session, url, "c1\n")
        await settle(stack)
        before = reloads(stack)
        workers = stack.nginx.worker_pids()
        wrk = await asyncio.create_subprocess_exec(
            "wrk", "-t2", "-c20", f"-d{seconds}s", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        key = "/services/churn/servers/churner"
        value = json.dumps({"host": "127.0.0.1", "port": ports["churner"]})
        changes = 0
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(wrk.wait()), 0.5)
                break
            except TimeoutError:
                pass
            if changes % 2 == 0:
                await asyncio.to_thread(stack.put, key, value)
            else:
                await asyncio.to_thread(stack.delete, key)
            changes += 1
        output = (await wrk.stdout.read()).decode() if wrk.stdout else ""
        await asyncio.sleep(0.5)
        same_workers = stack.nginx.worker_pids() == workers
        return parse_wrk(output), changes, reloads(stack) - before, same_workers
    finally:
        if not in_process:
            for proc in procs:
                proc.terminate()
                await proc.wait()
        else:
            for server in servers:
                await server.stop()


def churn_line(
    seconds: int, where: str, figures: dict[str, int], changes: int, count: int, same_workers: bool
) -> str:
    errors = sum(v for k, v in figures.items() if k.startswith("socket_"))
    detail = ", ".join(f"{k[7:]} {v}" for k, v in figures.items() if k.startswith("socket_"))
    return (
        f"churn {seconds}s, backends {where} (wrk -t2 -c20, a server joins/leaves every 500 ms): "
        f"{figures['requests']} requests, {figures['non2xx']} non-2xx, {errors} socket errors ({detail}), "
        f"{changes} changes, {count} reloads, nginx workers {'unchanged' if same_workers else 'replaced'}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--churn", type=int, default=20, help="seconds of churn under load (0: skip)")
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
            if args.churn and shutil.which("wrk"):
                for in_process in (False, True):
                    figures, changes, count, same = await churn(stack, args.churn, in_process)
                    where = "in the benchmark's process" if in_process else "in their own process"
                    print(churn_line(args.churn, where, figures, changes, count, same))
        finally:
            await asyncio.to_thread(stack.stop)


if __name__ == "__main__":
    asyncio.run(main())
