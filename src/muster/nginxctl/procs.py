"""nginx's processes as Linux shows them in ``/proc``, and a reload that confirms it took effect.

``nginx -s reload`` only sends a signal: when the new configuration fails to load (a port
already taken, a file that vanished since the check), nginx logs an error and carries on
with the old one, and the caller never learns. So ``reload`` signals the master by its
pid and waits until every live worker is one that did not exist before the signal:
nginx forks new workers only after the new configuration loaded, and retitles the old
ones "worker process is shutting down" once it has told them to stop accepting.

This module runs as a ``reload_cmd`` on every change, so it imports only ``os`` and
``time`` (plus muster's error tree): Python's start-up is most of a reload's cost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import NamedTuple

from muster.errors import ResourceError

__all__ = [
    "Child",
    "alive",
    "children",
    "confirm_reload",
    "read_pid",
    "reload",
    "wait_workers_replaced",
]

_WORKER_TITLE = "nginx: worker process"
_SIGHUP = 1  # POSIX fixes SIGHUP at 1; the signal module costs milliseconds to import


class Child(NamedTuple):
    """A child process of nginx's master: its pid and process title."""

    pid: int
    title: str

    @property
    def active_worker(self) -> bool:
        """A worker taking new connections (not one draining after a reload)."""
        return self.title == _WORKER_TITLE


def _stat_fields(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat") as fh:
        # comm may hold spaces and parentheses: the fields after the last ")" are safe
        return fh.read().rsplit(")", 1)[1].split()


def children(master: int) -> list[Child]:
    """The live children of ``master`` (workers, cache manager), read from ``/proc``."""
    found: list[Child] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(entry)
            if int(fields[1]) != master or fields[0] == "Z":
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                title = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue  # the process exited while we looked
        found.append(Child(int(entry), title))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return _stat_fields(pid)[0] != "Z"
    except (OSError, IndexError):
        return False


def read_pid(pid_file: str | os.PathLike[str]) -> int:
    """The master pid from nginx's pid file; ``ResourceError`` if absent or stale."""
    try:
        with open(pid_file) as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError) as exc:
        raise ResourceError(f"cannot read nginx's pid from {pid_file}: {exc}") from exc
    if not alive(pid):
        raise ResourceError(f"nginx is not running: pid {pid} from {pid_file} does not exist")
    return pid


def _wait_active_workers(master: int, is_new: Callable[[int], bool], timeout: float, what: str) -> list[int]:
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        if not alive(master):
            raise ResourceError(f"nginx master {master} exited during the reload")
        active = [c.pid for c in children(master) if c.active_worker]
        old = [pid for pid in active if not is_new(pid)]
        if active and not old:
            return sorted(active)
        if time.monotonic() > deadline:
            raise ResourceError(
                f"nginx master {master} kept its old workers {old} {timeout:g}s after {what}: "
                "it rejected the new configuration (nginx's error log says why)"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def wait_workers_replaced(master: int, before: set[int], timeout: float) -> list[int]:
    """Wait until every active worker of ``master`` is absent from ``before``; return them.

    Raises ``ResourceError`` if the master dies or the old workers are still the active
    ones after ``timeout`` (nginx rejected the new configuration: see its error log).
    """
    return _wait_active_workers(master, lambda pid: pid not in before, timeout, "the reload signal")


def confirm_reload(pid_file: str | os.PathLike[str], before: set[int], *, timeout: float = 10.0) -> list[int]:
    """Wait until no process of ``before`` (the master's children just before a SIGHUP sent
    by someone else, e.g. a shell) is an active worker: the reload took effect. Raises like
    ``reload``."""
    return wait_workers_replaced(read_pid(pid_file), before, timeout)


def reload(pid_file: str | os.PathLike[str], *, timeout: float = 10.0) -> list[int]:
    """SIGHUP nginx's master; return the new workers' pids once they are the only active ones."""
    master = read_pid(pid_file)
    before = {c.pid for c in children(master)}
    os.kill(master, _SIGHUP)
    return wait_workers_replaced(master, before, timeout)
