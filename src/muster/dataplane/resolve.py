"""Peers named by DNS, resolved for the data plane: never waiting on a name twice.

The balancer phase cannot resolve names, so muster pushes addresses. Names are kept by a
``muster.registry.resolve.HostResolver`` (the template functions' rules, run from asyncio):

* a name with a last good answer never makes a push wait: its answer is pushed, and a
  stale one is looked up again in the background (one lookup per name at a time);
* only a name never looked up before waits, at most ``timeout``, together with the
  other new names of the push; one still running then is left out until it answers;
* a name that fails costs only its own entries, logged once per change of state;
* ``subscribe`` hears of every answer that changed after its push, so the sink pushes
  the services using it again (``MembershipSink``); ``refresh`` keeps held names fresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from muster.dataplane.peers import Peer
from muster.registry.resolve import HostResolver, ResolveEvents
from muster.registry.schema import is_ip
from muster.threads import DaemonThreadExecutor

__all__ = ["PEER_EVENTS", "PeerResolver", "RESOLVE_TIMEOUT"]

#: Seconds a push waits for the DNS names it holds that were never looked up before.
RESOLVE_TIMEOUT = 0.5

#: How the data plane logs a name's changes of state.
PEER_EVENTS = ResolveEvents(
    "dataplane.resolve.failed", "dataplane.resolve.recovered", "dataplane.resolve.late"
)

Entries = Iterable[tuple[str, int, int]]


class PeerResolver:
    """Turns services' ``(host, port, weight)`` entries into peers; one per data plane sink.

    ``lookup`` and ``clock`` are ``HostResolver``'s, injectable for tests.
    """

    def __init__(
        self,
        timeout: float | None = None,
        *,
        threads: int = 32,
        lookup: Callable[[str], Sequence[str]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        # Daemon threads: a lookup stuck on a dead resolver must not hold up the exit.
        self.hosts = HostResolver(
            timeout=RESOLVE_TIMEOUT if timeout is None else timeout,
            executor=DaemonThreadExecutor(threads, "muster-dns"),
            lookup=lookup,
            clock=time.monotonic if clock is None else clock,
            events=PEER_EVENTS,
        )
        self._holding = self.hosts.holding()

    @property
    def timeout(self) -> float:
        return self.hosts.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.hosts.timeout = seconds

    async def resolve(self, services: Mapping[str, Entries]) -> dict[str, list[Peer]]:
        """Each service's peers, its DNS names resolved; see the module docstring."""
        entries = {name: list(items) for name, items in services.items()}
        await self.addresses({host for items in entries.values() for host, _, _ in items if not is_ip(host)})
        return self.peers(entries)

    async def addresses(self, names: Collection[str]) -> dict[str, tuple[str, ...]]:
        """The addresses of each name that has an answer, waiting (``timeout``) for new names only."""
        if not names:
            return {}
        waits = self.hosts.begin(names)
        if waits:
            # asyncio.wait, not wait_for: a late lookup is left running, and answers later.
            await asyncio.wait([asyncio.wrap_future(f) for f in waits.values()], timeout=self.timeout)
        return self.hosts.collect(names, waits)

    def peers(self, services: Mapping[str, Entries]) -> dict[str, list[Peer]]:
        """Each service's peers from the answers at hand: no lookup, no waiting."""
        entries = {name: list(items) for name, items in services.items()}
        found = self.hosts.answers(
            {host for items in entries.values() for host, _, _ in items if not is_ip(host)}
        )
        return {
            name: [
                Peer(address, port, weight)
                for host, port, weight in items
                for address in ((host,) if is_ip(host) else found.get(host, ()))
            ]
            for name, items in entries.items()
        }

    def hold(self, names: Collection[str]) -> None:
        """``names`` are every DNS name the sink pushes now: ``refresh`` keeps them fresh."""
        self.hosts.hold(self._holding, names)

    def refresh(self) -> int:
        """Look up again, in the background, the held names whose answer is stale."""
        return self.hosts.refresh()

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """See ``HostResolver.subscribe``: called from a lookup thread."""
        return self.hosts.subscribe(callback)
