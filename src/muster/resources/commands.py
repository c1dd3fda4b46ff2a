"""check_cmd / reload_cmd: ``/bin/sh -c`` with path substitution, a timeout and captured output.

confd runs these with no timeout (a hung ``reload_cmd`` freezes it for good, confd#346) and
renders only ``{{.src}}`` in ``check_cmd``. Here both commands expand ``{{.src}}`` and
``{{.dest}}`` to shell-quoted paths, each run is bounded by a timeout that kills the
command's whole process group, and the output is captured for the logs and the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import signal
import tempfile
import time
from dataclasses import dataclass

from muster.errors import CommandFailed
from muster.log import kv

__all__ = ["CommandResult", "expand", "reap", "run_command"]

logger = logging.getLogger(__name__)

# confd renders the command as a Go template with data {"src": ...}; these are the only two
# fields it (or the confd fork, for reload_cmd) ever offered, with Go's optional trim markers.
_FIELD = re.compile(r"\{\{-?\s*\.(src|dest)\s*-?\}\}")
# Output kept for logs and errors: the tail is what explains a failure.
OUTPUT_LIMIT = 64 * 1024
# How long a timed-out command gets between SIGTERM and SIGKILL.
KILL_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a successful command did: its final text, exit status, output and duration."""

    cmd: str
    returncode: int
    output: str
    duration: float


def expand(cmd: str, *, src: str, dest: str) -> str:
    """Substitute ``{{.src}}``/``{{.dest}}`` with shell-quoted paths (unchanged if already safe)."""
    paths = {"src": src, "dest": dest}
    return _FIELD.sub(lambda m: shlex.quote(paths[m.group(1)]), cmd)


async def run_command(cmd: str, *, timeout: float, what: str, resource: str = "") -> CommandResult:
    """Run ``cmd`` through ``/bin/sh -c``; raise ``CommandFailed`` on non-zero exit or timeout.

    The command runs in its own session so a timeout can kill everything it started. The
    daemon is not blocked: other coroutines run while the command does.
    """
    started = time.monotonic()
    logger.info(kv(f"command.{what}.started", resource=resource, cmd=cmd))
    # Output goes to an unlinked temp file, not a pipe: a background child that inherits it
    # (a reload that starts a daemon) cannot keep us waiting for EOF.
    with tempfile.TemporaryFile() as out:
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        except OSError as exc:  # fork failed (EAGAIN, ENOMEM) or no /bin/sh
            logger.error(kv(f"command.{what}.failed", resource=resource, cmd=cmd, error=exc))
            raise CommandFailed(cmd, None, f"cannot start: {exc}", what=what) from exc
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                await proc.wait()
        except TimeoutError:
            timed_out = True
        finally:
            if proc.returncode is None:
                # Timed out or cancelled: the command and everything it started go.
                await _kill_group(proc)
        out.seek(max(0, os.fstat(out.fileno()).st_size - OUTPUT_LIMIT))
        raw = out.read()
    output = raw.decode("utf-8", "replace")
    duration = time.monotonic() - started
    returncode = proc.returncode
    if timed_out or returncode != 0:
        status = f"timeout after {timeout:g}s" if timed_out else str(returncode)
        logger.error(
            kv(
                f"command.{what}.failed",
                resource=resource,
                cmd=cmd,
                status=status,
                duration_ms=round(duration * 1000, 1),
                output=output.strip(),
            )
        )
        raise CommandFailed(cmd, None if timed_out else returncode, output, what=what)
    assert returncode is not None
    logger.info(
        kv(f"command.{what}.complete", resource=resource, status=0, duration_ms=round(duration * 1000, 1))
    )
    if output.strip():
        logger.debug(kv(f"command.{what}.output", resource=resource, output=output.strip()))
    return CommandResult(cmd, returncode, output, duration)


async def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the command's process group, SIGKILL it after ``KILL_GRACE``; reap the shell.

    A cancellation meanwhile (the daemon stopping during a timed-out command) cuts the grace
    short but neither the SIGKILL nor the reaping: a child never waited for would run on
    and leave its transport open, for the garbage collector to warn about much later.
    """
    try:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(KILL_GRACE):
                await proc.wait()
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        await reap(proc)


async def reap(proc: asyncio.subprocess.Process, limit: float = 10.0) -> None:
    """Wait for ``proc`` (already signalled to die) to exit, through any cancellation.

    A cancellation is re-raised once the child is reaped, which takes a moment after a
    SIGKILL; only a child the kernel cannot kill (stuck in uninterruptible I/O) is given up
    on, after ``limit`` seconds.
    """
    waiter = asyncio.ensure_future(proc.wait())
    deadline = time.monotonic() + limit
    cancelled: asyncio.CancelledError | None = None
    while not waiter.done() and time.monotonic() < deadline:
        try:
            # wait() rather than a timeout: it never cancels the waiter, and it leaves the
            # task's cancellation count alone.
            await asyncio.wait({waiter}, timeout=deadline - time.monotonic())
        except asyncio.CancelledError as exc:
            cancelled = exc
    if not waiter.done():
        waiter.cancel()
        logger.error(kv("command.reap.failed", pid=proc.pid, after=limit))
    if cancelled is not None:
        raise cancelled
