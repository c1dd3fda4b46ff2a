"""``ManagedProcess.stop``/``kill``, shared by every stack driver, against real child processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from muster.stack.process import ManagedProcess, group_members, kill_group

# The child ignores SIGTERM unless told otherwise, exits 0 on SIGUSR1, and forks a worker
# that stays in its process group and ignores SIGTERM too (as an orphaned nginx worker).
CHILD = """
import signal, subprocess, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGUSR1, lambda *_: sys.exit(0))
worker = subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
print(worker.pid, flush=True)
while True:
    time.sleep(1)
"""


class Child(ManagedProcess):
    def __init__(self, tmp_path: Path, mode: str = "polite") -> None:
        self.log_path = tmp_path / "child.log"
        self.mode = mode

    def start(self) -> None:
        self._spawn([sys.executable, "-c", CHILD, self.mode], self.log_path)

    def worker_pid(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text() if self.log_path.exists() else ""
            if text.strip():
                return int(text.split()[0])
            time.sleep(0.01)
        raise AssertionError(f"the child did not start its worker: {self.log_path}")


class GroupChild(Child):
    kills_group = True


class SoftStopChild(GroupChild):
    def _request_stop(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGUSR1)


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Process groups a test may leave behind on purpose; killed afterwards."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        kill_group(pgid)


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for whoever inherited it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_stop_terminates_reaps_and_is_safe_when_not_running(tmp_path: Path, leftovers: list[int]) -> None:
    child = Child(tmp_path)
    child.stop()  # never started: nothing to do
    child.start()
    worker = child.worker_pid()
    proc = child._proc
    assert proc is not None and child.running
    leftovers.append(proc.pid)
    child.stop(timeout=10)
    assert proc.returncode == -signal.SIGTERM
    assert not child.running and child.pid is None
    # Without kills_group a worker in the child's group outlives it.
    assert _alive(worker)
    child.stop()


def test_stop_escalates_to_sigkill_and_kills_the_group(tmp_path: Path, leftovers: list[int]) -> None:
    child = GroupChild(tmp_path, "stubborn")
    child.start()
    worker = child.worker_pid()
    proc = child._proc
    assert proc is not None
    leftovers.append(proc.pid)
    child.stop(timeout=0.2)
    assert proc.returncode == -signal.SIGKILL
    assert group_members(proc.pid) == [] and not _alive(worker)


def test_a_driver_chooses_how_the_child_is_asked_to_stop(tmp_path: Path, leftovers: list[int]) -> None:
    child = SoftStopChild(tmp_path, "stubborn")
    child.start()
    worker = child.worker_pid()
    proc = child._proc
    assert proc is not None
    leftovers.append(proc.pid)
    child.stop(timeout=10)
    assert proc.returncode == 0  # SIGUSR1, not SIGTERM (ignored) nor SIGKILL
    assert not _alive(worker)


def test_kill_is_a_crash_and_takes_the_group_with_it(tmp_path: Path, leftovers: list[int]) -> None:
    with GroupChild(tmp_path) as child:
        worker = child.worker_pid()
        proc = child._proc
        assert proc is not None
        leftovers.append(proc.pid)
        child.kill()
        assert proc.returncode == -signal.SIGKILL
        assert child.pid is None and not _alive(worker)
    # leaving the ``with`` block stops it again: a no-op now
