"""Feed the data plane from registry snapshots: the daemon calls ``apply`` on each change.

Membership is read with the same validation as the stock template (``muster.services``),
so both data planes accept exactly the same entries. ``run`` watches nginx rather than
the registry: every ``verify_interval`` it reads back the generation token nginx holds,
and pushes everything again when nginx was restarted (its shared dict starts empty).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Protocol

from muster.dataplane.admin import AdminError
from muster.dataplane.peers import Peer
from muster.dataplane.pusher import resolve_peers
from muster.log import kv
from muster.services import DEFAULT_ROOT, RejectLog, index_services

__all__ = ["MembershipSink", "Plane", "membership"]

log = logging.getLogger(__name__)


def membership(values: Mapping[str, str], root: str = DEFAULT_ROOT) -> dict[str, list[tuple[str, int, int]]]:
    """``{service: [(host, port, weight), ...]}`` of the valid entries under ``root``, and
    the rejected ones logged once (shared with the template functions' log)."""
    root = root.rstrip("/")
    prefix = root + "/"
    # Service names are the directories under root (lsdir): keys below ROOT/NAME/.
    rests = (k[len(prefix) :] for k in values if k.startswith(prefix))
    names = {rest.split("/", 1)[0] for rest in rests if "/" in rest}
    index = index_services(values.items(), names, root)
    _REJECTS.report(index.rejected, root)
    return {name: [(s.Host, s.Port, s.Weight) for s in servers] for name, servers in index.services.items()}


_REJECTS = RejectLog()


_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}\Z")


def _is_ip(host: str) -> bool:
    # services.py admits only IP addresses and DNS names, and no DNS name holds a colon.
    return ":" in host or _IPV4.match(host) is not None


class _Closable(Protocol):
    async def aclose(self) -> None: ...


class Plane(Protocol):
    """A data plane: nginx's ``DataPlane`` or ``HAProxyDataPlane``."""

    @property
    def admin(self) -> _Closable: ...

    async def apply(self, desired: Mapping[str, Iterable[Peer]], *, verify: bool = False) -> int: ...


class MembershipSink:
    """Pushes each service's servers under ``root`` to nginx through ``plane``."""

    def __init__(self, plane: Plane, root: str = DEFAULT_ROOT, *, verify_interval: float = 2.0) -> None:
        self.plane = plane
        self.root = root.rstrip("/") or "/"
        self.verify_interval = verify_interval
        self._desired: dict[str, list[Peer]] | None = None
        # Each service's entries and the peers they resolved to at the last apply: with
        # thousands of services a change re-resolves only the services it touched.
        self._resolved: dict[str, tuple[list[tuple[str, int, int]], list[Peer]]] = {}
        self._lock = asyncio.Lock()

    @property
    def prefixes(self) -> tuple[str, ...]:
        return (self.root,)

    async def apply(self, values: Mapping[str, str]) -> None:
        """Make nginx hold the membership in ``values``; ``AdminError`` if it cannot be reached."""
        desired: dict[str, list[Peer]] = {}
        resolved: dict[str, tuple[list[tuple[str, int, int]], list[Peer]]] = {}
        for name, entries in membership(values, self.root).items():
            cached = self._resolved.get(name)
            # Entries naming hosts by DNS are resolved afresh each time: their addresses move.
            if cached is not None and cached[0] == entries and all(_is_ip(h) for h, _, _ in entries):
                peers = cached[1]
            else:
                peers = await resolve_peers(entries)
            desired[name] = peers
            resolved[name] = (entries, peers)
        self._resolved = resolved
        async with self._lock:
            self._desired = desired
            await self.plane.apply(desired)

    async def run(self) -> None:
        """Re-push whenever nginx lost what it was given (a restart); forever, until cancelled."""
        while True:
            await asyncio.sleep(self.verify_interval)
            if self._desired is None:
                continue
            async with self._lock:
                try:
                    await self.plane.apply(self._desired, verify=True)
                except AdminError as exc:
                    log.warning(kv("dataplane.verify.failed", error=exc))

    async def aclose(self) -> None:
        await self.plane.admin.aclose()
