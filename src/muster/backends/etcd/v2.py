"""The etcd v2 keys API backend (``/v2/keys``), as the seed post's curl workflow writes it.

Theory of operation for ``wait_changed``: one long-poll per prefix,
``?wait=true&recursive=true&waitIndex=N``, where ``N`` is one past the last index seen, never
"from now" (confd 0.16 re-created its watch from now after every render and lost changes).
An event that changes no value (a ``refresh=true`` TTL refresh, or the seed's loop re-PUTting
the same value with a new TTL) only advances ``N``: it costs no render. ``errorCode`` 401
(EventIndexCleared: more than 1000 events went by) raises ``RevisionCompacted`` so the daemon
re-reads. A poll silent for ``watch_probe_interval`` is checked with ``/health`` on its
member; a dead or leaderless member is abandoned for the next endpoint. Once ``wait_changed``
is called with the index of the last ``get_values``, a ``V2Mirror`` (``v2_mirror``)
follows the prefixes and later ``get_values`` calls answer from its replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from muster.backends.base import Snapshot
from muster.backends.etcd.mirrored import MirroredBackend
from muster.backends.etcd.v2_client import (  # the client's names stay importable from here
    COMPARE_FAILED,
    KEY_NOT_FOUND,
    EtcdV2Client,
    V2Error,
    event_index,
    flatten,
    follow,
    is_noop_event,
)
from muster.backends.etcd.v2_mirror import V2Mirror
from muster.backends.keys import normalize_prefix
from muster.backends.options import BackendOptions
from muster.errors import BackendError, LeaseLost
from muster.log import kv

__all__ = [
    "EtcdV2Backend",
    "EtcdV2Client",
    "EtcdV2Lease",
    "V2Error",
    "event_index",
    "flatten",
    "follow",
    "is_noop_event",
]

log = logging.getLogger(__name__)

_MAX_MIRRORS = 4  # distinct prefix sets followed at once (the daemon uses one)


class EtcdV2Backend(MirroredBackend[V2Mirror]):
    """``Backend`` and ``Registrar`` over etcd's v2 keys API (``muster.backends.base``).

    ``Snapshot.revision`` is etcd's ``X-Etcd-Index``. v2 has no read-at-index, so several
    prefixes are read one after the other and the snapshot carries the lowest index seen:
    a change racing the reads is then reported by the next ``wait_changed``.
    """

    client: EtcdV2Client
    exact_start = False  # each prefix is read at its own index

    def __init__(self, *, options: BackendOptions | None = None, client: EtcdV2Client | None = None) -> None:
        self.options = options or BackendOptions()
        self.client = client or EtcdV2Client(self.options)
        self._mirrors: dict[tuple[str, ...], V2Mirror] = {}
        # The trees of the last get_values and the index each was read at: mirror seeds.
        self._last_reads: dict[str, tuple[dict[str, str], int]] = {}

    def __repr__(self) -> str:
        return f"<EtcdV2Backend {self.client!r} mirrors={list(self._mirrors.values())!r}>"

    async def get_values(self, prefixes: Sequence[str]) -> Snapshot:
        """Every leaf under ``prefixes``; from the watch replica while one is live for them."""
        mirror = self._serving(prefixes)
        if mirror is not None:
            return mirror.snapshot(prefixes)
        values: dict[str, str] = {}
        indexes: list[int] = []
        reads: dict[str, tuple[dict[str, str], int]] = {}
        for prefix in dict.fromkeys(normalize_prefix(p) for p in prefixes):
            tree, index = await self.client.get_tree(prefix)
            values.update(tree)
            indexes.append(index)
            reads[prefix] = (tree, index)
        self._last_reads = reads
        if not indexes:
            _, index = await self.client.get_tree("/")
            indexes.append(index)
        log.debug(kv("etcd.v2.get.complete", keys=len(values), index=min(indexes)))
        return Snapshot(dict(sorted(values.items())), min(indexes))

    async def wait_changed(self, prefixes: Sequence[str], since: int | None) -> int | None:
        """Block until a value under ``prefixes`` changes after index ``since``; return its index."""
        unique = list(dict.fromkeys(normalize_prefix(p) for p in prefixes))
        if not unique:
            await asyncio.Event().wait()  # nothing to watch: wait until cancelled
        if since is None:
            since = (await self.get_values(unique)).revision or 0
        mirror = await self._mirror_for(tuple(unique), since)
        if mirror is not None:
            try:
                return await mirror.wait_changed(since)
            except BackendError:
                await self._drop(tuple(unique))  # index cleared or refused: re-read, then anew
                raise
        # No replica can vouch for ``since`` (it predates the last read): poll once from it.
        tasks = [asyncio.create_task(self._watch_prefix(p, since + 1)) for p in unique]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        changed = [t.result() for t in done if t.exception() is None]
        if changed:
            return min(changed)
        error = next(iter(done)).exception()
        assert error is not None
        raise error

    async def _mirror_for(self, key: tuple[str, ...], since: int) -> V2Mirror | None:
        """The replica for ``key`` that reports every change after ``since``, started if need be."""
        mirror = self._mirrors.get(key)
        if mirror is not None and mirror.error is None and since >= mirror.seed_revision:
            return mirror
        if mirror is not None:
            await self._drop(key)
        seeds = {p: self._last_reads[p] for p in key if p in self._last_reads}
        if len(seeds) != len(key) or min(index for _, index in seeds.values()) != since:
            return None
        if len(self._mirrors) >= _MAX_MIRRORS:
            await self._drop(next(iter(self._mirrors)))
        mirror = V2Mirror(self.client, self.options, seeds)
        mirror.start()
        self._mirrors[key] = mirror
        return mirror

    async def _drop(self, key: tuple[str, ...]) -> None:
        mirror = self._mirrors.pop(key, None)
        if mirror is not None:
            await mirror.aclose()

    async def _watch_prefix(self, prefix: str, wait_index: int) -> int:
        """Long-poll ``prefix`` from ``wait_index`` until a real change; resume across outages."""
        async for event in follow(self.client, self.options, prefix, wait_index):
            if not is_noop_event(event):
                return event_index(event)
        raise AssertionError("follow() never ends")  # pragma: no cover

    # -- Registrar --------------------------------------------------------------------------

    async def register(self, key: str, value: str, ttl: int) -> EtcdV2Lease:
        """PUT ``key`` with a TTL, as the seed post's ``curl -d ttl=60`` does."""
        await self.client.put(key, value, ttl=ttl)
        log.debug(kv("etcd.v2.register.complete", key=key, ttl=ttl))
        return EtcdV2Lease(self.client, key, value, ttl)


class EtcdV2Lease:
    """A v2 key kept alive by TTL refreshes (``muster.backends.base.Lease``).

    The TTL lives on the key, so a deleted key takes its "lease" with it: the refresh fails
    with 100 Key not found, ``keepalive`` raises ``LeaseLost`` and the agent writes the key
    afresh at once, one PUT, as a restore would. ``verify`` costs no request: it compares
    the value the refresh answered with (a refresh keeps any value someone else wrote).
    """

    def __init__(self, client: EtcdV2Client, key: str, value: str, ttl: int) -> None:
        self._client = client
        self.key = key
        self.value = value
        self._ttl = ttl
        self._seen: tuple[str | None, int] = (value, 0)  # (value, modifiedIndex) at the last refresh

    def __repr__(self) -> str:
        return f"<EtcdV2Lease key={self.key!r} ttl={self._ttl}>"

    @property
    def ttl(self) -> int:
        return self._ttl

    async def keepalive(self) -> int:
        """``refresh=true&prevExist=true``: no watch event, no render. ``LeaseLost`` if the key is gone."""
        try:
            body = await self._client.put(self.key, ttl=self._ttl, refresh=True, prev_exist=True)
        except V2Error as exc:
            if exc.error_code == KEY_NOT_FOUND:
                raise LeaseLost(f"{self.key} expired or was deleted") from exc
            raise
        node = body.get("node", {})
        self._seen = (node.get("value"), int(node.get("modifiedIndex", 0)))
        return int(node.get("ttl", self._ttl))

    async def verify(self) -> bool:
        """Whether the last refresh found our value (no request)."""
        return self._seen[0] == self.value

    async def restore(self) -> bool:
        """PUT our value with the TTL if the key is as the last refresh saw it."""
        try:
            await self._client.put(self.key, self.value, ttl=self._ttl, prev_index=self._seen[1])
        except V2Error as exc:
            if exc.error_code == KEY_NOT_FOUND:
                raise LeaseLost(f"{self.key} expired or was deleted") from exc
            if exc.error_code == COMPARE_FAILED:
                return False  # written by someone else since the refresh; the next one looks
            raise
        return True

    async def revoke(self) -> None:
        """DELETE the key; one already gone is not an error."""
        await self._client.delete(self.key)
