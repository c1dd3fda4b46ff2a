"""``muster up`` as a newcomer runs it: it starts, serves the demo, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import codecs
import os
import re
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
    """The output up to and including ``marker``; fails after ``timeout`` seconds.

    Reads the pipe's descriptor itself: a buffered ``readline`` after ``select`` would keep
    lines that arrived together in its buffer, where ``select`` cannot see them, and wait
    for output that never comes (the banner arrives in one burst when we read late).
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in output:\n{seen}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"exited ({proc.wait()}) without {marker!r} in output:\n{seen}"
            seen += decoder.decode(chunk)
    return seen


def get_body(url: str, want: str, timeout: float) -> str:
    """GET ``url`` until it answers ``want`` or ``timeout`` passes; the last answer or error."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                last = resp.read().decode().strip()
        except OSError as exc:
            last = repr(exc)
        if last == want or time.monotonic() > deadline:
            return last
        time.sleep(0.1)


def end(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc`` if it still runs, reap it and close its pipe (else a failed test would
    leave an unclosed-file warning to fail whichever test the garbage collector runs in)."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def assert_demo_routed(port: int, banner: str) -> None:
    """Both demo servers answer through nginx, and the status server named in the banner is ready."""
    bodies = set()
    for _ in range(10):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/", timeout=5) as resp:
            bodies.add(resp.read().decode().strip())
    assert bodies == {"hello-1", "hello-2"}
    status = re.search(r"curl (http://127\.0\.0\.1:\d+)/status", banner)
    assert status is not None, banner
    with urllib.request.urlopen(f"{status.group(1)}/readyz", timeout=5) as resp:
        assert resp.status == 200


def assert_sigint_leaves_nothing(proc: subprocess.Popen[str], state: Path) -> None:
    """Ctrl-C stops ``muster up`` cleanly, and no process of its state dir or nginx's group is left."""
    started = processes_mentioning(str(state))
    master = int((state / "nginx" / "nginx.pid").read_text())
    assert master in started
    assert len(started) >= 3  # the store, nginx's master, the daemon
    assert process_group(master)  # nginx's master and workers
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopped." in out
    assert processes_mentioning(str(state)) == []
    assert process_group(master) == []


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
        assert_demo_routed(port, banner)  # and the daemon's status server says it is in step
        assert_sigint_leaves_nothing(proc, state)
    finally:
        end(proc)


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
        stopping = next(line for line in out.splitlines() if "an earlier muster up" in line)
        assert all(f" {name}" in stopping for name in ("etcd,", "muster confd,", "nginx")), stopping
        assert process_group(master) == []  # the old nginx and its workers are gone
        # The banner may come before the demo server is routed (it waits 10 s at most).
        assert get_body(f"http://127.0.0.1:{port}/hello/", "hello-1", timeout=30) == "hello-1"
        second.send_signal(signal.SIGINT)
        second.communicate(timeout=60)
        assert second.returncode == 0
        assert processes_mentioning(str(state)) == []
    finally:
        for proc in (first, second):
            if proc is not None:
                end(proc)
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
            port_notes = [n for n in relaxed.notes if n.startswith("port ")]
            assert port_notes == [f"port {taken} is in use (a system service?): etcd m0 listens on "
                                  f"{relaxed.etcd[0].client_port}"]  # fmt: skip
        finally:
            relaxed.stop()


def test_the_state_lock_is_held_by_a_live_run_only(tmp_path: Path) -> None:
    from muster.errors import ConfigError
    from muster.stack.up import _StateLock

    path = tmp_path / "muster-up.pid"
    holder_code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, b'%d\\n' % os.getpid())\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        read_until(holder, "locked", timeout=30)
        with pytest.raises(ConfigError, match=f"pid {holder.pid}\\) is already running"):
            _StateLock.take(path)
    finally:
        end(holder)  # killed: the kernel drops its lock, its pid stays in the file
    lock = _StateLock.take(path)
    assert lock.previous == holder.pid  # a killed run: muster up stops what it left
    lock.release()
    assert path.read_text() == ""  # a clean exit
    # A pid in the file whose process lives but holds no lock is not a run: the dead
    # run's pid was reused (here by our parent). The lock is taken over.
    path.write_text(f"{os.getppid()}\n")
    lock = _StateLock.take(path)
    assert lock.previous == os.getppid()
    assert path.read_text() == f"{os.getpid()}\n"
    lock.release()


def test_stop_processes_stops_a_group_that_ignores_sigterm(tmp_path: Path) -> None:
    from muster.stack.local import stop_processes

    # A leader and two children, all ignoring SIGTERM (the ignored disposition is inherited).
    leader = subprocess.Popen(
        ["/bin/sh", "-c", "trap '' TERM; sleep 60 & sleep 60 & echo started; wait"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        read_until(leader, "started", timeout=30)
        members = process_group(leader.pid)
        assert len(members) == 3
        started = time.monotonic()
        stop_processes([leader.pid, 2**22 + 1], timeout=0.5)  # the second pid exists nowhere
        assert time.monotonic() - started < 10
        assert leader.wait(timeout=10) == -signal.SIGKILL
        assert process_group(leader.pid) == []
    finally:
        end(leader)
