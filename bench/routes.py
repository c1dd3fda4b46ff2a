"""Routes as data: what they cost per request, under churn, and how fast a change lands.

Three figures, each printed with its setting (the machine is shared: compare figures of
one run, never across runs):

* lookup: nginx with the Lua plane and a pushed table of ``--services`` routed services
  (exact hosts, wildcards, any host, several prefixes each); a content_by_lua loop calls
  ``muster_routes.lookup`` for a mix of hosts and paths and prints ns per lookup.
* churn: ``muster up``'s Lua stack under ``wrk -t2 -c20`` while a server of ``churn``
  joins or leaves every 500 ms (as bench/churn.py), in four settings, alternating
  A B C D D C B A ...: today's stack (the stock template without the route lookup, as
  before routes); no route anywhere (the lookup runs and finds no table);
  ``--services`` routed services besides (``/churn/`` keeps its default route: the
  lookup runs, the stock location serves); and ``churn`` routed itself by host and path
  (``Host: churn.example.com``, ``/c/``, through the route location).
* change: route changes written to etcd, each until traffic follows it (p50, p90).

    python bench/routes.py [--seconds 15] [--rounds 2] [--services 50] [--changes 40] [--lookup-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent))
from churn import IDS, cpu_ms, parse_wrk, start_backends  # noqa: E402

from muster.dataplane import DataPlane, LuaAdmin, Peer  # noqa: E402
from muster.dataplane.nginx.conf import LuaSettings, http_block, main_block  # noqa: E402
from muster.dataplane.routes import encode_routes  # noqa: E402
from muster.registry.route import route_from  # noqa: E402
from muster.registry.routing import build_table  # noqa: E402
from muster.stack.etcd import free_port  # noqa: E402
from muster.stack.local import Stack, UpOptions  # noqa: E402
from muster.stack.nginx import NginxProcess  # noqa: E402
from muster.stack.stock import STOCK_TEMPLATE  # noqa: E402

LOOKUP_SERVER = """\
server {
    listen 127.0.0.1:%(port)d;
    location = /lookup {
        content_by_lua_block {
            local routes = require("muster_routes")
            local hosts = {"s7.example.com", "x.wild3.example.com", "other.org", "a.b.wild5.example.com"}
            local uris = {"/p7/x", "/svc12/y", "/q/z/long/path", "/"}
            routes.lookup("warm", "/")
            local n = tonumber(ngx.var.arg_n) or 1000000
            local found = 0
            ngx.update_time()
            local t0 = ngx.now()
            for i = 1, n do
                local e = routes.lookup(hosts[i %% 4 + 1], uris[(i + math.floor(i / 4)) %% 4 + 1])
                if e then found = found + 1 end
            end
            ngx.update_time()
            ngx.say(string.format("%%.0f %%d", (ngx.now() - t0) * 1e9 / n, found))
        }
    }
}
"""


def routed(n: int) -> dict[str, dict[str, object]]:
    """``n`` services' routes: exact hosts, wildcards and any-host paths, mixed."""
    out: dict[str, dict[str, object]] = {}
    for i in range(n):
        kind = i % 3
        if kind == 0:
            out[f"svc{i}"] = {"hosts": [f"s{i}.example.com"], "paths": ["/", f"/p{i}/"]}
        elif kind == 1:
            out[f"svc{i}"] = {"hosts": [f"*.wild{i}.example.com"], "paths": [f"/svc{i}/", "/q/"]}
        else:
            out[f"svc{i}"] = {"paths": [f"/svc{i}/", f"/api/v{i}/"], "strip_prefix": i % 2 == 0}
    return out


async def lookup_cost(tmp: Path, services: int) -> None:
    settings = LuaSettings(admin_socket=tmp / "admin.sock")
    proc = NginxProcess(tmp / "lookup", worker_processes=1, main_snippets=[main_block()],
                        http_snippets=[http_block(settings)])  # fmt: skip
    proc.write_config()
    (proc.include_dir / "lookup.conf").write_text(LOOKUP_SERVER % {"port": proc.port})
    routes = {name: route_from(name, value) for name, value in routed(services).items()}
    table = build_table(routes.keys(), routes)
    with proc:
        async with LuaAdmin(f"unix:{tmp / 'admin.sock'}") as admin:
            plane = DataPlane(admin)
            plane.routes = encode_routes(table)
            await plane.apply({name: [Peer("127.0.0.1", 1)] for name in routes})
        async with aiohttp.ClientSession() as session:
            figures = []
            for _ in range(5):
                async with session.get(f"{proc.url}/lookup?n=1000000") as resp:
                    text = await resp.text()
                    if resp.status != 200:
                        raise RuntimeError(f"lookup failed: {proc.log_tail()}")
                    figures.append(int(text.split()[0]))
    entries = sum(len(v) for v in table.hosts.values())
    print(f"lookup: {services} routed services ({len(table.hosts)} host keys, {entries} entries): "
          f"{statistics.median(figures)} ns per lookup (median of 5 x 1e6; runs {figures})")  # fmt: skip


INSITU_SERVERS = """\
server {
    listen 127.0.0.1:%(today)d;
    location /churn/ { return 200 "ok\\n"; }
}
server {
    listen 127.0.0.1:%(lookup)d;
    set_by_lua_block $muster_route { return require("muster_routes").route() }
    if ($muster_route) { return 404; }
    location /churn/ { return 200 "ok\\n"; }
}
"""


async def wrk_rps(url: str, seconds: int) -> float:
    proc = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        "-c10",
        f"-d{seconds}s",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await proc.communicate())[0].decode()
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(found.group(1)) if found else 0.0


async def in_situ_cost(tmp: Path, services: int, rounds: int) -> None:
    """What the per-request lookup adds to a request nginx answers itself (no upstream, no
    Python backends: far less noise): one worker, wrk -t1 -c10, servers side by side."""
    settings = LuaSettings(admin_socket=tmp / "insitu.sock")
    proc = NginxProcess(tmp / "insitu", worker_processes=1, main_snippets=[main_block()],
                        http_snippets=[http_block(settings)])  # fmt: skip
    proc.write_config()
    lookup_port = free_port()
    (proc.include_dir / "insitu.conf").write_text(
        INSITU_SERVERS % {"today": proc.port, "lookup": lookup_port}
    )
    routes = {name: route_from(name, value) for name, value in routed(services).items()}
    table = encode_routes(build_table([*routes, "churn"], routes))
    figures: dict[str, list[float]] = {"today": [], "lookup, no table": [], f"lookup, {services} routed": []}
    with proc:
        async with LuaAdmin(f"unix:{tmp / 'insitu.sock'}") as admin:
            for i in range(rounds):
                names = list(figures) if i % 2 == 0 else list(reversed(figures))
                for name in names:
                    await admin.put_routes(table if "routed" in name else b"")
                    port = proc.port if name == "today" else lookup_port
                    figures[name].append(await wrk_rps(f"http://127.0.0.1:{port}/churn/", 4))
    base = statistics.median(figures["today"])
    print(
        f"in situ: nginx answering /churn/ itself, 1 worker, wrk -t1 -c10 -d4s x {rounds} each, alternating"
    )
    for name, runs in figures.items():
        rps = statistics.median(runs)
        print(f"  {name:<22} {rps:>8.0f} requests/s (median; runs {', '.join(f'{r:.0f}' for r in runs)})  "
              f"{1e6 / rps - 1e6 / base:+.2f} µs/request against today")  # fmt: skip


async def wrk(url: str, seconds: int, host: str, stack: Stack, pids: dict[str, list[int]]) -> dict[str, int]:
    before = cpu_ms(pids)
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t2", "-c20", f"-d{seconds}s", "-H", f"Host: {host}", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    changes = 0
    key = "/services/churn/servers/churner"
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), 0.5)
            break
        except TimeoutError:
            pass
        changes += 1
        if changes % 2:
            await asyncio.to_thread(
                stack.put, key, json.dumps({"host": "127.0.0.1", "port": PORTS["churner"]})
            )
        else:
            await asyncio.to_thread(stack.delete, key)
    after = cpu_ms(pids)
    await asyncio.to_thread(stack.delete, key)
    figures = parse_wrk((await proc.stdout.read()).decode() if proc.stdout else "")
    figures["changes"] = changes
    figures.update({f"cpu_{k}": after[k] - before[k] for k in pids})
    return figures


PORTS: dict[str, int] = {}


async def wait_ok(url: str, host: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            try:
                async with session.get(url, headers={"Host": host}) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{host} {url} never answered 200")


async def churn(stack: Stack, seconds: int, rounds: int, services: int, changes: int) -> None:
    assert stack.nginx is not None and stack.daemon is not None and stack.daemon.pid is not None
    procs, ports = await start_backends(shared=False)
    PORTS.update(ports)
    base = stack.nginx.url
    try:
        for sid in IDS[:3]:
            stack.put(f"/services/churn/servers/{sid}", json.dumps({"host": "127.0.0.1", "port": ports[sid]}))
        for i, name in enumerate(routed(services)):
            # Each routed service has a server (one of the backends): routes need live services.
            stack.put(
                f"/services/{name}/servers/a", json.dumps({"host": "127.0.0.1", "port": ports[IDS[i % 3]]})
            )
        await wait_ok(f"{base}/churn/", "h")
        pids = {"nginx": stack.nginx.worker_pids(), "backends": [p.pid for p in procs],
                "muster": [stack.daemon.pid]}  # fmt: skip

        template = stack.state / "confd" / "templates" / STOCK_TEMPLATE
        stock = template.read_text()
        # Today's stack: the stock template without its route lookup (as before issue 12).
        start = stock.index("\n    # Routes (/services/NAME/route), pushed")
        today = stock[:start] + "\n" + stock[stock.index("{{- else if $routes }}") :]

        async def use_template(text: str) -> None:
            if template.read_text() == text:
                return
            template.write_text(text)
            # The daemon reads the template at each batch: a registry change renders it.
            stack.put("/services/churn/servers/c1", json.dumps({"host": "127.0.0.1", "port": ports["c1"]}))
            marker = "muster_routes" in text
            for _ in range(300):
                if ("muster_routes" in stack.dest.read_text()) == marker:
                    break
                await asyncio.sleep(0.05)
            else:
                raise TimeoutError("the template change was never rendered")
            await asyncio.sleep(2.0)  # nginx reloads; its new workers take over

        async def setting(name: str) -> tuple[str, str]:
            """Put the registry in setting ``name``; the URL and Host wrk uses."""
            await use_template(today if name == "today" else stock)
            routes = routed(services) if name not in ("no routes", "today") else {}
            for svc in routed(services):
                if svc in routes:
                    stack.put(f"/services/{svc}/route", json.dumps(routes[svc]))
                else:
                    stack.delete(f"/services/{svc}/route")
            if name == "churn routed":
                stack.put(
                    "/services/churn/route", json.dumps({"hosts": ["churn.example.com"], "paths": ["/c/"]})
                )
                await wait_ok(f"{base}/c/", "churn.example.com")
                return f"{base}/c/", "churn.example.com"
            stack.delete("/services/churn/route")
            await asyncio.sleep(1.0)
            await wait_ok(f"{base}/churn/", "h")
            return f"{base}/churn/", "h"

        names = ["today", "no routes", f"{services} routed", "churn routed"]
        totals: dict[str, list[int]] = {n: [] for n in names}
        for i in range(rounds):
            for name in names if i % 2 == 0 else list(reversed(names)):
                url, host = await setting(name)
                pids["nginx"] = stack.nginx.worker_pids()  # new after a template change
                workers = pids["nginx"]
                figures = await wrk(url, seconds, host, stack, pids)
                unchanged = stack.nginx.worker_pids() == workers
                totals[name].append(figures["requests"])
                errors = sum(v for k, v in figures.items() if k.startswith("socket_"))
                cpu = ", ".join(f"{k[4:]} {v * 1000 / max(1, figures['requests']):.0f}"
                                for k, v in figures.items() if k.startswith("cpu_"))  # fmt: skip
                print(f"  {name:<14} {figures['requests']:>8} requests  {figures['non2xx']} non-2xx  "
                      f"{errors} socket errors  {figures['changes']} changes  "
                      f"workers {'unchanged' if unchanged else 'REPLACED'}  CPU µs/request: {cpu}",
                      flush=True)  # fmt: skip
        base_median = statistics.median(totals["today"])
        # The machine's speed drifts over minutes: each round's runs are neighbours.
        for name in names[1:]:
            ratios = sorted(a / b for a, b in zip(totals[name], totals["today"], strict=True))
            print(f"  {name} / today, per round: median {statistics.median(ratios):.1%}, "
                  f"range {ratios[0]:.1%}-{ratios[-1]:.1%}")  # fmt: skip
        for name in names[1:]:
            print(f"  {name}: median {statistics.median(totals[name]):.0f} = "
                  f"{statistics.median(totals[name]) / base_median:.1%} of today's "
                  f"({base_median:.0f})")  # fmt: skip
        await setting("no routes")  # the stock template: "today" has no route lookup
        await change_latency(stack, changes)  # while the backends still run
    finally:
        for proc in procs:
            proc.terminate()
            await proc.wait()


async def change_latency(stack: Stack, changes: int) -> None:
    assert stack.nginx is not None
    base = stack.nginx.url
    took: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(changes):
            await asyncio.sleep(0.3)  # apart by more than the daemon's debounce window
            started = time.monotonic()
            stack.put("/services/churn/route", json.dumps({"paths": [f"/moved{i}/"]}))
            while time.monotonic() - started < 10:
                async with session.get(f"{base}/moved{i}/x") as resp:
                    await resp.read()
                    if resp.status == 200:
                        break
            took.append(time.monotonic() - started)
    took.sort()
    print(f"change: etcd write to traffic, {changes} route changes: "
          f"p50 {statistics.median(took) * 1000:.1f} ms, "
          f"p90 {took[int(len(took) * 0.9)] * 1000:.1f} ms, max {took[-1] * 1000:.1f} ms")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--changes", type=int, default=40)
    parser.add_argument("--lookup-only", action="store_true", help="only the lookup's cost (and in situ)")
    parser.add_argument("--insitu-rounds", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="muster-routes-") as tmp_name:
        tmp = Path(tmp_name)
        await lookup_cost(tmp, args.services)
        await in_situ_cost(tmp, args.services, args.insitu_rounds)
        if args.lookup_only:
            return
        opts = UpOptions(port=free_port(), etcd_port=free_port(), state_dir=tmp / "stack", workers=2,
                         dataplane="lua", demo=0)  # fmt: skip
        stack = Stack(opts)
        await asyncio.to_thread(stack.start)
        try:
            print(
                f"churn: wrk -t2 -c20 -d{args.seconds}s, a server of churn joins/leaves every 500 ms, "
                "Lua plane"
            )
            await churn(stack, args.seconds, args.rounds, args.services, args.changes)
        finally:
            await asyncio.to_thread(stack.stop)


if __name__ == "__main__":
    asyncio.run(main())
