"""The daemon in watch mode against a real etcd: write-to-file latency, burst reloads, scale, idle cost.

``muster confd -watch`` runs as its own process (as in production) on a private etcd member.
It renders the seed post's nginx template (fixed: ``{{$data.host}}``) into a file; the
benchmark writes keys the way a registering service does and watches the file's inode.

* latency: a lone key write -> dest replaced, p50/p95/max over N writes (confd: ~6 ms p50),
  with writes 0.35 s apart and 0.2 s apart (the resource has a reload_cmd: p95 <= 2x p50);
* burst: 200 registrations as fast as one client can write -> reload_cmd runs (confd: 77);
* scale: with 3,000 services registered, the same latency (confd: 6.7 s per change);
* footprint: RSS while watching 10,000 services x 3 servers (target < 100 MB) and CPU seconds
  used over 10 idle seconds (target: none, no polling loops).

    python bench/watch_latency.py [N] [--small]   # N lone writes per figure (default 40);
                                                  # --small: the small registry only
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from muster.stack.etcd import EtcdProcess

TEMPLATE = """\
{{- range $service := ls "/services" }}
{{- $servers := getvs (printf "/services/%s/servers/*" $service) }}
{{- if $servers }}
upstream {{ $service }} {
{{- range $server := $servers }}{{ $data := json $server }}
  server {{ $data.host }}:{{ $data.port }};
{{- end }}
}
{{- end }}
{{- end }}

server {
  server_name hostname;
{{- range $service := ls "/services" }}
  location /{{ $service }} { proxy_pass http://{{ $service }}; }
{{- end }}
}
"""


class Etcd:
    """A tiny synchronous v3 gateway client on one keep-alive connection (the bench's writer)."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.conn = http.client.HTTPConnection(
            parsed.hostname or "127.0.0.1", parsed.port or 2379, timeout=30
        )

    def call(self, path: str, body: dict[str, object]) -> dict[str, object]:
        self.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path}: {resp.status} {data[:200]!r}")
        result: dict[str, object] = json.loads(data)
        return result

    def put(self, key: str, value: str) -> None:
        self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def put_many(self, items: dict[str, str]) -> None:
        """Write in transactions of 128 puts (etcd's default --max-txn-ops)."""
        pairs = list(items.items())
        for i in range(0, len(pairs), 128):
            ops = [{"requestPut": {"key": b64(k), "value": b64(v)}} for k, v in pairs[i : i + 128]]
            self.call("/v3/kv/txn", {"success": ops})

    def delete_all(self) -> None:
        self.call("/v3/kv/deleterange", {"key": b64("\0"), "range_end": b64("\0")})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def server(i: int, port: int = 80) -> str:
    return json.dumps({"host": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", "port": port})


class Daemon:
    """``muster confd -watch`` in a subprocess with its own confdir; logs go to a file."""

    def __init__(self, root: Path, etcd_url: str, template: str = TEMPLATE) -> None:
        self.root = root
        for sub in ("conf.d", "templates", "out"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "templates" / "nginx.tmpl").write_text(template)
        self.dest = root / "out" / "services.conf"
        self.reloads = root / "reloads.log"
        (root / "conf.d" / "nginx.toml").write_text(
            f'[template]\nsrc = "nginx.tmpl"\ndest = "{self.dest}"\nkeys = ["/services"]\n'
            f'reload_cmd = "echo reload >> {self.reloads}"\n'
        )
        self.log = open(root / "daemon.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "muster",
                "confd",
                "-watch",
                "-backend",
                "etcdv3",
                "-node",
                etcd_url,
                "-confdir",
                str(root),
                "-config-file",
                str(root / "none.toml"),
                "-log-level",
                "warning",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_for(self, predicate: str, timeout: float = 120.0) -> float:
        """Seconds until dest contains ``predicate``."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            try:
                if predicate in self.dest.read_text():
                    return time.perf_counter() - start
            except FileNotFoundError:
                pass
            time.sleep(0.005)
        raise TimeoutError(f"dest never contained {predicate!r}; see {self.root / 'daemon.log'}")

    def reload_count(self) -> int:
        return len(self.reloads.read_text().split()) if self.reloads.exists() else 0

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return -1


def lone_write_latency(etcd: Etcd, daemon: Daemon, n: int, tag: str, spacing: float = 0.35) -> list[float]:
    """Write one new server at a time, ``spacing`` s apart, and time until the file holding it
    replaced dest."""
    samples = []
    last = time.perf_counter()
    for i in range(n):
        time.sleep(max(0.0, last + spacing - time.perf_counter()))
        last = time.perf_counter()
        host_port = 20000 + i
        value = json.dumps({"host": "192.0.2.1", "port": host_port})
        before = inode(daemon.dest)
        start = time.perf_counter()
        etcd.put(f"/services/bench-{tag}/servers/s{i}", value)
        needle = f"192.0.2.1:{host_port};"
        while True:
            if inode(daemon.dest) != before:
                before = inode(daemon.dest)
                try:
                    if needle in daemon.dest.read_text():
                        break
                except FileNotFoundError:
                    pass
            if time.perf_counter() - start > 30:
                raise TimeoutError(f"write {i} never reached the file")
            time.sleep(0.0002)
        samples.append(time.perf_counter() - start)
    return samples


def describe(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms (n={len(ms)})"


def main() -> None:
    small = "--small" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--small"]
    n = int(args[0]) if args else 40
    with tempfile.TemporaryDirectory(prefix="muster-bench-") as tmp:
        root = Path(tmp)
        with EtcdProcess(root / "etcd" / "data") as proc:
            etcd = Etcd(proc.client_url)

            # 1. Lone writes and a 200-key burst on a small registry.
            etcd.put_many({f"/services/web/servers/s{i}": server(i) for i in range(3)})
            daemon = Daemon(root / "small", proc.client_url)
            try:
                daemon.wait_for("upstream web")
                time.sleep(0.5)
                lone = lone_write_latency(etcd, daemon, n, "a")
                print(f"latency, lone write -> dest replaced: {describe(lone)}")
                paced = lone_write_latency(etcd, daemon, n, "p", spacing=0.2)
                print(f"latency, writes 200 ms apart -> dest replaced: {describe(paced)}")
                time.sleep(1.0)
                before = daemon.reload_count()
                start = time.perf_counter()
                for i in range(200):
                    etcd.put(f"/services/burst/servers/s{i:03d}", server(i, 8080))
                written = time.perf_counter() - start
                daemon.wait_for(f"{json.loads(server(199, 8080))['host']}:8080;")
                complete = time.perf_counter() - start
                time.sleep(1.5)
                text = daemon.dest.read_text()
                missing = [
                    i for i in range(200) if f"{json.loads(server(i, 8080))['host']}:8080;" not in text
                ]
                print(
                    f"burst of 200 writes ({written * 1000:.0f} ms to write): "
                    f"{daemon.reload_count() - before} reloads, complete file {complete * 1000:.0f} ms "
                    f"after the first write, {len(missing)} servers missing"
                )
            finally:
                daemon.stop()
            if small:
                return

            # 2. The same lone-write latency with 3,000 services registered.
            etcd.delete_all()
            etcd.put_many({f"/services/svc{i:04d}/servers/s0": server(i) for i in range(3000)})
            daemon = Daemon(root / "mid", proc.client_url)
            try:
                first = daemon.wait_for("upstream svc2999")
                time.sleep(0.5)
                samples = lone_write_latency(etcd, daemon, max(10, n // 2), "b")
                print(f"3,000 services: first render {first:.2f} s; lone write -> dest: {describe(samples)}")
            finally:
                daemon.stop()

            # 3. Footprint with 10,000 services x 3 servers (30,000 keys).
            etcd.delete_all()
            etcd.put_many(
                {
                    f"/services/svc{i:05d}/servers/s{j}": server(i * 3 + j)
                    for i in range(10000)
                    for j in range(3)
                }
            )
            daemon = Daemon(root / "big", proc.client_url)
            try:
                first = daemon.wait_for("upstream svc09999")
                time.sleep(2.0)
                rss = daemon.rss_mb()
                cpu0, t0 = daemon.cpu_seconds(), time.perf_counter()
                time.sleep(10.0)
                idle_cpu = daemon.cpu_seconds() - cpu0
                elapsed = time.perf_counter() - t0
                samples = lone_write_latency(etcd, daemon, 10, "c")
                rss_after = daemon.rss_mb()
                print(
                    f"10,000 services x 3 servers: first render {first:.2f} s; RSS {rss:.1f} MB "
                    f"(after 10 changes {rss_after:.1f} MB); idle CPU {idle_cpu:.2f} s over {elapsed:.0f} s; "
                    f"lone write -> dest: {describe(samples)}"
                )
            finally:
                daemon.stop()


if __name__ == "__main__":
    main()
