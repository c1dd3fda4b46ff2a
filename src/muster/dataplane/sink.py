"""Feed the data plane from registry snapshots: the daemon calls ``apply`` on each change.

Membership is read with the same validation as the stock template (``muster.registry.index``),
so both data planes accept exactly the same entries. ``run`` watches nginx rather than
the registry: every ``verify_interval`` it reads back the generation token nginx holds,
and pushes everything again when nginx was restarted (its shared dict starts empty). It
also follows DNS: a change pushes only the services it touched, a name with an answer
never makes it wait (``PeerResolver``), and when a name's answer changes later (a slow
name answering at last, an address moving) ``run`` pushes the services using it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Protocol

from muster.dataplane.membership import Entries, MembershipIndex
from muster.dataplane.nginx.admin import AdminError
from muster.dataplane.nginx.pusher import DataPlane
from muster.dataplane.peers import Peer
from muster.dataplane.resolve import PeerResolver
from muster.dataplane.routes import encode_routes
from muster.log import kv
from muster.registry.guard import PanicGuard
from muster.registry.index import DEFAULT_ROOT
from muster.registry.routing import build_table
from muster.registry.schema import is_ip

__all__ = ["MembershipSink", "Plane", "membership"]

log = logging.getLogger(__name__)


def membership(values: Mapping[str, str], root: str = DEFAULT_ROOT) -> dict[str, Entries]:
    """``{service: [(host, port, weight), ...]}`` of the valid entries under ``root``, and
    the rejected ones logged once (shared with the template functions' log)."""
    index = MembershipIndex(root)
    index.update(values)
    return index.services


class _Closable(Protocol):
    async def aclose(self) -> None: ...


class Plane(Protocol):
    """A data plane: nginx's ``DataPlane`` or ``HAProxyDataPlane``."""

    @property
    def admin(self) -> _Closable: ...

    async def apply(
        self,
        desired: Mapping[str, Iterable[Peer]],
        *,
        verify: bool = False,
        only: Collection[str] | None = None,
    ) -> int: ...


class MembershipSink:
    """Pushes each service's servers under ``root`` to nginx through ``plane``."""

    def __init__(self, plane: Plane, root: str = DEFAULT_ROOT, *, verify_interval: float = 2.0) -> None:
        self.plane = plane
        self.root = root.rstrip("/") or "/"
        self.verify_interval = verify_interval
        self._desired: dict[str, list[Peer]] | None = None
        # Only the services a snapshot changed are validated and resolved again.
        self._index = MembershipIndex(self.root)
        self._dns_names: set[str] = set()  # services with servers named by DNS
        self._renamed: set[str] = set()  # DNS names whose answer changed since the last push
        self._rename = asyncio.Event()
        self.resolver = PeerResolver()
        self._lock = asyncio.Lock()
        self._routes_seen = -1  # the index's routes_version the last route table was built from
        #: Called after each verify that found (or made) nginx hold the membership.
        self.on_verified: Callable[[], None] | None = None
        self._unreachable_since: float | None = None  # the last verify's failure, if it failed
        #: Holds mass removals (``muster.registry.guard``); the daemon sets it, None applies every removal.
        self.guard: PanicGuard[tuple[str, int, int]] | None = None

    @property
    def prefixes(self) -> tuple[str, ...]:
        return (self.root,)

    async def apply(self, values: Mapping[str, str]) -> None:
        """Make nginx hold the membership in ``values``; ``AdminError`` if it cannot be reached."""
        await self._publish(self._index.update(values), full=True)

    async def apply_changes(self, changes: Mapping[str, str | None]) -> None:
        """Like ``apply``, given only the keys changed since the last call (None: deleted):
        the cost follows the change, not the registry's size."""
        await self._publish(self._index.apply_changes(changes), full=self._desired is None)

    async def _publish(self, changed: set[str], *, full: bool) -> None:
        routes = self._route_table()
        if self.guard is not None:
            # Mass removals stay routed for the grace period; expired holds come out here too.
            changed = self.guard.update(self._index.services, changed)[1]
        services = self._members
        names = changed & services.keys()
        for name in changed:
            if name in names and not all(is_ip(host) for host, _, _ in services[name]):
                self._dns_names.add(name)
            else:
                self._dns_names.discard(name)
        self.resolver.hold(self._hosts(self._dns_names))
        # Waits only for names never looked up (at most the resolver's timeout); the others
        # push their last answer, and a later answer is pushed by ``run``.
        await self.resolver.addresses(self._hosts(names))
        async with self._lock:
            # Built under the lock from the answers at hand, so a re-push for a name that
            # answered meanwhile is never overwritten with the answer from before.
            # In place: the verify loop and DNS re-pushes take the lock and read it whole.
            desired = self._desired if self._desired is not None else {}
            for name in changed - names:
                desired.pop(name, None)
            desired.update(self.resolver.peers({n: services[n] for n in names}))
            self._desired = desired
            if routes is not None and isinstance(self.plane, DataPlane):
                self.plane.routes = routes
            await self.plane.apply(desired, only=None if full else changed)

    def _route_table(self) -> bytes | None:
        """The encoded route table when the registry's routes or services changed, else None."""
        if not isinstance(self.plane, DataPlane):
            return None  # a plane without routes (HAProxy)
        if self._index.routes_version == self._routes_seen:
            return None
        self._routes_seen = self._index.routes_version
        if not self._index.routes:
            return b""  # no service has a route: nothing to look up per request
        return encode_routes(build_table(self._index.services.keys(), self._index.routes))

    @property
    def _members(self) -> Mapping[str, Entries]:
        """What nginx is to hold: the registry's servers, and those the guard still keeps."""
        return self.guard.published if self.guard is not None else self._index.services

    def _hosts(self, names: Iterable[str]) -> set[str]:
        services = self._members
        return {host for n in names for host, _, _ in services.get(n, ()) if not is_ip(host)}

    async def run(self) -> None:
        """Re-push whenever nginx lost what it was given (a restart), and the services whose
        DNS names answer anew; forever, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._follow_names(), name="muster-dns-follow")
            await self._verify_forever()

    async def _follow_names(self) -> None:
        loop = asyncio.get_running_loop()

        def renamed(host: str) -> None:  # called in a lookup thread
            def note() -> None:
                self._renamed.add(host)
                self._rename.set()

            with contextlib.suppress(RuntimeError):  # the loop closed: nobody left to tell
                loop.call_soon_threadsafe(note)

        unsubscribe = self.resolver.subscribe(renamed)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.verify_interval):
                        await self._rename.wait()
                self.resolver.refresh()
                if self._rename.is_set():
                    self._rename.clear()
                    hosts, self._renamed = self._renamed, set()
                    await self._push_renamed(hosts)
        finally:
            unsubscribe()

    async def _push_renamed(self, hosts: set[str]) -> None:
        services = self._members
        names = {n for n in self._dns_names if any(h in hosts for h, _, _ in services.get(n, ()))}
        if not names or self._desired is None:
            return
        async with self._lock:
            desired = dict(self._desired)
            desired.update(self.resolver.peers({n: services[n] for n in names if n in services}))
            self._desired = desired
            try:
                await self.plane.apply(desired)
            except AdminError as exc:  # the verify loop pushes self._desired again
                log.warning(
                    kv("dataplane.push.failed", services=len(names), error=exc, retry="at the next verify")
                )

    async def _verify_forever(self) -> None:
        while True:
            await asyncio.sleep(self.verify_interval)
            if self._desired is None:
                continue
            try:
                async with self._lock:
                    await self.plane.apply(self._desired, verify=True)
            except AdminError as exc:
                if self._unreachable_since is None:
                    self._unreachable_since = time.monotonic()
                    log.warning(kv("dataplane.verify.failed", error=exc))
                else:
                    log.debug(kv("dataplane.verify.failed", error=exc))
            else:
                if self._unreachable_since is not None:
                    log.info(kv("dataplane.verify.recovered"))
                self._unreachable_since = None
                if self.on_verified is not None:
                    self.on_verified()

    def problem(self) -> str | None:
        """Why nginx may not hold what the registry says, as of the last verify; None if it does."""
        if self._unreachable_since is not None:
            down = time.monotonic() - self._unreachable_since
            return f"nginx's admin endpoint has not answered for {down:.0f} s (nginx stopped?)"
        if getattr(self.plane, "master_alive", None) is False:
            return "nginx's master process is gone: its workers serve on, but nginx cannot reload or restart"
        drifted: list[str] = getattr(self.plane, "last_drift", [])
        if drifted:
            names = ",".join(drifted[:5])
            return f"{len(drifted)} service(s) changed behind muster's back, pushed again: {names}"
        return None

    async def aclose(self) -> None:
        await self.plane.admin.aclose()
