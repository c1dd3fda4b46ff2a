"""Process-level runners for ``muster register``: until a signal, or supervising a child (exec mode).

Exec mode's order of shutdown is the point of it: deregister first, so the load balancer
stops sending new requests; wait ``drain`` seconds for requests in flight; only then
signal the child. If the child dies on its own, its key is removed at once and its exit
status becomes ours (``128 + N`` for death by signal N, as shells report it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from muster.errors import ConfigError
from muster.log import kv
from muster.registration.api import Registration
from muster.resources.commands import reap
from muster.signals import capture_signals

__all__ = ["exit_status", "serve", "supervise"]

logger = logging.getLogger(__name__)

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child if muster dies (even by SIGKILL).

    Otherwise a killed muster leaves its service running unregistered, holding its port
    against the restarted one. It runs between fork and exec, before any helper thread
    exists (the child is started first), so ``preexec_fn``'s thread caveat does not apply.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # muster died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def exit_status(returncode: int) -> int:
    """A child's return code as a shell reports it: ``-N`` (killed by signal N) -> ``128 + N``."""
    return 128 - returncode if returncode < 0 else returncode


async def serve(registration: Registration) -> int:
    """Keep the registration until SIGTERM or SIGINT, then deregister; returns the exit status 0."""
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()

    with capture_signals(dict.fromkeys(SHUTDOWN_SIGNALS, on_signal)):
        async with registration:
            await stop.wait()
            logger.info(
                kv(
                    "registration.shutdown",
                    signal=signal.Signals(received[0]).name,
                    key=registration.spec.key,
                )
            )
    return 0


async def supervise(
    registration: Registration,
    argv: Sequence[str],
    *,
    drain: float = 2.0,
    kill_timeout: float = 10.0,
) -> int:
    """Run ``argv`` as a child, registered while healthy; returns the status to exit with.

    SIGTERM/SIGINT: deregister, wait ``drain`` seconds (a second signal cuts it short),
    send the same signal to the child, SIGKILL it after ``kill_timeout``. Returns 0 when
    the child then exits 0 or by that signal, else its status. SIGHUP, SIGUSR1 and SIGUSR2
    are forwarded as they come. The child runs in its own process group so that a
    terminal's Ctrl-C reaches muster first and the order above holds. If muster itself is
    killed, Linux sends the child SIGTERM (its key then expires with its TTL).
    """
    shutdown = asyncio.Event()
    hurry = asyncio.Event()
    received: list[int] = []
    proc: asyncio.subprocess.Process | None = None

    def on_signal(signum: int) -> None:
        if signum in SHUTDOWN_SIGNALS:
            if received:
                hurry.set()
            received.append(signum)
            shutdown.set()
        elif proc is not None and proc.returncode is None:
            logger.info(kv("registration.child.signal", signal=signal.Signals(signum).name, pid=proc.pid))
            proc.send_signal(signum)

    with capture_signals(dict.fromkeys(SHUTDOWN_SIGNALS + FORWARDED_SIGNALS, on_signal)):
        proc = await _start_child(argv)
        try:
            was_registered = await _registered_while_running(registration, proc, shutdown, received)
            # Leaving the registration revoked the key: no new requests reach the child now.
            if proc.returncode is not None:
                return exit_status(proc.returncode)
            # Nothing to drain if no balancer ever learned of the child.
            return await _stop_child(proc, received[0], drain if was_registered else 0.0, kill_timeout, hurry)
        finally:
            if proc.returncode is None:  # an error or cancellation above: never leave the child behind
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await reap(proc)  # even if cancelled again, or its transport stays open


async def _start_child(argv: Sequence[str]) -> asyncio.subprocess.Process:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            # A child in a background process group that reads the terminal would be
            # stopped by SIGTTIN, so it gets no terminal stdin.
            stdin=asyncio.subprocess.DEVNULL if sys.stdin.isatty() else None,
            process_group=0,
            preexec_fn=_die_with_parent(os.getpid()),
        )
    except OSError as exc:
        raise ConfigError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from exc
    logger.info(kv("registration.child.started", pid=proc.pid, command=argv[0]))
    return proc


async def _registered_while_running(
    registration: Registration, proc: asyncio.subprocess.Process, shutdown: asyncio.Event, received: list[int]
) -> bool:
    """Keep ``registration`` until the child exits or ``shutdown`` is set (by the signals
    ``received``), then deregister; whether the child was registered at that moment."""
    async with registration:
        child_exit = asyncio.create_task(proc.wait())
        stop_wait = asyncio.create_task(shutdown.wait())
        await asyncio.wait({child_exit, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if proc.returncode is not None:
            logger.warning(
                kv(
                    "registration.child.exited",
                    pid=proc.pid,
                    status=exit_status(proc.returncode),
                    action="deregistering",
                )
            )
        else:
            logger.info(
                kv(
                    "registration.shutdown",
                    signal=signal.Signals(received[0]).name,
                    key=registration.spec.key,
                )
            )
        return registration.registered


async def _stop_child(
    proc: asyncio.subprocess.Process, signum: int, drain: float, kill_timeout: float, hurry: asyncio.Event
) -> int:
    if drain > 0:
        logger.info(kv("registration.drain.started", seconds=drain, pid=proc.pid))
        waits = {asyncio.create_task(proc.wait()), asyncio.create_task(hurry.wait())}
        done, pending = await asyncio.wait(waits, timeout=drain, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if proc.returncode is not None:
            return exit_status(proc.returncode)
    logger.info(kv("registration.child.stopping", pid=proc.pid, signal=signal.Signals(signum).name))
    with contextlib.suppress(ProcessLookupError):
        # The whole group, as a terminal would: a ``sh -c`` wrapper does not pass it on.
        os.killpg(proc.pid, signum)
    try:
        async with asyncio.timeout(kill_timeout):
            await proc.wait()
    except TimeoutError:
        logger.warning(kv("registration.child.kill", pid=proc.pid, after=kill_timeout))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
    returncode = proc.returncode
    assert returncode is not None
    logger.info(kv("registration.child.exited", pid=proc.pid, status=exit_status(returncode)))
    if returncode in (0, -signum, 128 + signum):
        return 0
    return exit_status(returncode)
