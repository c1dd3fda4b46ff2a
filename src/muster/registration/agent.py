"""The asyncio driver of the lease machine: performs its register, refresh and revoke requests.

All timing decisions live in ``lease.LeaseMachine``; this module only does the I/O against
any ``Registrar`` (etcd v3 leases, etcd v2 TTLs, ...), bounds each request with a timeout,
maps every failure to a machine event and sleeps until the machine's next deadline or until
health or shutdown wakes it. It never gives up while the store is away: only ``stop()`` (or
cancellation) ends ``run()``, and both deregister first.

A key that vanished behind our back is written again, with the warning
``registration.key.restored``: on the same lease when only the key went (``Restore``), on a
new one when the store reported the lease (or the v2 key and its TTL) gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from muster.backends.base import Lease, Registrar
from muster.errors import ConfigError, Error, LeaseLost
from muster.log import kv
from muster.registration.lease import (
    Backoff,
    Done,
    HealthChanged,
    LeaseGone,
    LeaseMachine,
    Refresh,
    Refreshed,
    RefreshFailed,
    Register,
    Registered,
    RegisterFailed,
    Restore,
    Restored,
    RestoreFailed,
    Revoke,
    Revoked,
    RevokeFailed,
    Stop,
    Wait,
)
from muster.registration.validate import RegistrationSpec

__all__ = ["Agent", "default_op_timeout"]

logger = logging.getLogger(__name__)

# While the store stays down, warn on the first failure and then every Nth, not every retry.
_WARN_EVERY = 30


def default_op_timeout(ttl: float) -> float:
    """A third of the TTL, within 1-5 s: long enough for a failover, short enough to retry."""
    return min(5.0, max(1.0, ttl / 3))


class Agent:
    """Keep ``spec.key`` written with ``spec.value`` through ``registrar`` while wanted.

    ``healthy`` is the initial health (``False`` when checks must pass first); report
    changes with ``set_healthy``. ``run()`` returns after ``stop()`` once the key is
    revoked (True) or revocation was abandoned after ``stop_timeout`` (False). Cancelling
    ``run()`` also deregisters before the cancellation propagates.
    """

    def __init__(
        self,
        registrar: Registrar,
        spec: RegistrationSpec,
        *,
        healthy: bool = True,
        op_timeout: float | None = None,
        stop_timeout: float = 5.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.registrar = registrar
        self.spec = spec
        self.op_timeout = op_timeout if op_timeout is not None else default_op_timeout(spec.ttl)
        self.machine = LeaseMachine(healthy=healthy, stop_timeout=stop_timeout, backoff=backoff)
        # asyncio's loop clock is time.monotonic too, so deadlines and timeouts agree.
        self._clock = clock if clock is not None else time.monotonic
        self._lease: Lease | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._was_registered = False
        self._failures = 0
        self._verify_failures = 0
        self._vanished = False  # the store said our registration is gone; log when it is back

    def __repr__(self) -> str:
        return f"<Agent key={self.spec.key} {self.machine!r}>"

    def _now(self) -> float:
        return self._clock()

    # -- control --------------------------------------------------------------------------

    @property
    def registered(self) -> bool:
        """True while we hold a lease we believe alive (the key is in the store)."""
        return self.machine.is_registered(self._now())

    def set_healthy(self, healthy: bool) -> None:
        """Report the service's health; the key is written or removed accordingly."""
        self.machine.handle(HealthChanged(healthy), self._now())
        self._wake.set()

    def stop(self) -> None:
        """Ask ``run()`` to deregister and return. Idempotent."""
        self.machine.handle(Stop(), self._now())
        self._wake.set()

    async def wait_registered(self) -> None:
        """Return once the key has been written (at once if it is)."""
        while not self.registered:
            await self._wait_changed()

    async def wait_deregistered(self) -> None:
        """Return once no lease is held (the key was revoked, lost or never written)."""
        while self.registered:
            await self._wait_changed()

    async def _wait_changed(self) -> None:
        event = self._changed
        await event.wait()

    def _publish(self) -> None:
        # Registration can also end by the clock (presumed expiry), so compare rather than
        # notify at each event. A fresh Event per change wakes every waiter exactly once.
        registered = self.registered
        if registered != self._was_registered:
            self._was_registered = registered
            self._changed.set()
            self._changed = asyncio.Event()

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> bool:
        """Register, keep alive, react to health; deregister on ``stop()`` or cancellation."""
        try:
            return await self._drive()
        except asyncio.CancelledError:
            # The key must not outlive the service: deregister (bounded by stop_timeout and
            # op_timeout), then let the cancellation go on.
            self.stop()
            await self._drive()
            raise

    async def _drive(self) -> bool:
        while True:
            self._publish()
            action = self.machine.next_action(self._now())
            match action:
                case Register():
                    await self._register()
                case Refresh():
                    await self._refresh()
                case Restore():
                    await self._restore()
                case Revoke():
                    await self._revoke()
                case Wait(until=until):
                    await self._sleep(until)
                case Done(clean=clean):
                    if not clean:
                        logger.warning(
                            kv(
                                "registration.deregister.abandoned",
                                key=self.spec.key,
                                reason="store unreachable; the key expires with its TTL",
                            )
                        )
                    self._publish()
                    return clean

    async def _sleep(self, until: float | None) -> None:
        self._wake.clear()
        if until is None:
            await self._wake.wait()
            return
        delay = until - self._now()
        if delay <= 0:
            return
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _register(self) -> None:
        key = self.spec.key
        logger.debug(kv("registration.register.started", key=key, ttl=self.spec.ttl, value=self.spec.value))
        try:
            async with asyncio.timeout(self.op_timeout):
                lease = await self.registrar.register(key, self.spec.value, self.spec.ttl)
        except asyncio.CancelledError:
            self.machine.handle(RegisterFailed("cancelled"), self._now())
            raise
        except Exception as exc:
            self.machine.handle(RegisterFailed(self._failed("register", exc)), self._now())
            if isinstance(exc, ConfigError):
                raise  # bad TLS files or options: retrying cannot fix them
            return
        self._lease = lease
        self.machine.handle(Registered(lease.ttl), self._now())
        self._recovered()
        logger.info(kv("registration.register.complete", key=key, ttl=lease.ttl))
        if self._vanished:
            self._vanished = False
            logger.warning(kv("registration.key.restored", key=key, lease="new"))

    async def _refresh(self) -> None:
        lease = self._lease
        assert lease is not None
        try:
            async with asyncio.timeout(self.op_timeout):
                ttl = await lease.keepalive()
        except asyncio.CancelledError:
            self.machine.handle(RefreshFailed("cancelled"), self._now())
            raise
        except LeaseLost as exc:
            self._lost(str(exc))
            return
        except Exception as exc:
            self.machine.handle(RefreshFailed(self._failed("keepalive", exc)), self._now())
            return
        if ttl <= 0:
            self._lost(f"keepalive answered TTL {ttl}")
            return
        try:
            intact = await self._verify(lease)
        except asyncio.CancelledError:
            self.machine.handle(Refreshed(ttl), self._now())  # the keepalive did go through
            raise
        self.machine.handle(Refreshed(ttl, key_intact=intact), self._now())
        self._recovered()
        logger.debug(kv("registration.keepalive.complete", key=self.spec.key, ttl=ttl, key_intact=intact))

    async def _verify(self, lease: Lease) -> bool:
        # The lease is refreshed whatever happens here; a check that fails (timeout, a role
        # allowed to write but not to read) assumes the key is there until the next refresh.
        try:
            async with asyncio.timeout(self.op_timeout):
                intact = await lease.verify()
        except Exception as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
            self._verify_failures += 1
            fields = {"key": self.spec.key, "error": reason, "attempt": self._verify_failures}
            if self._verify_failures == 1 or self._verify_failures % _WARN_EVERY == 0:
                logger.warning(kv("registration.verify.failed", **fields, action="checked next refresh"))
            return True
        self._verify_failures = 0
        return intact

    async def _restore(self) -> None:
        lease = self._lease
        assert lease is not None
        try:
            async with asyncio.timeout(self.op_timeout):
                wrote = await lease.restore()
        except asyncio.CancelledError:
            self.machine.handle(RestoreFailed("cancelled"), self._now())
            raise
        except LeaseLost as exc:
            self._lost(str(exc))
            return
        except Exception as exc:
            self.machine.handle(RestoreFailed(self._failed("restore", exc)), self._now())
            return
        self.machine.handle(Restored(), self._now())
        self._recovered()
        if wrote:
            logger.warning(kv("registration.key.restored", key=self.spec.key, lease="same"))
        else:
            logger.info(kv("registration.restore.skipped", key=self.spec.key, reason="written meanwhile"))

    def _lost(self, reason: str) -> None:
        self._lease = None
        self._vanished = self.machine.wanted
        self.machine.handle(LeaseGone(), self._now())
        self._recovered()
        logger.warning(
            kv("registration.lease.lost", key=self.spec.key, reason=reason, action="registering again")
        )

    async def _revoke(self) -> None:
        lease = self._lease
        assert lease is not None
        try:
            async with asyncio.timeout(self.op_timeout):
                await lease.revoke()
        except asyncio.CancelledError:
            self.machine.handle(RevokeFailed("cancelled"), self._now())
            raise
        except LeaseLost:
            pass  # already gone: that is what we wanted
        except Exception as exc:
            self.machine.handle(RevokeFailed(self._failed("deregister", exc)), self._now())
            return
        self._lease = None
        self.machine.handle(Revoked(), self._now())
        self._recovered()
        logger.info(kv("registration.deregister.complete", key=self.spec.key))

    def _failed(self, what: str, exc: BaseException) -> str:
        reason = "timed out" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
        self._failures += 1
        fields = {"key": self.spec.key, "error": reason, "attempt": self._failures}
        if not isinstance(exc, Error | TimeoutError):
            # Not a mapped store error: likely a bug in a backend; keep the traceback.
            logger.error(kv(f"registration.{what}.failed", **fields), exc_info=exc)
        elif self._failures == 1 or self._failures % _WARN_EVERY == 0:
            logger.warning(kv(f"registration.{what}.failed", **fields, action="retrying"))
        else:
            logger.debug(kv(f"registration.{what}.failed", **fields))
        return reason

    def _recovered(self) -> None:
        if self._failures:
            logger.info(kv("registration.store.recovered", key=self.spec.key, failed_attempts=self._failures))
            self._failures = 0
