"""``muster up`` stops its whole stack whatever happens to its terminal: closed, or a pipe's reader gone.

Each test records every process of the stack while it runs (etcd, nginx's master and
workers, the daemon, and ``muster up`` itself, which runs the demo servers) by pid and
start time, so a pid reused later is not mistaken for one of them, and checks that none
is left once ``muster up`` has exited.
"""

from __future__ import annotations

import codecs
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_nginx_up import process_group, processes_mentioning

from muster.stack.etcd import etcd_available, free_port
from muster.stack.local import leftover_processes, stop_processes
from muster.stack.nginx import nginx_available

pytestmark = pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd")

# Run in the child: make the pty on stdin its controlling terminal (start_new_session made
# the child a session leader, as a login shell is), then become ``muster up`` (same pid).
# Closing the master side then hangs the terminal up, and the kernel sends SIGHUP to it.
WITH_TERMINAL = (
    "import fcntl, os, sys, termios\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
)


def up_args(state: Path) -> list[str]:
    return ["-m", "muster", "up", "--port", str(free_port()), "--etcd-port", str(free_port()),
            "--state-dir", str(state), "--demo", "2"]  # fmt: skip


def start_time(pid: int) -> str | None:
    """The process's start time (``/proc/PID/stat`` field 22); None once it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]


class StackProcesses:
    """Every process of the stack under ``state`` seen by ``look()``, as (pid, start time)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.seen: set[tuple[int, str]] = set()

    def look(self) -> None:
        # nginx's workers do not name the state directory; they are in their master's group.
        for pid in processes_mentioning(str(self.state)):
            for member in {pid, *process_group(pid)}:
                started = start_time(member)
                if started is not None:
                    self.seen.add((member, started))

    def alive(self) -> list[int]:
        left = {pid for pid, started in self.seen if start_time(pid) == started}
        return sorted(left | set(processes_mentioning(str(self.state))))

    def wait_gone(self, timeout: float) -> list[int]:
        """The processes still alive after ``timeout`` seconds, [] as soon as none is."""
        deadline = time.monotonic() + timeout
        while (left := self.alive()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


def read_until(fd: int, marker: str, timeout: float, stack: StackProcesses) -> str:
    """Output read from ``fd`` up to ``marker`` (or to its end with ``marker=""``), looking at
    the stack's processes all along; fails after ``timeout`` seconds."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    seen = ""
    deadline = time.monotonic() + timeout
    while not marker or marker not in seen:
        stack.look()
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in output:\n{seen}"
        ready, _, _ = select.select([fd], [], [], min(left, 0.2))
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: a pty whose other side is closed
                chunk = b""
            if not chunk:
                assert not marker, f"output ended without {marker!r}:\n{seen}"
                break
            seen += decoder.decode(chunk)
    return seen


def assert_all_stopped(proc: subprocess.Popen[bytes], stack: StackProcesses, stderr: Path) -> None:
    status = proc.wait(timeout=90)
    left = stack.wait_gone(timeout=15)
    assert (status, left) == (0, []), stderr.read_text()
    assert "Traceback" not in stderr.read_text()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    yield state
    stop_processes(leftover_processes(state))  # a failed test leaves nothing running either


def end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_closing_the_terminal_stops_every_process(state: Path, tmp_path: Path) -> None:
    master, terminal = os.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", WITH_TERMINAL, *up_args(state)],
            stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(terminal)
    stack = StackProcesses(state)
    try:
        read_until(master, "Ctrl-C stops everything", timeout=90, stack=stack)
        stack.look()
        assert len(stack.seen) >= 5, stack.seen  # muster up, etcd, nginx master and worker, daemon
        os.close(master)  # the terminal window is closed
        master = -1
        status = proc.wait(timeout=90)
        assert (status, stack.wait_gone(timeout=15)) == (0, [])
    finally:
        if master >= 0:
            os.close(master)
        end(proc)


def test_piped_into_head_it_stops_every_process_once_head_exits(state: Path, tmp_path: Path) -> None:
    # muster up | head -3: once head has its three lines, nobody reads muster up's output.
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([sys.executable, *up_args(state)], stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    head = subprocess.Popen(["head", "-3"], stdin=proc.stdout, stdout=subprocess.PIPE)
    proc.stdout.close()  # head is its only reader
    assert head.stdout is not None
    stack = StackProcesses(state)
    try:
        lines = read_until(head.stdout.fileno(), "", timeout=90, stack=stack).splitlines()
        assert head.wait(timeout=10) == 0
        # The third line comes once everything serves (notes, if any, and the banner).
        assert len(lines) == 3 and lines[0].startswith("starting etcd"), lines
        assert len(stack.seen) >= 5, stack.seen
        # No signal: the reader went away, and muster up stops what it started.
        assert_all_stopped(proc, stack, stderr)
        assert "up.stdout.gone" in stderr.read_text()
    finally:
        end(head)
        end(proc)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_piped_into_tee_a_signal_that_also_ends_tee_stops_every_process(
    state: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    # muster up | tee log, then Ctrl-C: the signal ends tee as well, so every line muster up
    # prints while it stops goes to a pipe nobody reads.
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([sys.executable, *up_args(state)], stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    stack = StackProcesses(state)
    try:
        read_until(proc.stdout.fileno(), "Ctrl-C stops everything", timeout=90, stack=stack)
        stack.look()
        assert len(stack.seen) >= 5, stack.seen
        proc.stdout.close()
        proc.send_signal(sig)
        assert_all_stopped(proc, stack, stderr)
    finally:
        end(proc)


def test_sighup_stops_every_process_and_says_so(state: Path, tmp_path: Path) -> None:
    stderr = tmp_path / "stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen([sys.executable, *up_args(state)], stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    stack = StackProcesses(state)
    try:
        read_until(proc.stdout.fileno(), "Ctrl-C stops everything", timeout=90, stack=stack)
        stack.look()
        proc.send_signal(signal.SIGHUP)
        out = read_until(proc.stdout.fileno(), "", timeout=90, stack=stack)
        assert out.rstrip().endswith("stopped."), out
        assert_all_stopped(proc, stack, stderr)
    finally:
        end(proc)
