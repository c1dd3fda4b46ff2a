"""A live replica of the keys under some prefixes, fed by one long-lived etcd v3 watch stream.

Why: re-reading every key after each change costs the gateway about 50 µs per key (1.4 s for
30,000 keys), and a watch opened with a past ``start_revision`` is served by etcd's catch-up
loop, which runs every 100 ms. A mirror reads once, then applies the watch's events (they
carry the values), so ``wait_changed`` returns as soon as an event lands and ``get_values``
is a dict copy.

Theory of operation: ``open(since)`` reads the prefixes at revision ``since`` (pinned) and
starts a task that watches the smallest range covering them from ``since + 1``. Events of
one watcher arrive in revision order with whole revisions per message, so after applying a
message the replica equals the store at ``revision`` for the watched keys. Progress
notifications advance ``revision`` too. When the stream breaks, or stays silent past
``watch_probe_interval`` and a status probe of its member fails, the task reopens it on the
next endpoint from ``revision + 1`` with a short capped backoff. A compaction or a refusal
ends the task with ``error`` set; the owner then drops the mirror. Under churn the stream is
read at most every ``COALESCE`` (10 ms), so a burst wakes the process once, not per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from muster.backends.base import Snapshot
from muster.backends.changefeed import ChangeFeed
from muster.backends.etcd.v3_client import EtcdV3Client, GatewayError, WatchResponse, WatchStream
from muster.backends.keys import (
    KeyRange,
    covering_range,
    matches_prefix,
    normalize_prefix,
    prefix_filter,
    prefix_ranges,
)
from muster.backends.options import BackendOptions
from muster.backoff import Backoff
from muster.errors import BackendError, BackendUnavailable, RevisionCompacted
from muster.log import kv

__all__ = ["Mirror", "text", "unique_ranges"]

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.05
BACKOFF_MAX = 0.5  # short: after an outage a change must be seen within a second
RACE_TIMEOUT = 0.5  # how long a reconnect waits for any member's status (see _find_member)
#: Under churn (a message within this of the last), read the stream again only this much
#: later: the messages meanwhile cost one wakeup, not one each (see ``_consume``).
COALESCE = 0.01


def unique_ranges(prefixes: Sequence[str]) -> list[KeyRange]:
    seen: dict[KeyRange, None] = {}
    for prefix in prefixes:
        for r in prefix_ranges(prefix):
            seen.setdefault(r, None)
    return list(seen)


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class Mirror(ChangeFeed):
    """The keys under ``prefixes``, kept current by a background watch; see the module doc."""

    exact_start = True  # read at start_revision, pinned: every later change is in the log

    def __init__(self, client: EtcdV3Client, options: BackendOptions, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.client = client
        self.options = options
        self.prefixes = prefixes
        self.watched = covering_range(unique_ranges(prefixes))
        self._matches = prefix_filter(prefixes)
        self.values: dict[str, str] = {}
        #: The replica equals the store at this revision (for the watched keys).
        self.revision = 0
        #: Changes after this revision are all reported; earlier ones may not be.
        self.start_revision = 0
        self.connected = False
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = "failed" if self.error else "connected" if self.connected else "connecting"
        return f"<Mirror {list(self.prefixes)} keys={len(self.values)} revision={self.revision} {state}>"

    @classmethod
    async def open(
        cls, client: EtcdV3Client, options: BackendOptions, prefixes: tuple[str, ...], since: int,
        seed: Snapshot | None = None,
    ) -> Mirror:  # fmt: skip
        """Read ``prefixes`` at ``since`` (or take ``seed`` if it is that read) and start watching.

        Raises ``RevisionCompacted`` if ``since`` is gone, ``BackendUnavailable`` if no member answers.
        """
        mirror = cls(client, options, prefixes)
        if seed is not None and seed.revision == since:
            mirror.values = dict(seed.values)
        else:
            raw, _ = await client.range_all(unique_ranges(prefixes), revision=since)
            mirror.values = {text(k): text(v) for k, v in raw.items()}
        mirror.revision = mirror.start_revision = since
        mirror._task = asyncio.create_task(mirror._run(), name=f"etcd-mirror {','.join(prefixes)}")
        return mirror

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    def serves(self, prefixes: Sequence[str]) -> bool:
        """True when every key under ``prefixes`` is watched here and the replica is live."""
        if self.error is not None or not self.connected:
            return False
        return all(any(matches_prefix(normalize_prefix(p), mine) for mine in self.prefixes) for p in prefixes)

    def snapshot(self, prefixes: Sequence[str]) -> Snapshot:
        """The replica's keys under ``prefixes`` at ``revision`` (a copy, in no particular order)."""
        if {normalize_prefix(p) for p in prefixes} == set(self.prefixes):
            return Snapshot(dict(self.values), self.revision)
        wanted = prefix_filter(prefixes)
        return Snapshot({k: v for k, v in self.values.items() if wanted(k)}, self.revision)

    @property
    def first_revision(self) -> int:
        return self.start_revision

    def all_values(self) -> dict[str, str]:
        return self.values

    def value(self, key: str) -> str | None:
        return self.values.get(key)

    @property
    def revision_now(self) -> int:
        return self.revision

    async def _run(self) -> None:
        try:
            await self._follow()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: B036 - handed to the waiters, which re-raise it
            self.connected = False
            self._failed(exc)

    async def _follow(self) -> None:
        backoff, failures_in_row = Backoff(BACKOFF_FIRST, BACKOFF_MAX, jitter=False), 0
        outage_since: float | None = None
        while True:
            url = self.client.endpoints.current
            try:
                async with self.client.watch(url, self.watched, self.revision + 1) as stream:
                    await self._consume(stream, outage_since)
            except BackendUnavailable as exc:
                self.connected = False
                self._reachable(False)
                self.client.endpoints.mark_failed(url, exc)
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.warning(
                        kv("etcd.watch.disconnected", endpoint=url, revision=self.revision, error=exc)
                    )
                failures_in_row += 1
                if failures_in_row > len(self.client.endpoints.urls):
                    # Members answer but the watch keeps failing: do not spin on it.
                    await asyncio.sleep(backoff.next())
                await self._await_member(backoff)
                continue
            except GatewayError as exc:
                if not (self.options.username and exc.is_auth_token_error):
                    raise
                await self.client.reauthenticate(url)
                continue
            outage_since, failures_in_row = None, 0
            backoff.reset()

    async def _await_member(self, backoff: Backoff) -> None:
        """Race every member's status until one with a leader answers, then return.

        Only the cheap status race repeats while nothing answers, never the watch itself: a
        watch started inside a partition waits out its whole dial timeout (a lost SYN is
        sent again only after 1 s), so a heal was noticed up to 1.5 s late; a race started
        inside it gives up after ``RACE_TIMEOUT`` and the next one finds the healed member.
        """
        while True:
            raced = time.monotonic()
            if await self._find_member():
                return
            # Count the race's own wait, so a healed partition is found within about
            # RACE_TIMEOUT, not twice that.
            await asyncio.sleep(max(0.0, backoff.next() - (time.monotonic() - raced)))

    async def _find_member(self) -> bool:
        """Ask every member's status at once and move to the first that answers (it has a
        leader); False if none does within ``RACE_TIMEOUT``.

        Trying members in turn cost a full connect timeout for each one cut off: a watch
        that lost its member while quorum was gone came back up to 1.5 s after quorum did.
        """
        urls = self.client.endpoints.urls
        asks = {asyncio.ensure_future(self.client.status(url, timeout=RACE_TIMEOUT)): url for url in urls}
        pending = set(asks)
        deadline = asyncio.get_running_loop().time() + RACE_TIMEOUT
        try:
            while pending:
                left = deadline - asyncio.get_running_loop().time()
                done, pending = await asyncio.wait(
                    pending, timeout=max(left, 0), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    return False
                for fut in done:
                    if not fut.cancelled() and fut.exception() is None:
                        self.client.endpoints.mark_good(asks[fut])
                        return True
            return False
        finally:
            for fut in pending:
                fut.cancel()
            await asyncio.gather(*asks, return_exceptions=True)

    async def _consume(self, stream: WatchStream, outage_since: float | None) -> None:
        """Apply the stream's messages until it breaks.

        A message is applied as soon as it is read. Under churn (a message within
        ``COALESCE`` of the one before) the stream is then left unread for ``COALESCE``: at
        500 changes/s each message woke the daemon on its own, and with 30 daemons sharing
        two cores those wakeups were most of each daemon's CPU. A lone change is never held;
        one in a burst at most ``COALESCE`` (10 ms).
        """
        probe = self.options.watch_probe_interval
        loop = asyncio.get_running_loop()
        last = -COALESCE
        while True:
            msg = await stream.receive(idle_timeout=probe)
            if msg is None:
                # Silence: make sure the member is alive and has a leader, else fail over.
                await self.client.status(stream.url, timeout=min(probe, self.options.request_timeout))
                continue
            if msg.canceled:
                if msg.compact_revision:
                    raise RevisionCompacted(
                        f"watch {stream.url}: revision {self.revision + 1} compacted (oldest kept "
                        f"{msg.compact_revision})",
                        compact_revision=msg.compact_revision,
                    )
                raise BackendError(f"watch {stream.url} canceled: {msg.cancel_reason or 'no reason given'}")
            if msg.created:
                self.connected = True
                self._reachable(True)
                if outage_since is not None:
                    outage = f"{time.monotonic() - outage_since:.3f}s"
                    log.info(
                        kv("etcd.watch.resumed", endpoint=stream.url, revision=self.revision, outage=outage)
                    )
                    outage_since = None
                continue
            self._apply(msg)
            now = loop.time()
            if now - last < COALESCE and not stream.pending:
                await stream.hold(COALESCE)
            last = now

    def _apply(self, msg: WatchResponse) -> None:
        changed = 0
        for ev in msg.events:
            if ev.mod_revision <= self.revision:
                continue  # replayed after a reconnect
            key = text(ev.key)
            if not self._matches(key):
                continue  # inside the covering range, outside the prefixes
            if ev.type == "DELETE":
                self.values.pop(key, None)
            else:
                self.values[key] = text(ev.value)
            self._logged(key)
            changed = ev.mod_revision
        # Events of one watcher come in revision order, whole revisions per message, and a
        # progress notification means nothing is pending: the replica is now at this revision.
        seen = max((ev.mod_revision for ev in msg.events), default=msg.revision)
        self.revision = max(self.revision, seen)
        if changed:
            if log.isEnabledFor(logging.DEBUG):  # once per watch message: build no line unread
                log.debug(kv("etcd.watch.changed", revision=changed, keys=len(self.values)))
            self._changed(changed)
