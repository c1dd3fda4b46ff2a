"""An in-memory backend with etcd-like revisions, watches and compaction, shipped for tests.

It implements the ``Backend`` protocol exactly (hierarchical prefixes: ``/a`` holds ``/a`` and
``/a/...``, not ``/ab``) plus knobs a test needs: writes that bump the revision, multi-key
transactions, ``compact()``, and ``unavailable`` to make every call fail as a dead server would.
``MemoryChangeLog`` adds a change log (``backends.changefeed.ChangeLog``), as the etcd mirrors keep.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence

from muster.backends.base import Snapshot
from muster.backends.changefeed import Changes, Cursor
from muster.backends.options import BackendOptions
from muster.errors import BackendUnavailable, RevisionCompacted

__all__ = ["MemoryBackend", "MemoryChangeLog"]

_serials = itertools.count(1)


def _under(key: str, prefixes: Sequence[str]) -> bool:
    for prefix in prefixes:
        root = prefix.rstrip("/")
        if not root or key == root or key.startswith(root + "/"):
            return True
    return False


class MemoryBackend:
    """A revisioned key/value map. Revision 1 is the empty store; each write adds one.

    ``get_calls`` and ``watch_calls`` count requests so tests can assert on backend traffic.
    """

    def __init__(
        self, values: Mapping[str, str] | None = None, *, options: BackendOptions | None = None
    ) -> None:
        # ``options`` is accepted so ``backends.create("memory")`` works; there is nothing to connect.
        self._values: dict[str, str] = {}
        self._history: list[tuple[int, str]] = []  # (revision, key) of every change
        self.revision = 1
        self.compacted = 0
        self.unavailable = False
        self.closed = False
        self.get_calls = 0
        self.watch_calls = 0
        self._changed = asyncio.Event()
        if values:
            self.put_many(values)

    # -- writes (synchronous, like a client that already got its response) ---------------------

    def put(self, key: str, value: str, *, notify: bool = True) -> int:
        return self.transaction({key: value}, notify=notify)

    def delete(self, *keys: str) -> int:
        return self.transaction({}, delete=keys)

    def put_many(self, values: Mapping[str, str]) -> int:
        """Write every key in one transaction (one revision), as an etcd txn does."""
        return self.transaction(values)

    def transaction(
        self, values: Mapping[str, str], delete: Sequence[str] = (), *, notify: bool = True
    ) -> int:
        """Apply puts and deletes as one revision. ``notify=False`` hides the change from
        watches (a lost event, as in confd's "feign death" reports), so only a re-read sees it.
        """
        touched = [k for k in delete if k in self._values] + list(values)
        if not touched:
            return self.revision
        self.revision += 1
        for key in delete:
            self._values.pop(key, None)
        self._values.update(values)
        if notify:
            self._history.extend((self.revision, key) for key in touched)
        self._changed.set()
        self._changed = asyncio.Event()
        return self.revision

    def compact(self, revision: int | None = None) -> None:
        """Forget history up to ``revision`` (default: now); older watches get RevisionCompacted."""
        self.compacted = self.revision if revision is None else revision
        self._history = [(r, k) for r, k in self._history if r > self.compacted]

    def set_unavailable(self, down: bool) -> None:
        """Make every call raise ``BackendUnavailable`` (``True``) or work again (``False``)."""
        self.unavailable = down
        # Wake watchers so they notice the outage as a real client would (connection reset).
        self._changed.set()
        self._changed = asyncio.Event()

    # -- Backend protocol ---------------------------------------------------------------------

    def _check(self) -> None:
        if self.closed:
            raise BackendUnavailable("memory backend is closed")
        if self.unavailable:
            raise BackendUnavailable("memory backend is unavailable")

    async def get_values(self, prefixes: Sequence[str]) -> Snapshot:
        self._check()
        self.get_calls += 1
        values = {k: v for k, v in self._values.items() if _under(k, prefixes)}
        return Snapshot(values, self.revision)

    async def wait_changed(self, prefixes: Sequence[str], since: int | None) -> int | None:
        self._check()
        self.watch_calls += 1
        since = self.revision if since is None else since
        while True:
            if since < self.compacted:
                raise RevisionCompacted(
                    f"revision {since} is compacted (at {self.compacted})", compact_revision=self.compacted
                )
            newest = max((r for r, k in self._history if r > since and _under(k, prefixes)), default=None)
            if newest is not None:
                return newest
            await self._changed.wait()
            self._check()

    async def aclose(self) -> None:
        self.closed = True
        self._changed.set()

    async def __aenter__(self) -> MemoryBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class MemoryChangeLog(MemoryBackend):
    """A ``MemoryBackend`` that also answers ``changes`` from its history, as a mirror does:
    a write made with ``notify=False`` is missing from the log too (a lost event).

    ``live = False`` makes ``changes`` answer None (no mirror serves the keys); ``reopen()``
    invalidates every cursor (a mirror dropped and opened anew); ``changes_calls`` counts reads.
    """

    def __init__(
        self, values: Mapping[str, str] | None = None, *, options: BackendOptions | None = None
    ) -> None:
        super().__init__(values, options=options)
        self.live = True
        self.changes_calls = 0
        self._serial = next(_serials)

    def reopen(self) -> None:
        self._serial = next(_serials)

    def changes(
        self, prefixes: Sequence[str], cursor: Cursor | None, since: int | None = None
    ) -> Changes | None:
        """The keys under ``prefixes`` changed since ``cursor``, or since revision ``since``
        without one (every key for a stale cursor, or a ``since`` already compacted)."""
        if not self.live or self.closed or self.unavailable:
            return None
        self.changes_calls += 1
        here: Cursor = (self._serial, self.revision)
        if cursor is None and since is not None and since >= self.compacted:
            cursor = (self._serial, since)
        if cursor is None or cursor[0] != self._serial or cursor[1] < self.compacted:
            values = {k: v for k, v in self._values.items() if _under(k, prefixes)}
            return Changes(values, self.revision, here, full=True)
        changed = {k: self._values.get(k) for r, k in self._history if r > cursor[1] and _under(k, prefixes)}
        return Changes(changed, self.revision, here)
