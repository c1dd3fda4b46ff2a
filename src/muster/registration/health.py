"""Health checks for a registration: rise/fall counting (pure) and HTTP, TCP and command checkers.

``RiseFall`` is haproxy's rule: a server becomes healthy after ``rise`` consecutive passing
checks and unhealthy after ``fall`` consecutive failing ones, so one slow answer neither
removes a server nor does one lucky answer add it. It starts unhealthy, so a service is
announced only once it has answered. ``HealthMonitor`` is the thin async loop around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp

from muster.errors import ConfigError
from muster.log import kv
from muster.resources.commands import reap

__all__ = [
    "Check",
    "CheckResult",
    "CommandCheck",
    "HealthMonitor",
    "HttpCheck",
    "RiseFall",
    "TcpCheck",
    "parse_host_port",
]

logger = logging.getLogger(__name__)

_OUTPUT_TAIL = 512  # characters of a failing command's output kept for the log


class RiseFall:
    """Consecutive-result counter; ``observe`` returns the new health when it flips."""

    def __init__(self, rise: int = 2, fall: int = 3, *, healthy: bool = False) -> None:
        if rise < 1 or fall < 1:
            raise ConfigError(f"rise and fall must be at least 1, got rise={rise} fall={fall}")
        self.rise = rise
        self.fall = fall
        self.healthy = healthy
        self.streak = 0  # consecutive results contradicting the current health

    def __repr__(self) -> str:
        return f"<RiseFall healthy={self.healthy} streak={self.streak} rise={self.rise} fall={self.fall}>"

    def observe(self, passed: bool) -> bool | None:
        if passed == self.healthy:
            self.streak = 0
            return None
        self.streak += 1
        if self.streak < (self.rise if passed else self.fall):
            return None
        self.healthy = passed
        self.streak = 0
        return passed


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    detail: str = ""


@runtime_checkable
class Check(Protocol):
    """One probe of the service. It may take long; the monitor applies the timeout."""

    description: str

    async def __call__(self) -> CheckResult: ...


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); raises ``ConfigError``."""
    host, sep, port_text = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"invalid address {text!r}: expected HOST:PORT with a port from 1 to 65535")
    return host, int(port_text)


class TcpCheck:
    """Passes when a TCP connection to ``host:port`` opens."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.description = f"tcp {host}:{port}"

    async def __call__(self) -> CheckResult:
        try:
            _, writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            return CheckResult(False, exc.strerror or str(exc))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return CheckResult(True, "connected")


class HttpCheck:
    """Passes on a 2xx or 3xx answer to ``GET url`` (redirects are not followed).

    Use as an async context manager: it owns one connection pool for all its probes.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"invalid check URL {url!r}: expected http://HOST[:PORT]/PATH")
        self.url = url
        self.description = f"http {url}"
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpCheck:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __call__(self) -> CheckResult:
        if self._session is None:
            # No pooled keep-alive: each probe should see what a new client would see.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        try:
            async with self._session.get(self.url, allow_redirects=False) as response:
                await response.read()
                ok = 200 <= response.status < 400
                return CheckResult(ok, f"status {response.status}")
        except (aiohttp.ClientError, OSError) as exc:
            return CheckResult(False, str(exc) or type(exc).__name__)


class CommandCheck:
    """Passes when the shell command exits 0; on timeout its whole process group is killed."""

    def __init__(self, command: str) -> None:
        if not command.strip():
            raise ConfigError("invalid check command: it is empty")
        self.command = command
        self.description = f"cmd {command!r}"

    async def __call__(self) -> CheckResult:
        # Output goes to an unlinked temp file, not a pipe: a background child that inherits
        # it cannot keep us waiting for EOF (the probe would hang past its timeout's kill).
        with tempfile.TemporaryFile() as out:
            proc = await asyncio.create_subprocess_shell(
                self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,  # its own group, so a timeout kills its children too
            )
            try:
                await proc.wait()
            finally:
                if proc.returncode is None:  # the probe's timeout, or shutdown
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    await reap(proc)  # even if cancelled again: never leave it unreaped
            out.seek(max(0, os.fstat(out.fileno()).st_size - 4 * _OUTPUT_TAIL))
            output = out.read()
        tail = output.decode("utf-8", "replace").strip()[-_OUTPUT_TAIL:]
        status = f"exit {proc.returncode}"
        return CheckResult(proc.returncode == 0, f"{status}: {tail}" if tail else status)


class HealthMonitor:
    """Run ``check`` every ``interval`` seconds and report flips of health to ``on_change``.

    ``run()`` loops until cancelled. A check that exceeds ``timeout`` or raises counts as a
    failure. ``sleep`` and ``clock`` are injectable for tests.
    """

    def __init__(
        self,
        check: Check,
        on_change: Callable[[bool], None],
        *,
        interval: float = 2.0,
        timeout: float = 2.0,
        rise: int = 2,
        fall: int = 3,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0 or timeout <= 0:
            raise ConfigError(f"check interval and timeout must be positive, got {interval} and {timeout}")
        self.check = check
        self.counter = RiseFall(rise, fall)
        self.interval = interval
        self.timeout = timeout
        self._on_change = on_change
        self.probes = 0
        self._sleep = sleep
        self._clock = clock

    @property
    def healthy(self) -> bool:
        return self.counter.healthy

    async def probe(self) -> CheckResult:
        """Run the check once, with the timeout; never raises except on cancellation."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self.check()
        except TimeoutError:
            return CheckResult(False, f"timed out after {self.timeout:g}s")
        except Exception as exc:  # a checker bug must not stop the monitor; it counts as a failure
            logger.exception(kv("registration.health.error", check=self.check.description))
            return CheckResult(False, f"{type(exc).__name__}: {exc}")

    async def step(self) -> bool | None:
        """Probe once and feed the counter; returns the new health when it flipped."""
        result = await self.probe()
        logger.debug(
            kv("registration.health.probe", check=self.check.description, ok=result.ok, detail=result.detail)
        )
        flipped = self.counter.observe(result.ok)
        self.probes += 1
        if self.probes == 1 and not result.ok:
            # Otherwise a service that never comes up would leave nothing at INFO.
            logger.info(kv("registration.health.waiting", check=self.check.description, detail=result.detail))
        if flipped is not None:
            log = logger.info if flipped else logger.warning
            log(
                kv(
                    "registration.health.changed",
                    healthy=flipped,
                    check=self.check.description,
                    detail=result.detail,
                )
            )
            self._on_change(flipped)
        return flipped

    async def run(self) -> None:
        while True:
            started = self._clock()
            await self.step()
            # Start-to-start spacing; a slow check is followed by the next one at once.
            await self._sleep(max(0.0, started + self.interval - self._clock()))
