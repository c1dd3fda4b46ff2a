"""Check and reload a running nginx, and confirm that the reload took effect.

``nginx -s reload`` only sends a signal: when the new configuration fails to load (a port
already taken, a file that vanished since the check), nginx logs an error and carries on
with the old one, and the caller never learns. So ``reload`` signals the master by its
pid and waits until every live worker is one that did not exist before the signal:
nginx forks new workers only after the new configuration loaded, and retitles the old
ones "worker process is shutting down". Linux only (it reads ``/proc``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from muster.errors import CommandFailed, ResourceError
from muster.nginxctl.shadow import ShadowError, plan_shadow

__all__ = [
    "NGINX_BINARY",
    "Child",
    "check_config",
    "check_with_replacement",
    "children",
    "read_pid",
    "reload",
    "signal_all",
    "wait_workers_replaced",
]

NGINX_BINARY = "/usr/sbin/nginx"
_WORKER_TITLE = "nginx: worker process"


@dataclass(frozen=True, slots=True)
class Child:
    """A child process of nginx's master: its pid and process title."""

    pid: int
    title: str

    @property
    def active_worker(self) -> bool:
        """A worker taking new connections (not one draining after a reload)."""
        return self.title == _WORKER_TITLE


def children(master: int) -> list[Child]:
    """The live children of ``master`` (workers, cache manager), read from ``/proc``."""
    found: list[Child] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            # comm may contain spaces and parentheses: the fields after the last ")" are safe
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) != master or fields[0] == "Z":
                continue
            title = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, IndexError, ValueError):
            continue  # the process exited while we looked
        found.append(Child(int(entry), title))
    return found


def read_pid(pid_file: Path) -> int:
    """The master pid from nginx's pid file; ``ResourceError`` if absent or stale."""
    try:
        pid = int(Path(pid_file).read_text().strip())
    except (OSError, ValueError) as exc:
        raise ResourceError(f"cannot read nginx's pid from {pid_file}: {exc}") from exc
    if not _alive(pid):
        raise ResourceError(f"nginx is not running: pid {pid} from {pid_file} does not exist")
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running either.
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def wait_workers_replaced(master: int, before: set[int], timeout: float) -> list[int]:
    """Wait until every active worker of ``master`` is absent from ``before``; return them.

    Raises ``ResourceError`` if the master dies or the old workers are still the active
    ones after ``timeout`` (nginx rejected the new configuration: see its error log).
    """
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        if not _alive(master):
            raise ResourceError(f"nginx master {master} exited during the reload")
        active = [c.pid for c in children(master) if c.active_worker]
        if active and not set(active) & before:
            return sorted(active)
        if time.monotonic() > deadline:
            raise ResourceError(
                f"nginx master {master} kept its old workers {sorted(set(active) & before)} "
                f"{timeout:g}s after the reload signal: it rejected the new configuration "
                "(nginx's error log says why)"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def reload(pid_file: Path, *, timeout: float = 10.0) -> list[int]:
    """SIGHUP nginx's master and return the new workers' pids once they are the live ones."""
    # No logging here: this runs as a short-lived reload_cmd whose caller logs the outcome,
    # and importing logging's config machinery would cost more than the reload itself.
    master = read_pid(pid_file)
    before = {c.pid for c in children(master)}
    os.kill(master, signal.SIGHUP)
    return wait_workers_replaced(master, before, timeout)


def check_config(
    conf: Path,
    *,
    binary: str = NGINX_BINARY,
    prefix: Path | None = None,
    globals_: str | None = None,
    timeout: float = 30.0,
) -> str:
    """Run ``nginx -t`` on ``conf``; return its output, raise ``CommandFailed`` if it fails."""
    cmd = [binary, "-t", "-q", "-c", str(conf)]
    if prefix is not None:
        cmd[1:1] = ["-p", str(prefix).rstrip("/") + "/"]
    if globals_:
        cmd += ["-g", globals_]
    # nginx opens its compiled-in error log before reading -e/-c; stderr keeps it harmless.
    cmd[1:1] = ["-e", "stderr"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(" ".join(cmd), None, "", what="nginx check") from exc
    except OSError as exc:
        raise CommandFailed(" ".join(cmd), 127, str(exc), what="nginx check") from exc
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise CommandFailed(" ".join(cmd), proc.returncode, output, what="nginx check")
    return output


def check_with_replacement(
    conf: Path,
    replace: Path,
    staged: Path,
    *,
    binary: str = NGINX_BINARY,
    prefix: Path | None = None,
    globals_: str | None = None,
    timeout: float = 30.0,
) -> str:
    """``nginx -t`` on the whole configuration rooted at ``conf``, with ``staged`` in place of ``replace``.

    The shadow files are written next to ``conf`` (so relative paths keep their meaning)
    and always removed. Raises ``CommandFailed`` with nginx's message when the check fails
    and ``ResourceError`` when ``conf`` never includes ``replace``.
    """
    try:
        plan = plan_shadow(conf, replace, staged)
    except ShadowError as exc:
        raise ResourceError(f"cannot check {staged} as {replace} within {conf}: {exc}") from exc
    written: list[Path] = []
    try:
        for real, text in plan.files.items():
            name = plan.names[real]
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            written.append(name)
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
                fh.write(text)
        output = check_config(
            plan.names[plan.main], binary=binary, prefix=prefix, globals_=globals_, timeout=timeout
        )
    except CommandFailed as exc:
        # Name the real files in nginx's message: the shadows are gone by the time anyone reads it.
        raise CommandFailed(
            exc.cmd, exc.returncode, _unshadow(exc.output, plan.names), what="nginx check"
        ) from None
    except OSError as exc:
        raise ResourceError(f"cannot write the shadow configuration next to {conf}: {exc}") from exc
    finally:
        for name in written:
            with contextlib.suppress(OSError):
                name.unlink()
    return _unshadow(output, plan.names)


def _unshadow(output: str, names: dict[Path, Path]) -> str:
    """nginx's messages with each shadow file's name replaced by the real one."""
    for real, name in names.items():
        output = output.replace(str(name), str(real))
    return output


def signal_all(pids: Sequence[int], sig: signal.Signals) -> None:
    """Send ``sig`` to each pid, ignoring those already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
