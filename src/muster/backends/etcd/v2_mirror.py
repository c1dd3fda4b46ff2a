"""A live replica of the etcd v2 keys under some prefixes, fed by one long poll per prefix.

Why: a recursive GET costs about 10 µs per key on the server and more to decode (30,000 keys:
~250-600 ms), too slow to repeat after every change; v2 watch events carry the new value, so
a replica seeded from one read stays current for free.

Theory of operation: each prefix is seeded with the values of the last recursive GET of it
and the ``X-Etcd-Index`` that GET answered with, and followed (``etcdv2.follow``) from that
index + 1, so nothing between the read and the watch is lost. Events are applied in index
order: a set/create/update/compareAndSwap stores a leaf's value, a delete/expire/
compareAndDelete removes the key or, for a directory, every key below it; a TTL refresh or a
same-value re-PUT changes nothing. ``latest_change`` is the newest index that changed a
value; a snapshot's revision is ``max(latest_change, seed_revision)`` so a following
``wait_changed`` reports only what the snapshot lacks. A follower error (EventIndexCleared,
a refusal) is kept in ``error``; the owner drops the mirror and the daemon re-reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from muster.backends.base import Snapshot
from muster.backends.changefeed import ChangeFeed
from muster.backends.etcd.v2_client import EtcdV2Client, event_index, follow, is_noop_event
from muster.backends.keys import matches_prefix, normalize_prefix, prefix_filter
from muster.backends.options import BackendOptions

__all__ = ["V2Mirror"]

_REMOVALS = {"delete", "expire", "compareAndDelete"}


class V2Mirror(ChangeFeed):
    """The leaves under ``seeds``' prefixes, kept current by long polls; see the module doc."""

    def __init__(
        self,
        client: EtcdV2Client,
        options: BackendOptions,
        seeds: Mapping[str, tuple[Mapping[str, str], int]],
    ) -> None:
        super().__init__()
        self.client = client
        self.options = options
        self.prefixes = tuple(seeds)
        self.values = {p: dict(values) for p, (values, _) in seeds.items()}
        self.applied = {p: index for p, (_, index) in seeds.items()}
        #: Changes after this index are all reported; the seed reads hold everything before.
        self.seed_revision = min(self.applied.values()) if self.applied else 0
        self.connected = dict.fromkeys(self.prefixes, True)
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        keys = sum(len(v) for v in self.values.values())
        return f"<V2Mirror {list(self.prefixes)} keys={keys} applied={self.applied} error={self.error!r}>"

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(p), name=f"etcd-v2-mirror {p}") for p in self.prefixes
        ]

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def serves(self, prefixes: Sequence[str]) -> bool:
        """True when every key under ``prefixes`` is followed here and every poll is live."""
        if self.error is not None or not all(self.connected.values()):
            return False
        return all(any(matches_prefix(normalize_prefix(p), mine) for mine in self.prefixes) for p in prefixes)

    def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        values: dict[str, str] = {}
        if {normalize_prefix(p) for p in prefixes} == set(self.prefixes):
            for part in self.values.values():
                values.update(part)
        else:
            wanted = prefix_filter(prefixes)
            for part in self.values.values():
                values.update((k, v) for k, v in part.items() if wanted(k))
        return Snapshot(values, max(self.latest_change, self.seed_revision))

    @property
    def first_revision(self) -> int:
        return self.seed_revision

    def all_values(self) -> dict[str, str]:
        if len(self.values) == 1:
            return next(iter(self.values.values()))
        merged: dict[str, str] = {}
        for part in self.values.values():
            merged.update(part)
        return merged

    def value(self, key: str) -> str | None:
        for part in self.values.values():
            if key in part:
                return part[key]
        return None

    @property
    def revision_now(self) -> int:
        return max(self.latest_change, self.seed_revision)

    def _set_connected(self, prefix: str, connected: bool) -> None:
        self.connected[prefix] = connected
        self._reachable(all(self.connected.values()))

    async def _follow(self, prefix: str) -> None:
        try:
            async for event in follow(
                self.client, self.options, prefix, self.applied[prefix] + 1,
                lambda up: self._set_connected(prefix, up),
            ):  # fmt: skip
                self.apply(prefix, event)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: B036 - handed to the waiters, which re-raise it
            self._failed(exc)

    def apply(self, prefix: str, event: Mapping[str, Any]) -> None:
        """Apply one v2 watch event seen under ``prefix``."""
        index = event_index(event)
        if index <= self.applied[prefix]:
            return
        self.applied[prefix] = index
        if is_noop_event(event):
            return
        node = event.get("node") or {}
        key = str(node.get("key", ""))
        values = self.values[prefix]
        if event.get("action") in _REMOVALS:
            if node.get("dir"):
                below = key.rstrip("/") + "/"
                for k in [k for k in values if k.startswith(below)]:
                    del values[k]
                    self._logged(k)
            if values.pop(key, None) is not None:
                self._logged(key)
        elif not node.get("dir"):
            values[key] = str(node.get("value", ""))
            self._logged(key)
        else:
            return  # an empty directory appeared: no value changed
        self._changed(index)
