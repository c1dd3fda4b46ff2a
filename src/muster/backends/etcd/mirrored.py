"""What the etcd v3 and v2 backends share: reads and change logs answered by their watch mirrors.

Each backend keeps a few mirrors (a replica of some prefixes, kept by a watch); a read or a
change-log question that a live mirror covers is answered from it, with no request to etcd.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Generic, Protocol, Self, TypeVar

from muster.backends.base import Snapshot
from muster.backends.changefeed import Changes, Cursor

__all__ = ["MirroredBackend"]


class _Mirror(Protocol):
    down_since: float | None

    def serves(self, prefixes: Sequence[str]) -> bool: ...

    def snapshot(self, prefixes: Sequence[str]) -> Snapshot: ...

    def changes(
        self, prefixes: Sequence[str], cursor: Cursor | None, since: int | None = None
    ) -> Changes: ...

    async def aclose(self) -> None: ...


class _Client(Protocol):
    async def aclose(self) -> None: ...


M = TypeVar("M", bound=_Mirror)


class MirroredBackend(Generic[M]):
    """The mirror bookkeeping of an etcd backend; subclasses set ``client`` and ``_mirrors``."""

    client: _Client
    _mirrors: dict[tuple[str, ...], M]
    #: Whether a mirror's replica starts at one revision, so a reader at that revision can
    #: follow its log from the start (etcd v3); v2 reads each prefix at its own index.
    exact_start = True

    async def __aenter__(self) -> Self:
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
        """What changed under ``prefixes`` since ``cursor`` (or revision ``since``, where the
        mirror's start is one revision: ``exact_start``), from a live mirror (``ChangeLog``);
        None when no mirror serves them."""
        mirror = self._serving(prefixes)
        if mirror is None:
            return None
        return mirror.changes(prefixes, cursor, since if self.exact_start else None)

    def _serving(self, prefixes: Sequence[str]) -> M | None:
        """The mirror that answers reads of ``prefixes``, if one does."""
        for mirror in self._mirrors.values():
            if mirror.serves(prefixes):
                return mirror
        return None
