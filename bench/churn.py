"""Churn under load: muster's stack against the minimal prototype of its design, same backends.

Issue 6's throughput target is "at least as many requests as a minimal prototype (a Lua
balancer over a shared dict, upstream keep-alive)". How many requests either serves on
this 2-core machine depends mostly on the Python backends, which share the cores with
wrk and nginx, so a figure from another run is no yardstick. This script runs both
designs against the same backend processes, alternating, and prints every run:

* muster: ``muster up``'s stack (etcd, ``muster confd -watch``, nginx with the Lua data
  plane, or with ``--dataplane reload`` render and reload, and the stock template, access
  log on); a server joins or leaves every 500 ms through etcd, so the registry, the
  daemon and the push are part of the cost. With reloads, nginx's CPU figure misses
  the retired workers and its socket errors are wrk's reads on connections they close;
* prototype: nginx with only a balancer_by_lua round robin over one shared-dict key and
  upstream keep-alive, access log off; a server joins or leaves every 500 ms by a POST
  of the peer list to a loopback location.

Both: ``wrk -t2 -c20`` for D seconds on ``/churn/``; backends are aiohttp demo servers,
either one process each (``own``, as services run) or all four in one process (``shared``).

    python bench/churn.py [--seconds 20] [--rounds 4] [--backends own shared] [--dataplane lua|reload]
    python bench/churn.py --counting    # muster with and without its traffic counters, alternating
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from muster.dataplane.nginx.conf import LuaSettings, http_block, main_block
from muster.stack.etcd import free_port
from muster.stack.local import Stack, UpOptions
from muster.stack.nginx import NginxProcess

IDS = ("c1", "c2", "c3", "churner")

# The prototype: what issue 6 measured its target with, and nothing more.
PROTOTYPE_LUA = """\
local balancer = require "ngx.balancer"
local dict = ngx.shared.proto
local M = {}
local raw_seen, peers, rr = nil, {}, 0

function M.balance()
    local raw = dict:get("peers")
    if raw ~= raw_seen then
        peers = {}
        for host, port in raw:gmatch("(%S+) (%d+)\\n") do
            peers[#peers + 1] = {host, tonumber(port)}
        end
        raw_seen = raw
    end
    rr = rr % #peers + 1
    local p = peers[rr]
    balancer.set_current_peer(p[1], p[2])
end

function M.set()
    ngx.req.read_body()
    dict:set("peers", ngx.req.get_body_data())
    ngx.say("ok")
end

return M
"""


def prototype_http(lua_dir: Path, port: int, admin_port: int) -> str:
    return f"""\
lua_package_path "{lua_dir}/?.lua;/usr/share/lua/5.1/?.lua;;";
lua_shared_dict proto 1m;
upstream proto {{
    server 0.0.0.1:1;
    balancer_by_lua_block {{ require("proto").balance() }}
    keepalive 64;
}}
server {{
    listen 127.0.0.1:{port};
    location /churn/ {{
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://proto/;
    }}
}}
server {{
    listen 127.0.0.1:{admin_port};
    location = /peers {{ content_by_lua_block {{ require("proto").set() }} }}
}}
"""


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


async def start_backends(shared: bool) -> tuple[list[asyncio.subprocess.Process], dict[str, int]]:
    groups = [list(IDS)] if shared else [[i] for i in IDS]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "muster.stack.demo", *group, stdout=asyncio.subprocess.PIPE
        )
        for group in groups
    ]
    ports: dict[str, int] = {}
    for proc in procs:
        assert proc.stdout is not None
        line = (await proc.stdout.readline()).decode()
        ports.update({k: int(v) for k, v in (item.split("=") for item in line.split())})
    return procs, ports


def cpu_ms(pids: dict[str, list[int]]) -> dict[str, int]:
    """CPU time (user + system, ms) each named group of processes has used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, int] = {}
    for name, group in pids.items():
        total = 0
        for pid in group:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        used[name] = total * 1000 // tick
    return used


async def load(
    url: str, seconds: int, toggle: Callable[[bool], Awaitable[None]], pids: dict[str, list[int]]
) -> dict[str, int]:
    """wrk on ``url`` for ``seconds`` while ``toggle`` adds or removes the churner every 500 ms.

    Also returns the CPU milliseconds each group in ``pids`` used meanwhile (``cpu_NAME``).
    """
    before = cpu_ms(pids)
    wrk = await asyncio.create_subprocess_exec(
        "wrk", "-t2", "-c20", f"-d{seconds}s", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    changes = 0
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(wrk.wait()), 0.5)
            break
        except TimeoutError:
            pass
        changes += 1
        await toggle(changes % 2 == 1)
    after = cpu_ms(pids)
    await toggle(False)
    output = (await wrk.stdout.read()).decode() if wrk.stdout else ""
    figures = parse_wrk(output)
    figures["changes"] = changes
    figures.update({f"cpu_{k}": after[k] - before[k] for k in pids})
    return figures


async def wait_answering(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} never answered 200")


def pids_of(procs: list[asyncio.subprocess.Process], nginx: NginxProcess) -> dict[str, list[int]]:
    return {"nginx": nginx.worker_pids(), "backends": [p.pid for p in procs]}


async def run_muster(
    stack: Stack, procs: list[asyncio.subprocess.Process], ports: dict[str, int], seconds: int
) -> dict[str, int]:
    assert stack.nginx is not None and stack.daemon is not None and stack.daemon.pid is not None

    def value(sid: str) -> str:
        return json.dumps({"host": "127.0.0.1", "port": ports[sid]})

    for sid in IDS[:3]:
        await asyncio.to_thread(stack.put, f"/services/churn/servers/{sid}", value(sid))
    await wait_answering(f"{stack.nginx.url}/churn/")
    await asyncio.sleep(1.0)
    workers = stack.nginx.worker_pids()
    key = "/services/churn/servers/churner"

    async def toggle(add: bool) -> None:
        if add:
            await asyncio.to_thread(stack.put, key, value("churner"))
        else:
            await asyncio.to_thread(stack.delete, key)

    log = stack.daemon.log_path
    reloads = log.read_text(errors="replace").count("command.reload.complete")
    pids = pids_of(procs, stack.nginx)
    pids["etcd"] = [m.pid for m in stack.etcd if m.pid is not None]
    pids["muster"] = [stack.daemon.pid]
    figures = await load(f"{stack.nginx.url}/churn/", seconds, toggle, pids)
    figures["workers_unchanged"] = int(stack.nginx.worker_pids() == workers)
    figures["reloads"] = log.read_text(errors="replace").count("command.reload.complete") - reloads
    return figures


async def run_prototype(
    proto: NginxProcess,
    admin: str,
    procs: list[asyncio.subprocess.Process],
    ports: dict[str, int],
    seconds: int,
) -> dict[str, int]:
    async with aiohttp.ClientSession() as session:

        async def toggle(add: bool) -> None:
            ids = IDS if add else IDS[:3]
            body = "".join(f"127.0.0.1 {ports[i]}\n" for i in ids)
            async with session.post(admin, data=body) as resp:
                resp.raise_for_status()

        await toggle(False)
        await wait_answering(f"{proto.url}/churn/")
        workers = proto.worker_pids()
        figures = await load(f"{proto.url}/churn/", seconds, toggle, pids_of(procs, proto))
    figures["workers_unchanged"] = int(proto.worker_pids() == workers)
    return figures


async def set_counting(stack: Stack, on: bool) -> None:
    """Reload muster's nginx with or without the traffic counters' log phase (the shared
    dicts, so the membership pushed, survive the reload)."""
    assert stack.nginx is not None
    stack.nginx.http_snippets = (http_block(LuaSettings(admin_socket=stack.admin_socket, traffic=on)),)
    await asyncio.to_thread(stack.nginx.reload, rewrite=True)


async def compare_counting(stack: Stack, shared: bool, seconds: int, rounds: int) -> None:
    """muster's stack with and without traffic counting, one set of backends, A B B A ..."""
    procs, ports = await start_backends(shared)
    totals: dict[str, list[int]] = {"counting": [], "no-count": []}

    async def run(name: str, secs: int) -> dict[str, int]:
        await set_counting(stack, name == "counting")
        await asyncio.sleep(1.0)  # the old workers finish; the new ones warm up
        return await run_muster(stack, procs, ports, secs)

    try:
        print(f"backends: {'all in one process' if shared else 'one process each'}")
        for name in totals:
            await run(name, 3)
        for i in range(rounds):
            for name in list(totals) if i % 2 == 0 else reversed(list(totals)):
                figures = await run(name, seconds)
                totals[name].append(figures["requests"])
                print(line(name, figures), flush=True)
    finally:
        await set_counting(stack, True)
        for proc in procs:
            proc.terminate()
            await proc.wait()
    on, off = statistics.median(totals["counting"]), statistics.median(totals["no-count"])
    print(f"  median: counting {on:.0f}, without {off:.0f}: counting serves {on / off:.1%}")
    ratios = sorted(a / b for a, b in zip(totals["counting"], totals["no-count"], strict=True))
    print(
        f"  per round (adjacent runs): counting/without median {statistics.median(ratios):.1%}, "
        f"range {ratios[0]:.1%}-{ratios[-1]:.1%}"
    )


def line(name: str, figures: dict[str, int]) -> str:
    errors = sum(v for k, v in figures.items() if k.startswith("socket_"))
    workers = "unchanged" if figures["workers_unchanged"] else "REPLACED"
    per_request = ", ".join(
        f"{k[4:]} {v * 1000 / max(1, figures['requests']):.0f}"
        for k, v in figures.items()
        if k.startswith("cpu_")
    )
    return (
        f"  {name:<10} {figures['requests']:>8} requests  {figures['non2xx']} non-2xx  "
        f"{errors} socket errors  {figures['changes']} changes  {figures.get('reloads', 0)} reloads  "
        f"nginx workers {workers}  "
        f"CPU µs/request: {per_request}"
    )


async def compare(
    stack: Stack, proto: NginxProcess, admin: str, shared: bool, seconds: int, rounds: int
) -> None:
    """Both designs on one set of backends, in the order A B B A ... after a warm-up of each."""
    procs, ports = await start_backends(shared)
    totals: dict[str, list[int]] = {"muster": [], "prototype": []}

    async def run(name: str, secs: int) -> dict[str, int]:
        if name == "muster":
            return await run_muster(stack, procs, ports, secs)
        return await run_prototype(proto, admin, procs, ports, secs)

    try:
        print(f"backends: {'all in one process' if shared else 'one process each'}")
        for name in totals:
            await run(name, 3)
        for i in range(rounds):
            for name in list(totals) if i % 2 == 0 else reversed(list(totals)):
                figures = await run(name, seconds)
                totals[name].append(figures["requests"])
                print(line(name, figures), flush=True)
    finally:
        for proc in procs:
            proc.terminate()
            await proc.wait()
    m, p = statistics.median(totals["muster"]), statistics.median(totals["prototype"])
    print(f"  median: muster {m:.0f}, prototype {p:.0f}: muster serves {m / p:.1%} of the prototype")
    # The machine's speed drifts over minutes; the two runs of one round are neighbours.
    ratios = sorted(a / b for a, b in zip(totals["muster"], totals["prototype"], strict=True))
    print(
        f"  per round (adjacent runs): muster/prototype median {statistics.median(ratios):.1%}, "
        f"range {ratios[0]:.1%}-{ratios[-1]:.1%}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4, help="runs of each design, in the order A B B A ...")
    parser.add_argument("--backends", nargs="+", choices=["own", "shared"], default=["own", "shared"])
    parser.add_argument("--workers", type=int, default=2, help="nginx workers, both designs")
    parser.add_argument(
        "--dataplane", choices=["lua", "reload"], default="lua",
        help="muster's: servers pushed to nginx's Lua balancer, or rendered and reloaded",
    )  # fmt: skip
    parser.add_argument(
        "--counting", action="store_true",
        help="compare muster with and without its traffic counters (Lua plane) instead of the prototype",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="muster-churn-") as tmp_name:
        tmp = Path(tmp_name)
        opts = UpOptions(
            port=free_port(),
            etcd_port=free_port(),
            state_dir=tmp / "stack",
            workers=args.workers,
            dataplane=args.dataplane,
        )
        stack = Stack(opts)
        (tmp / "lua").mkdir()
        (tmp / "lua" / "proto.lua").write_text(PROTOTYPE_LUA)
        admin_port = free_port()
        proto = NginxProcess(tmp / "proto", worker_processes=args.workers, main_snippets=[main_block()])
        proto.write_config()
        (proto.include_dir / "proto.conf").write_text(prototype_http(tmp / "lua", proto.port, admin_port))
        await asyncio.to_thread(stack.start)
        try:
            with proto:
                print(
                    f"churn: wrk -t2 -c20 -d{args.seconds}s, a server joins/leaves every 500 ms; "
                    f"muster's data plane: {args.dataplane}"
                )
                for backends in args.backends:
                    if args.counting:
                        await compare_counting(stack, backends == "shared", args.seconds, args.rounds)
                        continue
                    admin = f"http://127.0.0.1:{admin_port}/peers"
                    await compare(stack, proto, admin, backends == "shared", args.seconds, args.rounds)
        finally:
            await asyncio.to_thread(stack.stop)


if __name__ == "__main__":
    asyncio.run(main())
