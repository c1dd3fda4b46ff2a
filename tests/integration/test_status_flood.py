"""20,000 idle connections to the status server cost the daemon neither its file descriptors nor its CPU.

The daemon runs as ``muster confd -watch`` against the session etcd, started with the soft
``RLIMIT_NOFILE`` most systems give a service (1024), so a status server without a
connection cap would run out of descriptors after about a thousand idle clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from daemon_it_helpers import ConfDir, Writer, read

from muster.stack.etcd import EtcdProcess, free_port
from muster.stack.process import stat_fields

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FLOOD = 20_000
#: Descriptors the test process keeps for itself (pytest, etcd clients, the /healthz probe).
SPARE_FDS = 200
DAEMON_SOFT_NOFILE = 1024


def raise_own_nofile() -> int:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; the number of flood sockets it allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limit = hard if hard != resource.RLIM_INFINITY else FLOOD + SPARE_FDS
    return min(FLOOD, limit - SPARE_FDS - len(os.listdir("/proc/self/fd")))


def cpu_seconds(pid: int) -> float:
    fields = stat_fields(pid)  # utime and stime are fields 14 and 15 of /proc/PID/stat
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_idle(port: int, count: int, failures: Counter[str] | None = None) -> list[socket.socket]:
    """``count`` connections to ``port`` that never send a byte (non-blocking connects).

    Each comes from an explicit address and port, 5,000 per address in 127.0.1.0/24:
    with kernel-chosen source ports, Linux's search for a free one slows to milliseconds
    per ``connect()`` once half its ephemeral range is taken (about 14,000 here). Those
    that cannot be opened are counted in ``failures`` by errno name.
    """
    socks = []
    failures = Counter() if failures is None else failures
    for i in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A run just before may have left these addresses in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((f"127.0.1.{1 + i // 5000}", 30000 + i % 5000))
        except OSError as exc:
            sock.close()
            failures["bind " + errno.errorcode.get(exc.errno or 0, "?")] += 1
            continue
        sock.setblocking(False)
        code = sock.connect_ex(("127.0.0.1", port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            failures["connect " + errno.errorcode.get(code, "?")] += 1
            continue
        socks.append(sock)
    return socks


async def healthz(base: str, timeout: float) -> float:
    """Seconds until ``/healthz`` answers 200 on a fresh connection; fails after ``timeout``."""
    start = time.monotonic()
    last = "no answer"
    client_timeout = aiohttp.ClientTimeout(total=2)
    while time.monotonic() - start < timeout:
        try:
            async with (
                aiohttp.ClientSession(timeout=client_timeout) as session,
                session.get(f"{base}/healthz") as resp,
            ):
                if resp.status == 200:
                    return time.monotonic() - start
                last = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            last = repr(exc)
        await asyncio.sleep(0.1)
    pytest.fail(f"/healthz did not answer within {timeout}s; last: {last}")


async def test_idle_connection_flood(etcd: EtcdProcess, key_prefix: str, tmp_path: Path) -> None:
    flood = raise_own_nofile()
    if flood < 2 * DAEMON_SOFT_NOFILE:
        pytest.skip(f"RLIMIT_NOFILE hard limit allows only {flood} connections")
    confdir = ConfDir(tmp_path)
    dest = confdir.add("app", '{{getv "/app/port"}}\n', prefix=key_prefix, keys='["/app"]', reload_cmd="")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "daemon.log"
    socks: list[socket.socket] = []
    async with Writer("etcdv3", etcd.client_url) as writer:
        await writer.put(f"{key_prefix}/app/port", "8080")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                ["prlimit", f"--nofile={DAEMON_SOFT_NOFILE}:", "--",
                 sys.executable, "-m", "muster", "confd", "-watch", "-confdir", str(tmp_path),
                 "-backend", "etcdv3", "-node", etcd.client_url, "-status-addr", f"127.0.0.1:{port}",
                 "-config-file", str(tmp_path / "none.toml")],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ},
            )  # fmt: skip
        try:
            await healthz(base, timeout=30)
            deadline = time.monotonic() + 15
            while read(dest) != "8080\n" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert read(dest) == "8080\n"
            limits = Path(f"/proc/{proc.pid}/limits").read_text()
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            nofile = next(line for line in limits.splitlines() if line.startswith("Max open files"))
            assert nofile.split()[3] == str(hard), f"the daemon raised its soft limit: {nofile}"

            log_before = log_path.stat().st_size
            cpu_before, t_before = cpu_seconds(proc.pid), time.monotonic()
            not_opened: Counter[str] = Counter()
            socks = await asyncio.to_thread(open_idle, port, flood, not_opened)
            opened = time.monotonic() - t_before

            # A registry change during the flood is applied at once.
            changed = time.monotonic()
            await writer.put(f"{key_prefix}/app/port", "9090")
            while read(dest) != "9090\n" and time.monotonic() - changed < 5:
                await asyncio.sleep(0.02)
            applied = time.monotonic() - changed
            assert read(dest) == "9090\n", "the change was not applied within 5 s of the flood"

            # The liveness probe gets through while the idle connections are still held open.
            answered = await healthz(base, timeout=15)

            await asyncio.sleep(max(0.0, 8 - (time.monotonic() - t_before)))
            cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - t_before)
            daemon_fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            growth = log_path.stat().st_size - log_before
            report = (
                f"{len(socks)} idle connections opened in {opened:.2f}s (not opened: {dict(not_opened)}); "
                f"change applied in {applied:.2f}s; "
                f"/healthz in {answered:.2f}s; daemon CPU {cpu:.1%} of a core; log +{growth} bytes; "
                f"daemon fds {daemon_fds}"
            )
            print(report)
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert cpu < 0.20, report
            assert growth < 4096, report + "\n" + log_path.read_text()[-3000:]
            assert daemon_fds < 400, report
            assert "Too many open files" not in log_path.read_text()
        finally:
            for sock in socks:
                sock.close()
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, log_path.read_text()[-3000:]


SERVER_WITH_FEW_FDS = """
import asyncio, resource, sys
from muster.log import configure
from muster.status import Status, StatusServer

async def main() -> None:
    configure("info")
    server = StatusServer(Status(), sys.argv[1], max_connections=100_000, idle_timeout=2.0)
    await server.start()
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_running_out_of_descriptors_backs_off_quietly(tmp_path: Path) -> None:
    """With no cap to save it (64 descriptors, a cap of 100,000), accept() fails with EMFILE:
    the server retries once a second, logs it once, and serves again when the idle ones go."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_WITH_FEW_FDS, f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
    socks: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        assert (await asyncio.to_thread(proc.stdout.readline)) == b"ready\n", log_path.read_text()
        await healthz(base, timeout=10)
        cpu_before, t_before = cpu_seconds(proc.pid), time.monotonic()
        socks = await asyncio.to_thread(open_idle, port, 300)
        assert len(socks) > 200, f"only {len(socks)} connections could be opened"
        await asyncio.sleep(5)
        cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - t_before)
        text = log_path.read_text()
        assert proc.poll() is None, text
        assert text.count("status.accept.failed") == 1, text
        assert 'error="EMFILE Too many open files"' in text and "Traceback" not in text, text
        assert len(text) < 2048, text
        assert cpu < 0.20, f"CPU {cpu:.1%} of a core while out of descriptors"
        for sock in socks:
            sock.close()
        socks = []
        await healthz(base, timeout=15)
        assert "status.accept.recovered" in log_path.read_text()
    finally:
        for sock in socks:
            sock.close()
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        print(log_path.read_text())
