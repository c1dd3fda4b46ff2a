"""The etcd v3 backend: snapshots at one revision, a watch that survives outages, lease registrations.

``wait_changed`` is served by a ``Mirror`` (``etcdv3_mirror``): one long-lived watch stream
per prefix set that keeps a replica of the keys. While a mirror for the prefixes is live,
``get_values`` answers from it: a consistent snapshot that includes every change
``wait_changed`` has reported (a write still in flight on the stream comes with the next
``wait_changed``). Without one, ``get_values`` reads from etcd, all prefixes at one revision.

Limits (etcd 3.4's JSON gateway): with both ``--client-cert-auth`` and RBAC (auth enable) on,
the gateway refuses every request ("CommonName of client sending a request against gateway
will be ignored"): use client certificates or username/password, not both. The gateway also
reads only the first create request of a watch stream, hence one covering range per stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from muster.backends.base import Snapshot
from muster.backends.changefeed import Changes, Cursor
from muster.backends.etcd.v3_client import EtcdV3Client, GatewayError
from muster.backends.etcd.v3_mirror import BACKOFF_FIRST, BACKOFF_MAX, Mirror, text, unique_ranges
from muster.backends.keys import b64decode, b64encode, normalize_prefix
from muster.backends.options import BackendOptions
from muster.backoff import Backoff
from muster.errors import BackendError, BackendUnavailable, LeaseLost, RevisionCompacted
from muster.log import kv

__all__ = ["EtcdV3Backend", "EtcdV3Lease"]

log = logging.getLogger(__name__)

_MAX_MIRRORS = 4  # distinct prefix sets watched at once (the daemon uses one)


def _key(prefixes: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(dict.fromkeys(normalize_prefix(p) for p in prefixes)))


class EtcdV3Backend:
    """``Backend`` and ``Registrar`` over etcd's v3 JSON gateway (``muster.backends.base``)."""

    def __init__(self, *, options: BackendOptions | None = None, client: EtcdV3Client | None = None) -> None:
        self.options = options or BackendOptions()
        self.client = client or EtcdV3Client(self.options)
        self._mirrors: dict[tuple[str, ...], Mirror] = {}
        self._last_read: tuple[tuple[str, ...], Snapshot] | None = None

    def __repr__(self) -> str:
        return f"<EtcdV3Backend {self.client!r} mirrors={list(self._mirrors.values())!r}>"

    async def __aenter__(self) -> EtcdV3Backend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        mirrors, self._mirrors = list(self._mirrors.values()), {}
        for mirror in mirrors:
            await mirror.aclose()
        await self.client.aclose()

    def outage(self) -> float | None:
        """Seconds since the watch lost the store (every member), or None while in touch.

        The watch rides out an outage on its own, so without this a daemon whose etcd is
        gone would look exactly like one whose registry is quiet.
        """
        since = [m.down_since for m in self._mirrors.values() if m.down_since is not None]
        return time.monotonic() - min(since) if since else None

    def changes(
        self, prefixes: Sequence[str], cursor: Cursor | None, since: int | None = None
    ) -> Changes | None:
        """What changed under ``prefixes`` since ``cursor`` (or revision ``since``), from a
        live mirror (``ChangeLog``); None when no mirror serves them."""
        for mirror in self._mirrors.values():
            if mirror.serves(prefixes):
                return mirror.changes(prefixes, cursor, since)
        return None

    async def get_values(self, prefixes: Sequence[str]) -> Snapshot:
        """Every key under ``prefixes`` at one revision (see the module doc for the mirror)."""
        for mirror in self._mirrors.values():
            if mirror.serves(prefixes):
                return mirror.snapshot(prefixes)
        ranges = unique_ranges(prefixes)
        if not ranges:
            return Snapshot({}, await self.current_revision())
        try:
            raw, revision = await self.client.range_all(ranges)
        except RevisionCompacted:
            # Compacted between two of our reads: start over at the newest revision, once.
            raw, revision = await self.client.range_all(ranges)
        values = {text(k): text(v) for k, v in sorted(raw.items())}
        log.debug(kv("etcd.get.complete", keys=len(values), revision=revision))
        snapshot = Snapshot(values, revision)
        self._last_read = (_key(prefixes), snapshot)
        return snapshot

    async def current_revision(self) -> int:
        reply = await self.client.request("/v3/kv/range", {"key": "AA==", "count_only": True, "limit": "1"})
        return int(reply["header"]["revision"])

    async def wait_changed(self, prefixes: Sequence[str], since: int | None) -> int | None:
        """Block until a key under ``prefixes`` changes after ``since``; return that revision.

        ``since=None`` waits for the next change from now. Survives disconnects and member
        loss by resuming on the next endpoint; raises ``RevisionCompacted`` if ``since`` is gone.
        """
        key = _key(prefixes)
        if not key:
            await asyncio.Event().wait()  # nothing to watch: wait until cancelled
        if since is None:
            since = await self.current_revision()
        mirror = self._mirrors.get(key)
        if mirror is None or mirror.error is not None or since < mirror.start_revision:
            if mirror is not None:
                await self._drop(key)
            mirror = await self._open_mirror(key, since)
        try:
            return await mirror.wait_changed(since)
        except BackendError:
            await self._drop(key)  # compacted or refused: the daemon re-reads, then watches anew
            raise

    async def _open_mirror(self, key: tuple[str, ...], since: int) -> Mirror:
        seed = self._last_read[1] if self._last_read and self._last_read[0] == key else None
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX, jitter=False)
        while True:
            try:
                mirror = await Mirror.open(self.client, self.options, key, since, seed)
                break
            except BackendUnavailable as exc:
                delay = backoff.next()
                log.debug(kv("etcd.watch.open.retry", in_s=delay, error=exc))
                await asyncio.sleep(delay)
        if len(self._mirrors) >= _MAX_MIRRORS:
            await self._drop(next(iter(self._mirrors)))
        self._mirrors[key] = mirror
        return mirror

    async def _drop(self, key: tuple[str, ...]) -> None:
        mirror = self._mirrors.pop(key, None)
        if mirror is not None:
            await mirror.aclose()

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
        return EtcdV3Lease(self.client, key, value, lease_id, granted)

    async def _revoke_quietly(self, lease_id: int) -> None:
        try:
            await self.client.lease_revoke(lease_id)
        except BackendError:
            pass  # it expires on its own after ttl


class EtcdV3Lease:
    """A key bound to an etcd lease (``muster.backends.base.Lease``).

    ``verify`` is one linearizable range of the key: a read, so no raft entry, no revision
    and no watch event; etcd batches the leader confirmations of concurrent reads. Only a
    key found missing costs a write: ``restore``, a transaction that puts the key on this
    lease if its ``mod_revision`` is still the one ``verify`` saw (0: absent), so a writer
    that got in between is never overwritten.
    """

    def __init__(self, client: EtcdV3Client, key: str, value: str, lease_id: int, ttl: int) -> None:
        self._client = client
        self.key = key
        self.value = value
        self.lease_id = lease_id
        self._ttl = ttl
        self._seen_revision = 0  # mod_revision of the key at the last verify (0: absent)

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

    async def verify(self) -> bool:
        """Whether the key holds our value on this lease (or belongs to another live lease)."""
        reply = await self._client.request("/v3/kv/range", {"key": b64encode(self.key)})
        kvs = reply.get("kvs") or []
        item = kvs[0] if kvs else {}  # absent: every field at protobuf's zero value
        self._seen_revision = int(item.get("mod_revision", 0))
        holder = int(item.get("lease", 0))
        if holder not in (0, self.lease_id):
            log.debug(
                kv("etcd.lease.key_taken", key=self.key, lease=f"{self.lease_id:x}", holder=f"{holder:x}")
            )
            return True
        return holder == self.lease_id and b64decode(item.get("value")) == self.value.encode()

    async def restore(self) -> bool:
        """Put the key on this lease if it is as ``verify`` saw it; ``LeaseLost`` if the lease is gone."""
        key = b64encode(self.key)
        txn = {
            "compare": [
                {"target": "MOD", "key": key, "mod_revision": str(self._seen_revision), "result": "EQUAL"}
            ],
            "success": [
                {"request_put": {"key": key, "value": b64encode(self.value), "lease": str(self.lease_id)}}
            ],
        }
        try:
            reply = await self._client.request("/v3/kv/txn", txn)
        except GatewayError as exc:
            if exc.is_lease_not_found:
                raise LeaseLost(f"lease {self.lease_id:x} for {self.key} expired or was revoked") from exc
            raise
        # False: written by someone else since verify(); the next refresh looks at it again.
        return bool(reply.get("succeeded", False))

    async def revoke(self) -> None:
        """Revoke the lease, deleting the key; a lease already gone is not an error."""
        await self._client.lease_revoke(self.lease_id)
