"""``muster up`` as a newcomer runs it: it starts, serves the demo, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from muster.stack.etcd import etcd_available, free_port
from muster.stack.nginx import nginx_available

pytestmark = pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd")


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if text in cmdline and state != "Z" and int(entry) != os.getpid():
                found.append(int(entry))
    return found


def process_group(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                found.append(int(entry))
    return found


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"no {marker!r} in output:\n{seen}"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            line = proc.stdout.readline()
            seen += line
    return seen


@pytest.mark.parametrize("backend", ["etcdv3", "etcd"])
def test_up_serves_the_demo_and_sigint_stops_every_process(tmp_path: Path, backend: str) -> None:
    state = tmp_path / "state"
    port = free_port()
    cmd = [sys.executable, "-m", "muster", "up", "--port", str(port), "--etcd-port", str(free_port()),
           "--state-dir", str(state), "--demo", "2", "--backend", backend]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = read_until(proc, "Ctrl-C stops everything", timeout=90)
        assert f"curl http://127.0.0.1:{port}/hello/" in banner
        assert "all routed" in banner
        bodies = set()
        for _ in range(10):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/", timeout=5) as resp:
                bodies.add(resp.read().decode().strip())
        assert bodies == {"hello-1", "hello-2"}
        started = processes_mentioning(str(state))
        master = int((state / "nginx" / "nginx.pid").read_text())
        assert master in started
        assert len(started) >= 3  # etcd, nginx's master, the daemon
        assert process_group(master)  # nginx's master and workers
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "stopped." in out
        assert processes_mentioning(str(state)) == []
        assert process_group(master) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_after_a_killed_run_stops_what_it_left_and_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    cmd = [sys.executable, "-m", "muster", "up", "--port", str(port), "--etcd-port", str(free_port()),
           "--state-dir", str(state), "--demo", "1"]  # fmt: skip
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second: subprocess.Popen[str] | None = None
    try:
        read_until(first, "Ctrl-C stops everything", timeout=90)
        master = int((state / "nginx" / "nginx.pid").read_text())
        first.kill()  # no chance to clean up: etcd, nginx and the daemon run on
        first.communicate()
        assert processes_mentioning(str(state))
        second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = read_until(second, "Ctrl-C stops everything", timeout=90)
        assert "an earlier muster up" in out
        assert process_group(master) == []  # the old nginx and its workers are gone
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/", timeout=5) as resp:
            assert resp.read().decode().strip() == "hello-1"
        second.send_signal(signal.SIGINT)
        second.communicate(timeout=60)
        assert second.returncode == 0
        assert processes_mentioning(str(state)) == []
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        from muster.stack.local import leftover_processes, stop_processes

        stop_processes(leftover_processes(state))


def test_a_busy_default_port_is_replaced_and_a_requested_one_is_an_error(tmp_path: Path) -> None:
    import socket

    from muster.errors import ConfigError
    from muster.stack.local import Stack, UpOptions

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        strict = Stack(UpOptions(port=free_port(), etcd_port=taken, state_dir=tmp_path / "a", workers=1))
        with pytest.raises(ConfigError, match=f"port {taken} .* in use: choose another with --etcd-port"):
            strict.start()
        assert strict.etcd == [] or not any(m.running for m in strict.etcd)
        opts = UpOptions(port=free_port(), etcd_port=taken, state_dir=tmp_path / "b", workers=1,
                         fallback_ports=frozenset({"--etcd-port"}))  # fmt: skip
        relaxed = Stack(opts)
        relaxed.start()
        try:
            assert relaxed.etcd[0].client_port != taken
            assert relaxed.notes == [f"port {taken} is in use (a system service?): etcd m0 listens on "
                                     f"{relaxed.etcd[0].client_port}"]  # fmt: skip
        finally:
            relaxed.stop()
