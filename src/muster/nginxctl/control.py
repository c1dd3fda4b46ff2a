"""Check a staged file within nginx's whole configuration (``nginx -t`` on a shadow config).

See ``muster.nginxctl.shadow`` for how the shadow is built and ``muster.nginxctl.procs``
for the confirmed reload.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from muster.errors import CommandFailed, ResourceError
from muster.nginxctl.procs import Child, children, read_pid, reload, wait_workers_replaced
from muster.nginxctl.shadow import ShadowError, plan_shadow

__all__ = [
    "Child",
    "NGINX_BINARY",
    "check_config",
    "check_with_replacement",
    "children",
    "error_log_flag",
    "read_pid",
    "reload",
    "signal_all",
    "wait_workers_replaced",
]

NGINX_BINARY = "/usr/sbin/nginx"


@functools.cache
def error_log_flag(binary: str = NGINX_BINARY) -> bool:
    """Whether this nginx has ``-e`` (1.19.5 and later; Debian 11 and Ubuntu 22.04 ship 1.18)."""
    try:
        proc = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "-e filename" in proc.stdout + proc.stderr


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
    if error_log_flag(binary):
        # nginx opens its compiled-in error log before reading the config; unprivileged,
        # that may be unwritable (an alert, not a failure): stderr keeps the output clean.
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
