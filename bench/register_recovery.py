"""How fast ``muster register`` writes, restores and removes its key against a real etcd, and its RSS.

For each API (etcd v3 leases, etcd v2 TTLs), with ``--ttl 3``, over REPEATS rounds:

* first write: process start to key present (includes Python start-up);
* deregistration: SIGTERM to key gone and to process exit;
* lost key: key removed behind muster's back (v3 lease revoked, v2 key deleted) to key back;
* etcd restart: etcd stopped for 2 TTLs, restarted, health OK to key present;
* RSS of the running agent (VmRSS) after the rounds.

The seed's shell loop (``curl ... -d ttl=60`` every 45 s) takes up to 45 s to restore a
lost key and never removes it on shutdown; confd has no registration at all.

    python bench/register_recovery.py [REPEATS]
"""

from __future__ import annotations

import base64
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from muster.stack.etcd import EtcdProcess

KEY = "/services/bench/servers/a"


def get(url: str, api: str) -> dict[str, object] | None:
    try:
        if api == "etcdv3":
            body = json.dumps({"key": base64.b64encode(KEY.encode()).decode()}).encode()
            with urllib.request.urlopen(url + "/v3/kv/range", body, timeout=2) as r:
                kvs = json.loads(r.read()).get("kvs")
                return dict(kvs[0]) if kvs else None
        with urllib.request.urlopen(url + "/v2/keys" + KEY, timeout=2) as r:
            return dict(json.loads(r.read())["node"])
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def wait(url: str, api: str, present: bool, timeout: float = 30) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if (get(url, api) is not None) == present:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"key never {'appeared' if present else 'vanished'}")


def remove_behind_its_back(url: str, api: str) -> None:
    if api == "etcdv3":
        entry = get(url, api)
        assert entry is not None
        body = json.dumps({"ID": entry["lease"]}).encode()
        urllib.request.urlopen(url + "/v3/lease/revoke", body, timeout=2).close()
    else:
        request = urllib.request.Request(url + "/v2/keys" + KEY, method="DELETE")
        urllib.request.urlopen(request, timeout=2).close()


def start_agent(url: str, api: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "muster",
        "register",
        "--service",
        "bench",
        "--host",
        "127.0.0.1",
        "--port",
        "8080",
        "--id",
        "a",
        "--ttl",
        "3",
        "--backend",
        api,
        "--node",
        url,
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(cmd, stderr=subprocess.DEVNULL)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fmt(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"p50 {statistics.median(ms):7.1f} ms  max {ms[-1]:7.1f} ms"


def bench(api: str, repeats: int, workdir: Path) -> None:
    first, gone, exited, lost, restart = [], [], [], [], []
    rss = 0
    with EtcdProcess(workdir / f"etcd-{api}") as etcd:
        url = etcd.client_url
        for _ in range(repeats):
            t0 = time.monotonic()
            agent = start_agent(url, api)
            wait(url, api, True)
            first.append(time.monotonic() - t0)
            remove_behind_its_back(url, api)
            lost.append(wait(url, api, True))
            t1 = time.monotonic()
            agent.send_signal(signal.SIGTERM)
            gone.append(wait(url, api, False))
            agent.wait()
            exited.append(time.monotonic() - t1)
        agent = start_agent(url, api)
        wait(url, api, True)
        for _ in range(max(1, repeats // 3)):
            etcd.stop()
            time.sleep(6)
            etcd.start()  # returns once /health is OK
            restart.append(wait(url, api, True))
        rss = rss_kib(agent.pid)
        agent.send_signal(signal.SIGTERM)
        agent.wait()
    print(f"[{api}] first write        {fmt(first)}  (from process start)")
    print(f"[{api}] SIGTERM -> key gone {fmt(gone)}")
    print(f"[{api}] SIGTERM -> exit     {fmt(exited)}")
    print(f"[{api}] lost key -> back    {fmt(lost)}  (refresh every TTL/3 = 1 s)")
    print(f"[{api}] etcd back -> key    {fmt(restart)}  ({len(restart)} restarts after 6 s down)")
    print(f"[{api}] agent RSS           {rss / 1024:.1f} MiB")


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    with tempfile.TemporaryDirectory() as tmp:
        for api in ("etcdv3", "etcd"):
            bench(api, repeats, Path(tmp))


if __name__ == "__main__":
    main()
