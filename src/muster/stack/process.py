"""What every process driver of the local stack shares: launch, stop, pid, liveness, log tail, ``with``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

__all__ = ["ManagedProcess", "STOP_GRACE", "group_members", "kill_group", "log_tail", "stat_fields"]

STOP_GRACE = 10.0  # seconds a child gets to shut down cleanly before SIGKILL


def log_tail(path: Path, lines: int, missing: str = "") -> str:
    """The last ``lines`` lines of a process's log, for error messages; ``missing`` if unreadable."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return missing
    return "\n".join(text.splitlines()[-lines:])


def stat_fields(pid: int) -> list[str]:
    """``/proc/PID/stat`` after the command name: state, ppid, pgrp, ...; [] if gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(int(entry))
            if fields[:1] != ["Z"] and fields[2:3] == [str(pgid)]:
                found.append(int(entry))
    return found


def kill_group(pgid: int, timeout: float = 5.0) -> None:
    """SIGKILL process group ``pgid``; return once none of it lives, or after ``timeout``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.005)


class ManagedProcess:
    """Base of the drivers: ``_proc`` is the child while it runs; ``with`` starts and stops it.

    ``_spawn`` starts the child in a session of its own, so it leads a process group. Drivers
    differ in two small ways only: how the child is asked to shut down (``_request_stop``,
    SIGTERM unless overridden) and whether workers can outlive it (``kills_group``).
    """

    _proc: subprocess.Popen[bytes] | None = None

    #: The child forks workers that stay in its process group, and may outlive a master that
    #: died hard (holding the listening sockets): once it is reaped, SIGKILL the whole group.
    kills_group: ClassVar[bool] = False

    def start(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The child's (for nginx and haproxy: the master's) pid while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, command: Sequence[str], log_path: Path) -> None:
        """Launch ``command`` as ``_proc``, its stdout and stderr appended to ``log_path``."""
        log = log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,  # a Ctrl-C in the terminal must not kill it before we do
            )  # fmt: skip
        finally:
            log.close()

    def _request_stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Ask the child to shut down cleanly (SIGTERM here)."""
        proc.terminate()

    def stop(self, timeout: float = STOP_GRACE) -> None:
        """``_request_stop``, then SIGKILL after ``timeout``; always reaps. Safe when not running."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._request_stop(proc)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reaped(proc)

    def kill(self) -> None:
        """SIGKILL (a crash: no clean shutdown) and reap. Safe when not running."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()  # a no-op once the child has exited
        proc.wait()
        self._reaped(proc)

    def _reaped(self, proc: subprocess.Popen[bytes]) -> None:
        """The child is gone: kill what it left in its group (``kills_group``), forget it."""
        if self.kills_group:
            kill_group(proc.pid)
        self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
