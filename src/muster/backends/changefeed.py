"""What a watch mirror tells its backend's ``wait_changed``: the newest change, or its error."""

from __future__ import annotations

import asyncio
import time

__all__ = ["ChangeFeed"]


class ChangeFeed:
    """``latest_change`` and ``error``, with waiters woken by ``_changed``/``_failed``.

    Subclasses say from which revision on they report every change (``first_revision``):
    a caller asking about anything earlier must re-read instead.
    """

    def __init__(self) -> None:
        #: The newest revision that changed a watched key.
        self.latest_change = 0
        self.error: BaseException | None = None
        #: ``time.monotonic()`` when the follower lost the store, None while in touch.
        self.down_since: float | None = None
        self._wakeup = asyncio.Event()

    @property
    def first_revision(self) -> int:
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
