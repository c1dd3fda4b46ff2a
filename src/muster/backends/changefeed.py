"""What a watch mirror tells its readers: the newest change, its error, and a log of the keys changed.

The log lets a reader that keeps state derived from the keys (the daemon's membership index
and data plane push) work on what changed rather than copying and diffing every key per
change: ``changes(prefixes, cursor)`` returns the values now of the keys changed since the
reader's cursor, and a new cursor. A cursor is a position in one mirror's log; a reader
whose cursor is from another mirror (it was dropped and reopened), or so far behind that
the log was trimmed past it, gets every key instead (``Changes.full``), as on its first read.
A reader with no cursor yet whose keys stand at the very revision a mirror started from
(``since``: it read them with ``get_values`` just before the mirror opened, as the daemon
does) is answered from the start of the log where the mirror says its start is exact.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from muster.backends.keys import normalize_prefix, prefix_filter

__all__ = ["ChangeFeed", "ChangeLog", "Changes", "Cursor", "LOG_MAX"]

#: Changed keys a mirror remembers; a reader further behind reads every key again.
LOG_MAX: Final = 65_536

#: An opaque position in one mirror's log: (the mirror's serial number, entries logged).
Cursor = tuple[int, int]

_serials = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Changes:
    """The keys under some prefixes that changed since a cursor, with their values now.

    ``values`` maps each changed key to its value, or None when it was deleted; with
    ``full`` it holds every key instead (no deletions), replacing whatever the reader had.
    ``revision`` is the store revision the reader's keys then stand at, ``cursor`` where
    its next read starts.
    """

    values: Mapping[str, str | None]
    revision: int
    cursor: Cursor
    full: bool = False


@runtime_checkable
class ChangeLog(Protocol):
    """A backend that can say what changed since a reader's cursor (etcd v3 and v2)."""

    def changes(
        self, prefixes: Sequence[str], cursor: Cursor | None, since: int | None = None
    ) -> Changes | None:
        """What changed under ``prefixes`` since ``cursor`` (every key when ``cursor`` is
        None or no longer valid, unless the reader's keys stand at revision ``since`` and
        the log covers everything after it); None when no live mirror serves ``prefixes``,
        so the reader must use ``get_values``. Synchronous: the answer is one consistent state."""
        ...


class ChangeFeed:
    """``latest_change`` and ``error``, with waiters woken by ``_changed``/``_failed``, and
    the log of changed keys (``_logged``) behind ``changes``.

    Subclasses say from which revision on they report every change (``first_revision``):
    a caller asking about anything earlier must re-read instead. They provide ``prefixes``,
    ``all_values`` and ``revision_now`` for ``changes``.
    """

    prefixes: tuple[str, ...]
    #: The keys at ``first_revision`` are exactly the store's then (no later write mixed in),
    #: so a reader at that revision can start from the log's first entry (see ``changes``).
    exact_start = False

    def __init__(self) -> None:
        #: The newest revision that changed a watched key.
        self.latest_change = 0
        self.error: BaseException | None = None
        #: ``time.monotonic()`` when the follower lost the store, None while in touch.
        self.down_since: float | None = None
        self._wakeup = asyncio.Event()
        self._serial = next(_serials)
        self._log: deque[str] = deque()
        self._log_start = 0  # the position of the log's first entry

    @property
    def first_revision(self) -> int:
        raise NotImplementedError

    def all_values(self) -> Mapping[str, str]:
        """Every key the mirror holds (read only, live)."""
        raise NotImplementedError

    def value(self, key: str) -> str | None:
        raise NotImplementedError

    @property
    def revision_now(self) -> int:
        """The revision the mirror's keys stand at."""
        raise NotImplementedError

    async def wait_changed(self, since: int) -> int:
        """The newest change after ``since`` (at once if one is known); raises the follower's error."""
        if since < self.first_revision:
            raise ValueError(f"mirror starts at {self.first_revision}, cannot report changes after {since}")
        while True:
            wakeup = self._wakeup
            if self.latest_change > since:
                return self.latest_change
            if self.error is not None:
                raise self.error
            await wakeup.wait()

    def changes(self, prefixes: Sequence[str], cursor: Cursor | None, since: int | None = None) -> Changes:
        """The keys under ``prefixes`` changed since ``cursor`` (see the module doc)."""
        end = self._log_start + len(self._log)
        here: Cursor = (self._serial, end)
        wanted = self._filter(prefixes)
        if cursor is None and since is not None and self._starts_at(since):
            cursor = (self._serial, 0)
        if cursor is None or cursor[0] != self._serial or not self._log_start <= cursor[1] <= end:
            everything = self.all_values()
            values = (
                dict(everything) if wanted is None else {k: v for k, v in everything.items() if wanted(k)}
            )
            return Changes(values, self.revision_now, here, full=True)
        changed: dict[str, str | None] = {}
        for key in itertools.islice(reversed(self._log), end - cursor[1]):  # the newest entries
            if key not in changed and (wanted is None or wanted(key)):
                changed[key] = self.value(key)
        return Changes(changed, self.revision_now, here)

    def _starts_at(self, revision: int) -> bool:
        return self.exact_start and revision == self.first_revision and self._log_start == 0

    def _filter(self, prefixes: Sequence[str]) -> Callable[[str], bool] | None:
        if {normalize_prefix(p) for p in prefixes} == set(self.prefixes):
            return None
        return prefix_filter(prefixes)

    def _logged(self, key: str) -> None:
        self._log.append(key)
        if len(self._log) > LOG_MAX:
            self._log.popleft()
            self._log_start += 1

    def _changed(self, revision: int) -> None:
        self.latest_change = max(self.latest_change, revision)
        self._notify()

    def _reachable(self, up: bool) -> None:
        if up:
            self.down_since = None
        elif self.down_since is None:
            self.down_since = time.monotonic()

    def _failed(self, exc: BaseException) -> None:
        self.error = exc
        self._notify()

    def _notify(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()
