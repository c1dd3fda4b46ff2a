"""Cost curves: how muster's costs grow with the registry, 1,000 to 30,000 services (3 servers each).

For each size it prints one row per figure:

* full render: the seed post's template and the stock template (reload mode) rendered
  once in a fresh interpreter, snapshot indexing included (wall seconds);
* change -> file, reload plane: ``muster confd -watch`` on a private etcd renders the seed
  (then the stock) template to a file; a new server is written and the time until the
  file holding it replaced dest is taken, p50/p95 over ``--samples`` writes;
* change -> routed, Lua plane: ``muster up``'s stack (etcd, nginx with the Lua balancer,
  the daemon with the stock resource); a new server of an existing service is written
  and the time until nginx sends it its first request is taken (from the put's start and
  from etcd's acknowledgement; the difference is etcd's commit);
* daemon RSS once settled, and its CPU seconds over ``--idle`` idle seconds (both planes).

    python bench/scale.py [--sizes 1000 3000 10000 30000] [--samples 9] [--idle 10] [--quick]
                          [--skip render,reload,lua]

``--quick`` is ``--sizes 1000 3000 --samples 5 --idle 3``. The reload and Lua rows need
etcd and nginx (with libnginx-mod-http-lua for the Lua rows); rows that cannot run say why.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import e2e_routing  # noqa: E402  (bench/ is not a package)
import render_seed  # noqa: E402
import watch_latency  # noqa: E402

from muster.stack.etcd import EtcdProcess, free_port  # noqa: E402
from muster.stack.stock import STOCK_TEMPLATE, stock_dir  # noqa: E402

STOCK = stock_dir() / "templates" / STOCK_TEMPLATE


def pct(ms: list[float], q: float) -> float:
    ordered = sorted(ms)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def figures(ms: list[float]) -> str:
    return f"p50 {statistics.median(ms):7.1f}  p95 {pct(ms, 0.95):7.1f} ms"


def row(services: int, what: str, text: str) -> None:
    print(f"{services:>7,}  {what:<34} {text}", flush=True)


# -- full render, in a child per size -------------------------------------------------------------


def render_child(services: int) -> dict[str, float]:
    from muster.confd.store import KVStore
    from muster.gotemplate import Template
    from muster.resources.render import template_funcs

    keys = render_seed.make_keys(services)
    out: dict[str, float] = {}
    for name, path in (("seed", render_seed.TEMPLATE), ("stock", STOCK)):
        source = path.read_text()
        start = time.perf_counter()
        store = KVStore(keys)
        text = Template(name, funcs=template_funcs(store)).parse(source).execute(None)
        out[name] = time.perf_counter() - start
        assert text.count("upstream svc") == services, name
    return out


def full_render(services: int) -> None:
    proc = subprocess.run(
        [sys.executable, __file__, "--render-child", str(services)],
        capture_output=True,
        text=True,
        check=True,
    )
    times = json.loads(proc.stdout)
    row(services, "full render, seed / stock", f"{times['seed']:7.3f} s / {times['stock']:.3f} s")


# -- change -> file on the reload plane ---------------------------------------------------------


def stock_daemon(root: Path, etcd_url: str) -> watch_latency.Daemon:
    """The watch_latency daemon with the stock template (reload mode) instead of the seed's."""
    return watch_latency.Daemon(root, etcd_url, STOCK.read_text())


def reload_plane(etcd: EtcdProcess, services: int, samples: int, idle: float, root: Path) -> None:
    client = watch_latency.Etcd(etcd.client_url)
    client.delete_all()
    client.put_many(
        {
            f"/services/svc{i:05d}/servers/s{j}": watch_latency.server(i * 3 + j)
            for i in range(services)
            for j in range(3)
        }
    )
    for label, cls in (("seed", watch_latency.Daemon), ("stock", stock_daemon)):
        daemon = cls(root / f"{label}-{services}", etcd.client_url)
        try:
            needle = f"svc{services - 1:05d}"
            first = daemon.wait_for(needle, timeout=600)
            time.sleep(1.0)
            rss = daemon.rss_mb()
            before = daemon.cpu_seconds()
            time.sleep(idle)
            cpu = daemon.cpu_seconds() - before
            lat = lone_writes(
                client, daemon, samples, f"{label}{services}", 0.35 if services < 10_000 else 0.6
            )
            row(services, f"change -> file, reload, {label}", f"{figures(lat)}  (first render {first:.2f} s)")
            row(
                services,
                f"daemon RSS / idle CPU, reload, {label}",
                f"{rss:7.1f} MB / {cpu:.2f} s over {idle:.0f} s",
            )
        finally:
            daemon.stop()


def lone_writes(
    client: watch_latency.Etcd, daemon: watch_latency.Daemon, n: int, tag: str, gap: float
) -> list[float]:
    samples = []
    for i in range(n):
        time.sleep(gap)
        port = 20000 + i
        before = watch_latency.inode(daemon.dest)
        start = time.perf_counter()
        client.put(f"/services/bench-{tag}/servers/s{i}", json.dumps({"host": "192.0.2.1", "port": port}))
        needle = f"192.0.2.1:{port}"
        while True:
            now = watch_latency.inode(daemon.dest)
            if now != before:
                before = now
                try:
                    if needle in daemon.dest.read_text():
                        break
                except FileNotFoundError:
                    pass
            if time.perf_counter() - start > 120:
                raise TimeoutError(f"write {i} never reached the file")
            time.sleep(0.0002)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


# -- change -> routed on the Lua plane ----------------------------------------------------------


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def lua_plane(sizes: list[int], samples: int, idle: float, root: Path) -> None:
    from muster.stack.local import Stack, UpOptions

    opts = UpOptions(
        port=free_port(), etcd_port=free_port(), state_dir=root / "lua", workers=2, dataplane="lua"
    )
    stack = Stack(opts)
    await asyncio.to_thread(stack.start)
    try:
        if not stack.lua:
            print("        Lua plane: libnginx-mod-http-lua is not installed; rows skipped")
            return
        assert stack.daemon is not None and stack.daemon.pid is not None
        pid = stack.daemon.pid
        for services in sizes:
            await asyncio.to_thread(e2e_routing.preload, stack, services)
            start = time.perf_counter()
            await e2e_routing.wait_pushed(stack, services, timeout=900)
            pushed = time.perf_counter() - start
            await asyncio.sleep(3.0)
            rss = proc_rss_mb(pid)
            before = proc_cpu(pid)
            await asyncio.sleep(idle)
            cpu = proc_cpu(pid) - before
            _, new_server = await e2e_routing.latency(stack, samples, first=f"s{services}-")
            put, ack = new_server.from_put, new_server.from_ack
            row(services, "change -> routed, Lua, from put", f"{figures(put)}")
            row(
                services,
                "change -> routed, Lua, from etcd ack",
                f"{figures(ack)}  (all pushed in {pushed:.1f} s)",
            )
            row(services, "daemon RSS / idle CPU, Lua", f"{rss:7.1f} MB / {cpu:.2f} s over {idle:.0f} s")
    finally:
        await asyncio.to_thread(stack.stop)


def main() -> int:
    if sys.argv[1:2] == ["--render-child"]:
        print(json.dumps(render_child(int(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000, 30000])
    parser.add_argument("--samples", type=int, default=9)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: render, reload, lua")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.samples, args.idle = [1000, 3000], 5, 3.0
    skip = set(filter(None, args.skip.split(",")))
    print(
        f"muster scale: sizes {args.sizes}, {args.samples} samples, load {os.getloadavg()[0]:.1f}", flush=True
    )
    if "render" not in skip:
        for n in args.sizes:
            full_render(n)
    with tempfile.TemporaryDirectory(prefix="muster-scale-") as tmp:
        root = Path(tmp)
        if "reload" not in skip:
            with EtcdProcess(root / "etcd" / "data") as etcd:
                for n in args.sizes:
                    reload_plane(etcd, n, args.samples, args.idle, root)
        if "lua" not in skip:
            asyncio.run(lua_plane(args.sizes, args.samples, args.idle, root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
