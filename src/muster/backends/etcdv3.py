"""The etcd v3 backend: snapshots at one revision, a resumable watch, and lease registrations.

Theory of operation for ``wait_changed``: one ``/v3/watch`` stream with one watcher over the
smallest range covering every prefix (``keys.covering_range``), starting at ``since + 1``.
The first event under a prefix ends the wait; other events in the range and progress
notifications only advance the resume point. When the stream breaks, or stays
silent past ``watch_probe_interval`` and a status probe of its member fails, the watch is
reopened on the next endpoint from the resume point, retrying with a short capped backoff
while no member answers, so a change written right after an outage is seen at once. A
cancel with ``compact_revision`` raises ``RevisionCompacted``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from muster.backends.base import Snapshot
from muster.backends.etcdv3_client import EtcdV3Client, GatewayError, WatchStream
from muster.backends.keys import KeyRange, covering_range, matches_any, prefix_ranges
from muster.backends.options import BackendOptions
from muster.errors import BackendError, BackendUnavailable, LeaseLost, RevisionCompacted
from muster.log import kv

__all__ = ["EtcdV3Backend", "EtcdV3Lease"]

log = logging.getLogger(__name__)

_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 0.5  # short: after an outage a change must be seen within a second


def _ranges(prefixes: Sequence[str]) -> list[KeyRange]:
    seen: dict[KeyRange, None] = {}
    for prefix in prefixes:
        for r in prefix_ranges(prefix):
            seen.setdefault(r, None)
    return list(seen)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@dataclass(slots=True)
class _WatchState:
    resume: int
    outage_since: float | None = None


class EtcdV3Backend:
    """``Backend`` and ``Registrar`` over etcd's v3 JSON gateway (``muster.backends.base``)."""

    def __init__(self, *, options: BackendOptions | None = None, client: EtcdV3Client | None = None) -> None:
        self.options = options or BackendOptions()
        self.client = client or EtcdV3Client(self.options)

    def __repr__(self) -> str:
        return f"<EtcdV3Backend {self.client!r}>"

    async def __aenter__(self) -> EtcdV3Backend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    async def get_values(self, prefixes: Sequence[str]) -> Snapshot:
        """Every key under ``prefixes``, all read at the revision of the first read."""
        ranges = _ranges(prefixes)
        if not ranges:
            return Snapshot({}, await self.current_revision())
        try:
            raw, revision = await self.client.range_all(ranges)
        except RevisionCompacted:
            # Compacted between two of our reads: start over at the newest revision, once.
            raw, revision = await self.client.range_all(ranges)
        values = {_text(k): _text(v) for k, v in sorted(raw.items())}
        log.debug(kv("etcd.get.complete", keys=len(values), revision=revision))
        return Snapshot(values, revision)

    async def current_revision(self) -> int:
        reply = await self.client.request("/v3/kv/range", {"key": "AA==", "count_only": True, "limit": "1"})
        return int(reply["header"]["revision"])

    async def wait_changed(self, prefixes: Sequence[str], since: int | None) -> int | None:
        """Block until a key under ``prefixes`` changes after ``since``; return that revision.

        ``since=None`` waits for the next change from now. Survives disconnects and member
        loss by resuming on the next endpoint; raises ``RevisionCompacted`` if ``since`` is gone.
        """
        if not prefixes:
            await asyncio.Event().wait()  # nothing to watch: wait until cancelled
        watched = covering_range(_ranges(prefixes))
        if since is None:
            since = await self.current_revision()
        state = _WatchState(resume=since + 1)
        delay = _BACKOFF_FIRST
        failures_in_row = 0
        while True:
            url = self.client.endpoints.current
            try:
                async with self.client.watch(url, watched, state.resume) as stream:
                    return await self._consume(stream, prefixes, state)
            except BackendUnavailable as exc:
                self.client.endpoints.mark_failed(url, exc)
                if state.outage_since is None:
                    state.outage_since = time.monotonic()
                    event = kv("etcd.watch.disconnected", endpoint=url, revision=state.resume - 1, error=exc)
                    log.warning(event)
                failures_in_row += 1
                if failures_in_row >= len(self.client.endpoints.urls):
                    # Every member failed once: back off before the next round.
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _BACKOFF_MAX)
                    failures_in_row = 0
            except GatewayError as exc:
                if not (self.options.username and exc.is_auth_token_error):
                    raise
                await self.client.reauthenticate(url)

    async def _consume(self, stream: WatchStream, prefixes: Sequence[str], state: _WatchState) -> int:
        """Read one stream until a matching event arrives (its revision); raises when it ends."""
        probe = self.options.watch_probe_interval
        while True:
            msg = await stream.receive(idle_timeout=probe)
            if msg is None:
                # Silence: make sure the member is alive and has a leader, else fail over.
                await self.client.status(stream.url, timeout=min(probe, self.options.request_timeout))
                continue
            if msg.canceled:
                if msg.compact_revision:
                    raise RevisionCompacted(
                        f"watch {stream.url}: revision {state.resume} compacted (oldest kept "
                        f"{msg.compact_revision})",
                        compact_revision=msg.compact_revision,
                    )
                raise BackendError(f"watch {stream.url} canceled: {msg.cancel_reason or 'no reason given'}")
            if msg.created:
                if state.outage_since is not None:
                    outage = time.monotonic() - state.outage_since
                    log.info(kv("etcd.watch.resumed", endpoint=stream.url, revision=state.resume - 1,
                                outage=f"{outage:.3f}s"))  # fmt: skip
                    state.outage_since = None
                continue
            matching = [ev.mod_revision for ev in msg.events if matches_any(_text(ev.key), prefixes)]
            if matching:
                return max(matching)
            # Events of one watcher arrive in revision order, and a progress notification
            # means nothing is pending: either way the stream has delivered up to here.
            seen = max((ev.mod_revision for ev in msg.events), default=msg.revision)
            state.resume = max(state.resume, seen + 1)

    # -- Registrar --------------------------------------------------------------------------

    async def register(self, key: str, value: str, ttl: int) -> EtcdV3Lease:
        """Grant a lease of ``ttl`` seconds and write ``key`` bound to it."""
        lease_id, granted = await self.client.lease_grant(ttl)
        try:
            await self.client.put(key.encode(), value.encode(), lease=lease_id)
        except BaseException:
            await asyncio.shield(self._revoke_quietly(lease_id))
            raise
        log.debug(kv("etcd.lease.granted", key=key, lease=f"{lease_id:x}", ttl=granted))
        return EtcdV3Lease(self.client, key, lease_id, granted)

    async def _revoke_quietly(self, lease_id: int) -> None:
        try:
            await self.client.lease_revoke(lease_id)
        except BackendError:
            pass  # it expires on its own after ttl


class EtcdV3Lease:
    """A key bound to an etcd lease (``muster.backends.base.Lease``)."""

    def __init__(self, client: EtcdV3Client, key: str, lease_id: int, ttl: int) -> None:
        self._client = client
        self.key = key
        self.lease_id = lease_id
        self._ttl = ttl

    def __repr__(self) -> str:
        return f"<EtcdV3Lease key={self.key!r} id={self.lease_id:x} ttl={self._ttl}>"

    @property
    def ttl(self) -> int:
        return self._ttl

    async def keepalive(self) -> int:
        """Refresh once; raises ``LeaseLost`` when etcd answers TTL 0 (the lease is gone)."""
        remaining = await self._client.lease_keepalive(self.lease_id)
        if remaining <= 0:
            raise LeaseLost(f"lease {self.lease_id:x} for {self.key} expired or was revoked")
        return remaining

    async def revoke(self) -> None:
        """Revoke the lease, deleting the key; a lease already gone is not an error."""
        await self._client.lease_revoke(self.lease_id)
