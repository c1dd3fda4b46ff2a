"""Keep the membership nginx holds equal to the registry's, pushing only what changed.

Theory of operation: ``apply(desired)`` is called with every service's servers after
each registry change, and sends only the services whose encoded peer list differs from
the last push, so a change costs one request. Whether nginx still holds what it was
given is checked on the first call and then by ``apply(..., verify=True)``, which the
sink runs every couple of seconds (cheaply: nginx counts every put and delete, and while
its count is ours the full list is not read): a generation token other than ours means nginx
started afresh (a restart empties the shared dict; a reload keeps it) or muster itself
restarted, so everything is pushed again and the token written last. Under our token,
each service's MD5 is compared with what was pushed: a list changed, added or removed
behind muster's back (anyone who reached the admin socket) is put back and logged as a
warning, and ``drifted`` counts it. Any failed push forgets what nginx holds, so the
next call pushes everything; a failed read of the state alone does not (nothing was
sent: a restarted nginx shows a new generation at the next read), since a full push of
30,000 services takes nginx about 13 s. ``apply(..., only=names)`` says which services may have
changed: only they are encoded and compared, so with 30,000 services a change costs
what it pushes.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping

from muster.dataplane.nginx.admin import AdminError, AdminState, LuaAdmin
from muster.dataplane.peers import Peer, encode_peers
from muster.log import kv

__all__ = ["DataPlane"]

log = logging.getLogger(__name__)


class DataPlane:
    """Pushes per-service peer lists to nginx through a ``LuaAdmin``."""

    def __init__(self, admin: LuaAdmin) -> None:
        self.admin = admin
        self.generation = uuid.uuid4().hex
        self._pushed: dict[str, bytes] | None = None  # None: unknown what nginx holds
        self._encoded: dict[str, tuple[Iterable[Peer], bytes]] = {}
        self._digests: dict[bytes, str] = {}  # body -> MD5, for the bodies pushed last
        #: Services found changed behind muster's back (and put back), since start.
        self.drifted = 0
        #: The services the last verify found drifted (empty when nginx held what was pushed).
        self.last_drift: list[str] = []
        #: Whether nginx's master was alive at the last read of its state (None: not said).
        self.master_alive: bool | None = None
        #: The route table nginx is to hold (``muster.dataplane.routes``), pushed by ``apply``.
        self.routes = b""
        self._pushed_routes: bytes | None = None  # None: unknown what nginx holds
        #: Told of each push that sent something, or failed: (services, seconds, ok, full).
        #: A failed periodic verify is not told: nginx being down says so once, elsewhere.
        self.on_push: Callable[[int, float, bool, bool], None] | None = None
        self._requests = 0  # puts and deletes sent
        # nginx's count of changes at the last full read, and ours then (see _untouched).
        self._base: tuple[int, int] | None = None

    async def apply(
        self,
        desired: Mapping[str, Iterable[Peer]],
        *,
        verify: bool = False,
        only: Collection[str] | None = None,
    ) -> int:
        """Make nginx hold ``desired``; return how many services were pushed.

        Only services that differ from the last push are sent; with ``only``, the caller
        promises that no other service changed since its last call, and just those are
        looked at. With ``verify`` (the sink's periodic check), or while what nginx holds
        is unknown, nginx's state is read first: a foreign generation means it restarted,
        and everything is pushed again. Raises ``AdminError`` if nginx cannot be reached;
        the next call pushes in full.
        """
        started = time.monotonic()
        if only is not None and self._pushed is not None and not verify:
            try:
                pushed = await self._push_only(desired, only)
                pushed += await self._push_routes()
            except AdminError:
                self._pushed = None
                self._pushed_routes = None
                if self.on_push is not None:
                    self.on_push(0, time.monotonic() - started, False, False)
                raise
            if pushed:
                seconds = time.monotonic() - started
                if self.on_push is not None:
                    self.on_push(pushed, seconds, True, False)
                log.info(
                    kv("dataplane.push.complete", services=pushed, full=False, ms=round(seconds * 1000, 1))
                )
            return pushed
        full = self._pushed is None
        if verify and not full and await self._untouched():
            return 0
        wanted = self._encode(desired)
        # A failed read leaves what was pushed known: only a failed push forgets it.
        state = await self.admin.state() if full or verify else None
        try:
            if state is not None:
                self._note_master(state)
                # The caller holds its lock: no push of ours is in flight at this read.
                self._base = None if state.changes is None else (state.changes, self._requests)
                if not full and state.generation != self.generation:
                    log.info(kv("dataplane.nginx_state_lost", generation=state.generation or "none"))
                    full = True
                if full:
                    # What nginx holds is unknown: push all, and drop what an earlier muster left.
                    self._pushed = dict.fromkeys(state.services.keys() - wanted.keys(), b"")
                else:
                    self._find_drift(state)
                if state.routes_digest != self._digest(self._pushed_routes or b""):
                    self._pushed_routes = None  # lost (restart) or changed behind muster's back
            pushed = await self._push(wanted, full=full)
            pushed += await self._push_routes(full=full)
        except AdminError:
            self._pushed = None
            self._pushed_routes = None
            if self.on_push is not None and not verify:
                self.on_push(0, time.monotonic() - started, False, False)
            raise
        if pushed and self.on_push is not None:
            self.on_push(pushed, time.monotonic() - started, True, full)
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

    async def _push_routes(self, *, full: bool = False) -> int:
        """Send the route table when it changed (or nginx's copy is unknown); 1 if one was sent."""
        if not full and self._pushed_routes == self.routes:
            return 0
        await self.admin.put_routes(self.routes)
        self._requests += 1  # nginx counts a route table put (or delete) as a change
        self._pushed_routes = self.routes
        return 1 if self.routes else 0

    async def _untouched(self) -> bool:
        """Whether nginx holds exactly what we pushed since the last full read, told from
        its count of changes alone: with 30,000 services the full list costs nginx 0.5 s
        and this process 0.1 s of CPU every verify, the count nothing."""
        if self._base is None:
            return False
        summary = await self.admin.summary()
        self._note_master(summary)
        changes, requests = self._base
        if summary.generation != self.generation or summary.changes != changes + self._requests - requests:
            return False  # restarted, or someone else pushed: read everything
        self.last_drift = []
        return True

    def _note_master(self, state: AdminState) -> None:
        if state.master_alive is False and self.master_alive is not False:
            log.warning(kv("dataplane.nginx_master_gone", note="workers serve on; restart nginx"))
        self.master_alive = state.master_alive

    def _find_drift(self, state: AdminState) -> None:
        """Forget the pushes nginx no longer holds as sent, so ``_push`` sends them again."""
        assert self._pushed is not None
        drifted = sorted(
            {n for n, body in self._pushed.items() if state.digests.get(n) != self._digest(body)}
            | (state.services.keys() - self._pushed.keys())
        )
        self.last_drift = drifted
        if not drifted:
            return
        self.drifted += len(drifted)
        log.warning(
            kv(
                "dataplane.verify.drift",
                services=",".join(drifted[:20]) + (",..." if len(drifted) > 20 else ""),
                count=len(drifted),
                note="changed behind muster's back (admin socket); pushing again",
            )
        )
        for name in drifted:
            # b"\0" is never a pushed body: the push sends it again; a foreign name is deleted.
            self._pushed[name] = b"\0"

    def _digest(self, body: bytes) -> str:
        digest = self._digests.get(body)
        if digest is None:
            digest = self._digests[body] = hashlib.md5(body, usedforsecurity=False).hexdigest()
        return digest

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

    async def _push_only(self, desired: Mapping[str, Iterable[Peer]], names: Collection[str]) -> int:
        assert self._pushed is not None
        count = 0
        for name in names:
            peers = desired.get(name)
            if peers is None:
                self._encoded.pop(name, None)
                if self._pushed.pop(name, None) is not None:
                    self._requests += 1
                    await self.admin.delete_service(name)
                    count += 1
                continue
            body = encode_peers(peers)
            self._encoded[name] = (peers, body)
            if self._pushed.get(name) != body:
                # Recorded before the request: if it fails, apply forgets every push anyway.
                self._pushed[name] = body
                self._requests += 1
                await self.admin.put_service(name, body)
                count += 1
        return count

    async def _push(self, wanted: dict[str, bytes], *, full: bool) -> int:
        before = self._pushed or {}
        count = 0
        for name, body in wanted.items():
            if full or before.get(name) != body:
                self._requests += 1
                await self.admin.put_service(name, body)
                count += 1
        for name in before.keys() - wanted.keys():
            self._requests += 1
            await self.admin.delete_service(name)
            count += 1
        if full:
            await self.admin.set_generation(self.generation)
        self._pushed = wanted
        live = set(wanted.values())
        self._digests = {b: d for b, d in self._digests.items() if b in live}
        return count

    def forget(self) -> None:
        """Assume nothing about nginx's state (e.g. after it was restarted)."""
        self._pushed = None
        self._pushed_routes = None
