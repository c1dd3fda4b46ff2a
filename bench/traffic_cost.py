"""The per-request cost of nginx's traffic counters, without Python backends in the way.

``bench/churn.py --counting`` measures the counters inside muster's whole stack, where the
Python backends spend most of the CPU and the figures swing with the machine's load. Here
nginx is alone: its Lua balancer (muster's, with the admin endpoint's push) proxies to a
``return 200`` server block of the same nginx, so nginx's own CPU per request is what a
request costs, and the log phase's share of it shows. Runs alternate A B B A with nginx
reloaded between them (counting on/off), on the same workers' config otherwise:

    python bench/traffic_cost.py [--seconds 10] [--rounds 4] [--workers 1] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from churn import cpu_ms, parse_wrk

from muster.dataplane import DataPlane, LuaAdmin, Peer
from muster.dataplane.nginx.conf import LuaSettings, http_block, main_block
from muster.stack.etcd import free_port
from muster.stack.nginx import NginxProcess

SERVERS = """\
server {
    listen 127.0.0.1:%(port)d;
    access_log off;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location ~ ^/(?<muster_service>[A-Za-z0-9._-]+)/ {
        rewrite ^/[^/]+/(.*)$ /$1 break;
        proxy_pass http://muster_balancer;
    }
}
server {
    listen 127.0.0.1:%(backend)d;
    access_log off;
    keepalive_requests 100000;
    location / { return 200 "ok\\n"; }
}
"""


async def run(nginx: NginxProcess, seconds: int) -> dict[str, int]:
    pids = {"nginx": nginx.worker_pids()}
    before = cpu_ms(pids)
    wrk = await asyncio.create_subprocess_exec(
        "wrk", "-t2", "-c20", f"-d{seconds}s", f"http://127.0.0.1:{nginx.port}/hello/",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await wrk.communicate())[0].decode()
    figures = parse_wrk(out)
    figures["cpu_nginx"] = cpu_ms(pids)["nginx"] - before["nginx"]
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="count each request this many times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="muster-traffic-cost-") as tmp_name:
        tmp = Path(tmp_name)
        settings = LuaSettings(admin_socket=tmp / "admin.sock")
        nginx = NginxProcess(tmp / "nginx", worker_processes=args.workers, main_snippets=[main_block()],
                             http_snippets=[http_block(settings)])  # fmt: skip
        nginx.write_config()
        backend = free_port()
        (nginx.include_dir / "bench.conf").write_text(SERVERS % {"port": nginx.port, "backend": backend})
        with nginx:
            async with LuaAdmin(f"unix:{settings.admin_socket}") as admin:
                await DataPlane(admin).apply({"hello": [Peer("127.0.0.1", backend)]})

            async def measure(name: str, secs: int) -> dict[str, int]:
                on = name == "counting"
                http = http_block(LuaSettings(admin_socket=settings.admin_socket, traffic=on))
                if on and args.repeat > 1:
                    # Amplified: the log phase counts each request ``repeat`` times, so its
                    # cost stands out of the machine's noise (divide the difference by it).
                    http = http.replace(
                        'log_by_lua_block { require("muster_traffic").log() }',
                        'log_by_lua_block { local t = require("muster_traffic") '
                        f"for _ = 1, {args.repeat} do t.log() end }}",
                    )
                nginx.http_snippets = (http,)
                await asyncio.to_thread(nginx.reload, rewrite=True)
                await asyncio.sleep(1.0)
                return await run(nginx, secs)

            totals: dict[str, list[float]] = {"counting": [], "no-count": []}
            cpu: dict[str, list[float]] = {"counting": [], "no-count": []}
            print(f"wrk -t2 -c20 -d{args.seconds}s through the Lua balancer to a return-200 server; "
                  f"{args.workers} nginx worker(s)")  # fmt: skip
            for name in totals:
                await measure(name, 2)
            for i in range(args.rounds):
                for name in list(totals) if i % 2 == 0 else reversed(list(totals)):
                    f = await measure(name, args.seconds)
                    per = f["cpu_nginx"] * 1000 / max(1, f["requests"])
                    totals[name].append(f["requests"] / args.seconds)
                    cpu[name].append(per)
                    print(f"  {name:<9} {f['requests'] / args.seconds:>9.0f} req/s  "
                          f"nginx CPU {per:.1f} µs/request", flush=True)  # fmt: skip
            on, off = statistics.median(totals["counting"]), statistics.median(totals["no-count"])
            con, coff = statistics.median(cpu["counting"]), statistics.median(cpu["no-count"])
            ratios = sorted(a / b for a, b in zip(totals["counting"], totals["no-count"], strict=True))
            spread = f"{ratios[0]:.1%}-{ratios[-1]:.1%}"
            print(f"  median req/s: counting {on:.0f}, without {off:.0f}: {on / off:.1%}; "
                  f"per round {statistics.median(ratios):.1%} ({spread})")  # fmt: skip
            print(f"  median nginx CPU per request: counting {con:.1f} µs, without {coff:.1f} µs: "
                  f"counting costs {(con - coff) / args.repeat:+.2f} µs a request"
                  + (f" (counted {args.repeat} times each)" if args.repeat > 1 else ""))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
