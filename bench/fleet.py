"""Many proxies on one registry: N muster daemons watching one 3-member etcd while registrations churn.

A production fleet runs a daemon on each of 10 to 100 nginx hosts, all watching one etcd
cluster. For each N (default 1, 10, 30) this starts a fresh 3-member etcd, registers
``--services`` services of 3 servers each, starts N ``muster confd -watch`` daemons, then
changes servers at ``--rate`` writes per second for ``--seconds`` (a server's port changes:
each write is one key and one revision). ``--daemons 0`` measures the writer and etcd alone.
Each daemon renders one resource over
``/services`` to its own file, with no reload_cmd: with ``--template static`` (default) a
template that uses no key, as the stock template with the Lua data plane, so a batch costs
what the daemon spends per change besides rendering; with ``--template seed`` the seed
post's template, every service rendered per batch (the reload plane's cost).

Convergence lag: the writer notes each write's revision and when it sent it; each daemon
logs ``batch.complete ... revision=R`` once a batch has applied everything up to R (file
replaced), and the lag of a write at a daemon is the time from the put's start to the first
batch there that includes it (so it includes etcd's commit; the writer sees etcd's
acknowledgement too late under load to time from it). Printed per N: the lag p50/p99 over every (write,
daemon) pair and the worst daemon's p99, writes that never converged; the CPU of etcd (the
three members), of the daemons (all of them, and per daemon per change: CPU seconds over
writes) and of the writer (this process), each in % of one core over the churn; the daemons'
RSS (median and max) at the end, their CPU once idle (mean per daemon over ``--idle``
seconds after they caught up), and the load average when the row ends.

etcd fsyncs its WAL on every commit: by default its data lives in the system's temporary
directory (on disk here); ``--etcd-dir /dev/shm`` puts it on a tmpfs instead, to tell the
disk's share of the cost from etcd's own (the header says where it is). Here etcd, the writer
and every daemon share one machine, where a fleet runs each daemon on its own host:
``--daemon-nice 10`` runs the daemons at a lower priority, so etcd and the writer are served
first, as on their own hardware (the header says so). Each row also gives the median daemon's
batches per second over the churn.

    python bench/fleet.py [--daemons 1 10 30] [--rate 500] [--seconds 60] [--services 1000]
                          [--template static|seed] [--etcd-dir DIR] [--daemon-nice N] [--idle 5]
                          [--quick]

``--quick`` is ``--daemons 1 3 --seconds 10 --services 300``. Writers keep 48 puts in flight
to hold the rate; a write that falls behind schedule is sent at once (the achieved rate is
printed).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from muster.stack.etcd import EtcdCluster

sys.path.insert(0, str(Path(__file__).resolve().parent))
import watch_latency  # noqa: E402  (bench/ is not a package)

BATCH = re.compile(r"^(\S+ \S+) INFO muster\.daemon\.core batch\.complete .*?revision=(\d+)")
IN_FLIGHT = 48


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` is on (tmpfs, ext4, ...), from /proc/mounts."""
    best, kind = "", "unknown"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if str(path.resolve()).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


STATIC = "# the stock template with the Lua data plane renders no registry data\n"


def start_daemon(
    root: Path, nodes: list[str], template: str, nice: int = 0
) -> tuple[subprocess.Popen[bytes], Path]:
    for sub in ("conf.d", "templates", "out"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "templates" / "seed.tmpl").write_text(template)
    (root / "conf.d" / "seed.toml").write_text(
        f'[template]\nsrc = "seed.tmpl"\ndest = "{root / "out" / "seed.conf"}"\nkeys = ["/services"]\n'
    )
    log = root / "daemon.log"
    args = [sys.executable, "-m", "muster", "confd", "-watch", "-backend", "etcdv3", "-confdir", str(root)]
    if nice:
        args = ["nice", "-n", str(nice), *args]
    for node in nodes:
        args += ["-node", node]
    args += ["-config-file", str(root / "none.toml"), "-log-level", "info"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def batches(log: Path) -> tuple[list[int], list[float]]:
    """(revisions, times) of every completed batch, in log order (revisions never go back)."""
    revisions: list[int] = []
    times: list[float] = []
    for line in log.read_text(errors="replace").splitlines():
        m = BATCH.match(line)
        if m:
            stamp = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            revision = int(m.group(2))
            if revisions and revision < revisions[-1]:
                revision = revisions[-1]
            revisions.append(revision)
            times.append(stamp)
    return revisions, times


def server_value(i: int, port: int) -> str:
    return json.dumps({"host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "port": port})


async def churn(nodes: list[str], services: int, rate: float, seconds: float) -> list[tuple[float, int]]:
    """Write at ``rate``/s for ``seconds``; return (sent at, revision) per write."""
    acked: list[tuple[float, int]] = []
    total = int(rate * seconds)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)
    start = time.perf_counter()
    wall = time.time() - start

    async def writer(session: aiohttp.ClientSession, url: str) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            i = n * 7919 % services  # spread the writes over the services
            key = f"/services/svc{i:05d}/servers/s{n % 3}"
            body = {
                "key": watch_latency.b64(key),
                "value": watch_latency.b64(server_value(i * 3 + n % 3, 10000 + n % 50000)),
            }
            sent = wall + time.perf_counter()
            async with session.post(f"{url}/v3/kv/put", json=body) as resp:
                reply = await resp.json()
            acked.append((sent, int(reply["header"]["revision"])))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(writer(session, nodes[k % len(nodes)]) for k in range(IN_FLIGHT)))
    return acked


def run(n_daemons: int, args: argparse.Namespace, tmp: Path, etcd_dir: Path) -> None:
    with EtcdCluster(etcd_dir / f"etcd-{n_daemons}", 3) as cluster:
        nodes = cluster.client_urls
        writer = watch_latency.Etcd(nodes[0])
        writer.put_many(
            {
                f"/services/svc{i:05d}/servers/s{j}": server_value(i * 3 + j, 8000)
                for i in range(args.services)
                for j in range(3)
            }
        )
        template = watch_latency.TEMPLATE if args.template == "seed" else STATIC
        daemons = [
            start_daemon(tmp / f"d{n_daemons}-{k}", nodes, template, args.daemon_nice)
            for k in range(n_daemons)
        ]
        try:
            needle = f"upstream svc{args.services - 1:05d}" if args.template == "seed" else "#"
            deadline = time.monotonic() + 300
            for k, (proc, log) in enumerate(daemons):
                dest = tmp / f"d{n_daemons}-{k}" / "out" / "seed.conf"
                while not (dest.exists() and needle in dest.read_text()):
                    if proc.poll() is not None:
                        raise RuntimeError(f"daemon {k} exited ({proc.returncode}); see {log}")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"daemon {k} never rendered; see {log}")
                    time.sleep(0.1)
            time.sleep(2.0)
            etcd_pids = [m._proc.pid for m in cluster.members if m._proc is not None]  # noqa: SLF001
            etcd_cpu = sum(cpu_seconds(p) for p in etcd_pids)
            daemon_cpu = sum(cpu_seconds(proc.pid) for proc, _ in daemons)
            writer_cpu = time.process_time()
            began = time.perf_counter()
            acked = asyncio.run(churn(nodes, args.services, args.rate, args.seconds))
            elapsed = time.perf_counter() - began
            writer_cpu = time.process_time() - writer_cpu
            etcd_cpu = sum(cpu_seconds(p) for p in etcd_pids) - etcd_cpu
            daemon_cpu = sum(cpu_seconds(proc.pid) for proc, _ in daemons) - daemon_cpu
            time.sleep(3.0)  # let every daemon catch up before reading the logs
            rss = [rss_mb(proc.pid) for proc, _ in daemons]
            idle_cpu = sum(cpu_seconds(proc.pid) for proc, _ in daemons)
            time.sleep(args.idle)
            idle_cpu = sum(cpu_seconds(proc.pid) for proc, _ in daemons) - idle_cpu
        finally:
            for proc, _ in daemons:
                proc.terminate()
            for proc, _ in daemons:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    lags: list[float] = []
    worst: list[float] = []
    missed = 0
    first, last = min(at for at, _ in acked), max(at for at, _ in acked)
    per_second: list[float] = []  # each daemon's batches per second of churn
    for _, log in daemons:
        revisions, times = batches(log)
        per_second.append(sum(first <= t <= last + 1 for t in times) / (last + 1 - first))
        mine = []
        for at, revision in acked:
            i = bisect.bisect_left(revisions, revision)
            if i == len(revisions):
                missed += 1
                continue
            # The first batch that includes the write (log stamps have 1 ms resolution).
            mine.append(max(0.0, (times[i] - at) * 1000))
        lags += mine
        if mine:
            worst.append(pct(mine, 0.99))
    rate = len(acked) / elapsed
    cpu = (
        f"CPU % of a core: etcd {100 * etcd_cpu / elapsed:5.1f}  writer {100 * writer_cpu / elapsed:5.1f}  "
        f"daemons {100 * daemon_cpu / elapsed:6.1f}"
    )
    if not daemons:
        print(f"{0:>3} daemons  {rate:5.0f} writes/s  {cpu}  load {os.getloadavg()[0]:.1f}", flush=True)
        return
    per_change = 1000 * daemon_cpu / n_daemons / max(1, len(acked))
    print(
        f"{n_daemons:>3} daemons  {rate:5.0f} writes/s  lag p50 {statistics.median(lags):6.1f} ms  "
        f"p99 {pct(lags, 0.99):6.1f} ms  worst daemon p99 {max(worst):6.1f} ms  unconverged {missed}\n"
        f"             {cpu} ({per_change:.3f} ms per change per daemon, "
        f"{statistics.median(per_second):.0f} batches/s)  "
        f"daemon RSS median {statistics.median(rss):5.1f} MB max {max(rss):5.1f} MB  "
        f"idle CPU {1000 * idle_cpu / n_daemons / args.idle:.1f} ms/s per daemon  "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--daemons", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--template", choices=["static", "seed"], default="static")
    parser.add_argument("--etcd-dir", type=Path, help="where etcd's data goes (default: a temporary dir)")
    parser.add_argument(
        "--daemon-nice",
        type=int,
        default=0,
        help="run the daemons at this niceness (etcd and the writer first)",
    )
    parser.add_argument("--idle", type=float, default=5.0, help="seconds the daemons' idle CPU is measured")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.daemons, args.seconds, args.services = [1, 3], 10.0, 300
    print(
        f"muster fleet: {args.template} template, {args.services} services x 3 servers, "
        f"{args.rate:.0f} writes/s for "
        f"{args.seconds:.0f} s, 3-member etcd; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="muster-fleet-")))
        etcd_dir = tmp
        if args.etcd_dir is not None:
            etcd_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(dir=args.etcd_dir, prefix="muster-fleet-"))
            )
        print(
            f"etcd data in {etcd_dir} ({filesystem(etcd_dir)}); daemons at niceness {args.daemon_nice}",
            flush=True,
        )
        for n in args.daemons:
            run(n, args, tmp, etcd_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
