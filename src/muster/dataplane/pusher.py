"""Keep the membership nginx holds equal to the registry's, pushing only what changed.

Theory of operation: ``apply(desired)`` is called with every service's servers after
each registry change, and sends only the services whose encoded peer list differs from
the last push, so a change costs one request. Whether nginx still holds what it was
given is checked on the first call and then by ``apply(..., verify=True)``, which the
sink runs every couple of seconds: a generation token other than ours means nginx
started afresh (a restart empties the shared dict; a reload keeps it) or muster itself
restarted, so everything is pushed again and the token written last. Any failed push
forgets what nginx holds, so the next call pushes everything.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import socket
import time
import uuid
from collections.abc import Iterable, Mapping

from muster.dataplane.admin import AdminError, LuaAdmin
from muster.dataplane.peers import Peer, encode_peers
from muster.log import kv
from muster.threads import DaemonThreadExecutor

__all__ = ["DataPlane", "RESOLVE_TIMEOUT", "is_ip", "resolve_peers"]

log = logging.getLogger(__name__)


#: Seconds a DNS name gets to resolve before its entry is left out of this push.
RESOLVE_TIMEOUT = 2.0
# Lookups run in daemon threads: one stuck on a dead resolver must not hold up the exit.
_LOOKUPS = DaemonThreadExecutor(8, "muster-dns")


async def resolve_peers(entries: Iterable[tuple[str, int, int]], timeout: float | None = None) -> list[Peer]:
    """Turn ``(host, port, weight)`` into peers, resolving DNS names to every address.

    Names are looked up together under one ``timeout`` (default ``RESOLVE_TIMEOUT``). A
    name that does not resolve in time is logged and left out: like a bad registry
    value, it costs only its own entry, and a dead resolver costs one ``timeout`` per
    push, not a lookup timeout per name.
    """
    entries = list(entries)
    timeout = RESOLVE_TIMEOUT if timeout is None else timeout
    names = sorted({host for host, _, _ in entries if not is_ip(host)})
    found = dict(zip(names, await asyncio.gather(*(_addresses(n, timeout) for n in names)), strict=True))
    peers: list[Peer] = []
    for host, port, weight in entries:
        addresses = found[host] if host in found else [host]
        peers.extend(Peer(address, port, weight) for address in addresses)
    return peers


_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}\Z")


def is_ip(host: str) -> bool:
    """Whether ``host``, as ``muster.services`` admits hosts, is an address, not a DNS name.

    services.py admits only IP addresses and DNS names, and no DNS name holds a colon.
    """
    return ":" in host or _IPV4.match(host) is not None


async def _addresses(host: str, timeout: float) -> list[str]:
    loop = asyncio.get_running_loop()
    lookup = functools.partial(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM)
    try:
        infos = await asyncio.wait_for(loop.run_in_executor(_LOOKUPS, lookup), timeout)
    except (OSError, TimeoutError) as exc:
        log.warning(kv("dataplane.resolve.failed", host=host, error=str(exc) or f"no answer in {timeout:g}s"))
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class DataPlane:
    """Pushes per-service peer lists to nginx through a ``LuaAdmin``."""

    def __init__(self, admin: LuaAdmin) -> None:
        self.admin = admin
        self.generation = uuid.uuid4().hex
        self._pushed: dict[str, bytes] | None = None  # None: unknown what nginx holds
        self._encoded: dict[str, tuple[Iterable[Peer], bytes]] = {}

    async def apply(self, desired: Mapping[str, Iterable[Peer]], *, verify: bool = False) -> int:
        """Make nginx hold ``desired``; return how many services were pushed.

        Only services that differ from the last push are sent. With ``verify`` (the sink's
        periodic check), or while what nginx holds is unknown, nginx's state is read first:
        a foreign generation means it restarted, and everything is pushed again. Raises
        ``AdminError`` if nginx cannot be reached; the next call pushes in full.
        """
        started = time.monotonic()
        wanted = self._encode(desired)
        try:
            full = self._pushed is None
            if full or verify:
                state = await self.admin.state()
                if not full and state.generation != self.generation:
                    log.info(kv("dataplane.nginx_state_lost", generation=state.generation or "none"))
                    full = True
                if full:
                    # What nginx holds is unknown: push all, and drop what an earlier muster left.
                    self._pushed = dict.fromkeys(state.services.keys() - wanted.keys(), b"")
            pushed = await self._push(wanted, full=full)
        except AdminError:
            self._pushed = None
            raise
        if pushed:
            log.info(
                kv(
                    "dataplane.push.complete",
                    services=pushed,
                    full=full,
                    ms=round((time.monotonic() - started) * 1000, 1),
                )
            )
        return pushed

    def _encode(self, desired: Mapping[str, Iterable[Peer]]) -> dict[str, bytes]:
        # The sink passes the same list object for a service it did not touch: with
        # thousands of services, encoding only the new ones keeps a change cheap.
        wanted: dict[str, bytes] = {}
        encoded: dict[str, tuple[Iterable[Peer], bytes]] = {}
        for name, peers in desired.items():
            cached = self._encoded.get(name)
            body = cached[1] if cached is not None and cached[0] is peers else encode_peers(peers)
            wanted[name] = body
            encoded[name] = (peers, body)
        self._encoded = encoded
        return wanted

    async def _push(self, wanted: dict[str, bytes], *, full: bool) -> int:
        before = self._pushed or {}
        count = 0
        for name, body in wanted.items():
            if full or before.get(name) != body:
                await self.admin.put_service(name, body)
                count += 1
        for name in before.keys() - wanted.keys():
            await self.admin.delete_service(name)
            count += 1
        if full:
            await self.admin.set_generation(self.generation)
        self._pushed = wanted
        return count

    def forget(self) -> None:
        """Assume nothing about nginx's state (e.g. after it was restarted)."""
        self._pushed = None
