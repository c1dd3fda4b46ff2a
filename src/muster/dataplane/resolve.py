"""Peers named by DNS, resolved for the data plane: under a deadline, never piling up.

The balancer phase cannot resolve names, so muster pushes addresses. A registry entry
naming its host by DNS is resolved afresh at every push (its addresses move), and a
push must not wait on a dead resolver, whose lookups can hang for tens of seconds:

* every name of a push is looked up at once, and the push waits at most ``timeout``;
* a name has at most one lookup running: a later push waits on the same one, so a
  stuck name holds one thread, not one per push;
* a name whose lookup is late keeps its last answer; one that fails, or that never
  answered, is left out of the push (logged), costing only its own entries.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import re
import socket
from collections.abc import Collection, Iterable, Mapping

from muster.dataplane.peers import Peer
from muster.log import kv
from muster.threads import DaemonThreadExecutor

__all__ = ["PeerResolver", "RESOLVE_TIMEOUT", "is_ip"]

log = logging.getLogger(__name__)

#: Seconds a push waits for the DNS names it holds.
RESOLVE_TIMEOUT = 2.0

_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}\Z")


def is_ip(host: str) -> bool:
    """Whether ``host``, as ``muster.services`` admits hosts, is an address, not a DNS name.

    services.py admits only IP addresses and DNS names, and no DNS name holds a colon.
    """
    return ":" in host or _IPV4.match(host) is not None


def _lookup(host: str) -> list[str] | None:
    """Every address of ``host``, in the resolver's order; None if it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        log.warning(kv("dataplane.resolve.failed", host=host, error=exc))
        return None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PeerResolver:
    """Turns services' ``(host, port, weight)`` entries into peers; one per data plane sink."""

    def __init__(self, timeout: float | None = None, *, threads: int = 32) -> None:
        self.timeout = RESOLVE_TIMEOUT if timeout is None else timeout
        # Daemon threads: a lookup stuck on a dead resolver must not hold up the exit.
        self._executor = DaemonThreadExecutor(threads, "muster-dns")
        self._running: dict[str, concurrent.futures.Future[list[str] | None]] = {}
        self._last: dict[str, list[str]] = {}

    async def resolve(self, services: Mapping[str, Iterable[tuple[str, int, int]]]) -> dict[str, list[Peer]]:
        """Each service's peers, its DNS names resolved; see the module docstring."""
        entries = {name: list(items) for name, items in services.items()}
        names = {host for items in entries.values() for host, _, _ in items if not is_ip(host)}
        found = await self.addresses(names) if names else {}
        return {
            name: [
                Peer(address, port, weight)
                for host, port, weight in items
                for address in ([host] if is_ip(host) else found.get(host, []))
            ]
            for name, items in entries.items()
        }

    async def addresses(self, names: Collection[str]) -> dict[str, list[str]]:
        """The addresses of each name that answered (or answered before, if late now)."""
        waits: dict[str, asyncio.Future[list[str] | None]] = {}
        for name in names:
            running = self._running.get(name)
            if running is None:
                running = self._running[name] = self._executor.submit(_lookup, name)
            waits[name] = asyncio.wrap_future(running)
        if not waits:
            return {}
        # asyncio.wait, not wait_for: a late lookup is left running for the next push.
        await asyncio.wait(waits.values(), timeout=self.timeout)
        found: dict[str, list[str]] = {}
        for name, wait in waits.items():
            if not wait.done():
                last = self._last.get(name)
                log.warning(
                    kv(
                        "dataplane.resolve.late",
                        host=name,
                        waited_s=self.timeout,
                        using="the last answer" if last else "nothing: left out of this push",
                    )
                )
                if last:
                    found[name] = last
                continue
            del self._running[name]
            answer = wait.result()
            if answer:
                found[name] = self._last[name] = answer
            else:
                self._last.pop(name, None)
        return found
