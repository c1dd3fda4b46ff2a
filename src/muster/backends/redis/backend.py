"""The Redis backend: confd's key layout (strings and hashes), keyspace notifications, EXPIRE leases.

Keys are paths, as confd reads them (``backends/redis/client.go``): a requested key that is
a string is one value; a hash gives one value per field, at ``KEY/FIELD``; anything else is
read as a directory: every string key matching ``KEY/*`` (``SCAN``), whatever its depth.
With ``-separator :`` the path ``/a/b`` is the Redis key ``a:b`` (the leading ``/`` dropped),
and Redis keys read back are turned into paths the other way. A node is ``host:port``,
``host:port/DB``, a unix socket path (``/run/redis.sock``, ``/run/redis.sock/DB``), or a
``redis://``/``rediss://`` URL (TLS); nodes are tried in order, as confd does.

Watch mode subscribes to keyspace notifications (``__keyspace@DB__:PREFIX*``). They are off
in a stock Redis: the backend turns on the classes it needs with ``CONFIG SET`` (adding to
what is set, never removing), and when the server refuses (``CONFIG`` renamed or denied by
an ACL, and not already on) it says so and raises ``WatchUnsupported``, so the daemon falls
back to re-reading every ``-interval``. Redis has no revisions: the backend counts the changes
its watch saw, and a snapshot's revision is that count when the read began. A change made
while no subscription listened (before the first, during an outage) sends no event, so each
(re)subscription re-reads the prefixes and counts a change if they differ from the last
snapshot handed out (a restarted Redis also forgets its ``CONFIG SET``: applied again).
An ``expire`` event is a TTL refresh (``muster register``) and wakes nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence

from muster.backends.base import Snapshot
from muster.backends.changefeed import ChangeFeed
from muster.backends.keys import normalize_prefix
from muster.backends.options import BackendOptions
from muster.backends.redis.client import RedisNodes, glob_escape, mapped
from muster.backends.redis.lease import RedisLease
from muster.backoff import Backoff
from muster.errors import BackendError, WatchUnsupported
from muster.log import kv

__all__ = ["RedisBackend", "RedisLease"]

log = logging.getLogger(__name__)

BACKOFF_FIRST = 0.05
BACKOFF_MAX = 0.5  # a Redis back from a restart is found within half a second
#: Classes of keyspace events the watch needs: K keyspace, g generic (del, rename, ...),
#: $ strings, h hashes, x expired, e evicted.
NEEDED_EVENTS = "Kg$hxe"
_ALL_CLASSES = "g$lshzxetd"  # what the alias "A" stands for
#: Events that change no value (``expire``: a TTL set or refreshed; ``new``: a key created
#: empty, followed by the event that fills it).
QUIET_EVENTS = frozenset({b"expire", b"persist", b"new"})


class RedisBackend:
    """``Backend`` and ``Registrar`` over Redis (``muster.backends.base``); see the module doc."""

    def __init__(self, *, options: BackendOptions | None = None) -> None:
        self.options = options or BackendOptions()
        self.separator = self.options.separator or "/"
        self.nodes = RedisNodes(self.options)
        self._revision = 0
        self._feed: _Follower | None = None
        self._last_read: tuple[tuple[str, ...], dict[str, str]] | None = None

    def __repr__(self) -> str:
        return f"<RedisBackend {self.nodes!r} separator={self.separator!r} watch={self._feed!r}>"

    async def __aenter__(self) -> RedisBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        feed, self._feed = self._feed, None
        if feed is not None:
            await feed.aclose()
        await self.nodes.aclose()

    def outage(self) -> float | None:
        """Seconds since the watch lost Redis, or None while in touch (or not watching)."""
        feed = self._feed
        if feed is None or feed.down_since is None:
            return None
        return time.monotonic() - feed.down_since

    # -- key names --------------------------------------------------------------------------

    def to_redis(self, path: str) -> str:
        """The Redis key of ``path`` (confd's ``transform``)."""
        if self.separator == "/":
            return path
        return path.lstrip("/").replace("/", self.separator)

    def to_path(self, key: str) -> str:
        """The path of Redis key ``key`` (confd's ``clean``)."""
        if not key.startswith("/"):
            key = "/" + key
        return key.replace(self.separator, "/")

    # -- reading ----------------------------------------------------------------------------

    async def get_values(self, prefixes: Sequence[str]) -> Snapshot:
        """Every value under ``prefixes``, read as confd reads them (module doc).

        The revision is the count of changes seen when the read began (so a change during
        the read wakes the next ``wait_changed`` at once). Not one atomic read: Redis has no
        snapshot across ``SCAN`` calls; a change during it is seen by the watch.
        """
        revision = self._revision
        wanted = _key(prefixes)
        values = await self.read(wanted)
        self._last_read = (wanted, values)
        log.debug(kv("redis.get.complete", keys=len(values), revision=revision))
        return Snapshot(values, revision)

    async def read(self, prefixes: tuple[str, ...]) -> dict[str, str]:
        """The values under each of ``prefixes``, sorted by path."""
        values: dict[str, str] = {}
        for prefix in prefixes:
            read = functools.partial(self._read, prefix=prefix)
            values.update(await self.nodes.run(f"read {prefix}", read))
        return dict(sorted(values.items()))

    async def _read(self, client: object, *, prefix: str) -> dict[str, str]:
        from redis.asyncio import Redis  # the redis extra, loaded with this backend

        assert isinstance(client, Redis)
        key = self.to_redis(prefix)
        kind = _text(await client.type(key))
        out: dict[str, str] = {}
        if kind == "string":
            value = await client.get(key)
            if value is not None:
                out[prefix] = _text(value)
        elif kind == "hash":
            async for field, value in client.hscan_iter(key, count=1000):
                out[self.to_path(key + "/" + _text(field))] = _text(value)
        else:
            pattern = "*" if prefix == "/" else glob_escape(key) + glob_escape(self.separator) + "*"
            names = [name async for name in client.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(names), 1000):
                chunk = names[start : start + 1000]
                # MGET answers nil for a key that is not a string (a hash below the
                # prefix): confd's GET fails on those and skips them too.
                for name, value in zip(chunk, await client.mget(chunk), strict=True):
                    if value is not None:
                        out[self.to_path(_text(name))] = _text(value)
        return out

    # -- watching ---------------------------------------------------------------------------

    async def wait_changed(self, prefixes: Sequence[str], since: int | None) -> int | None:
        """Block until a key under ``prefixes`` changes after change count ``since``.

        ``since=None`` means from now. A new subscription compares a fresh read with the last
        snapshot (module doc), so nothing between that read and the subscription is lost.
        Raises ``WatchUnsupported`` when keyspace notifications are off and cannot be turned on.
        """
        wanted = _key(prefixes)
        if not wanted:
            await asyncio.Event().wait()  # nothing to watch: wait until cancelled
        if since is None:
            since = self._revision
        feed = self._feed
        if feed is None or feed.prefixes != wanted or feed.error is not None:
            if feed is not None:
                await feed.aclose()
            feed = self._feed = _Follower(self, wanted)
        try:
            revision = await feed.wait_changed(min(since, self._revision))
        except BackendError:
            if self._feed is feed:
                self._feed = None
            await feed.aclose()
            raise
        return revision

    def _bump(self) -> int:
        self._revision += 1
        return self._revision

    # -- Registrar --------------------------------------------------------------------------

    async def register(self, key: str, value: str, ttl: int) -> RedisLease:
        """``SET key value EX ttl``: the key is the lease, kept by ``EXPIRE`` refreshes."""
        lease = RedisLease(self.nodes, self.to_redis(key), value, ttl)
        await lease.write()
        log.debug(kv("redis.lease.granted", key=key, ttl=ttl))
        return lease


class _Follower(ChangeFeed):
    """One keyspace subscription for a prefix set, reconnecting with backoff until closed."""

    def __init__(self, backend: RedisBackend, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.backend = backend
        self.prefixes = prefixes
        self.latest_change = backend._revision
        self._task = asyncio.create_task(self._follow(), name=f"redis-watch {','.join(prefixes)}")

    def __repr__(self) -> str:
        state = "down" if self.down_since is not None else "up"
        return f"<redis watch {list(self.prefixes)!r} {state} changes={self.latest_change}>"

    @property
    def first_revision(self) -> int:
        return 0

    async def aclose(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def _matches(self, key: str) -> bool:
        path = self.backend.to_path(key)
        return any(p == "/" or path == p or path.startswith(p + "/") for p in self.prefixes)

    async def _follow(self) -> None:
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX, jitter=False)
        while True:
            try:
                async with self._subscription() as pubsub:
                    self._reachable(True)
                    backoff.reset()
                    if await self._missed_something():
                        self._changed(self.backend._bump())
                    await self._listen(pubsub)
            except WatchUnsupported as exc:
                log.warning(kv("redis.watch.unsupported", error=exc, fallback="re-read every -interval"))
                self._failed(exc)
                return
            except BackendError as exc:
                if self.down_since is None:
                    log.warning(kv("redis.watch.lost", error=exc, action="reconnecting"))
                self._reachable(False)
            except Exception as exc:  # a bug here must end the wait, not leave it hanging
                log.exception(kv("redis.watch.failed", error=exc))
                self._failed(BackendError(f"redis watch failed: {exc!r}"))
                return
            await asyncio.sleep(backoff.next())

    async def _missed_something(self) -> bool:
        """Whether the keys differ from the last snapshot handed out (True when there is none)."""
        last = self.backend._last_read
        if last is None or last[0] != self.prefixes:
            return True
        return await self.backend.read(self.prefixes) != last[1]

    @contextlib.asynccontextmanager
    async def _subscription(self) -> AsyncIterator[object]:
        nodes = self.backend.nodes
        db = await nodes.run("enable keyspace notifications", _enable_notifications)
        patterns = [
            f"__keyspace@{db}__:" + ("*" if p == "/" else glob_escape(self.backend.to_redis(p)) + "*")
            for p in self.prefixes
        ]
        async with nodes.pubsub() as pubsub:
            with mapped("subscribe"):
                await pubsub.psubscribe(*patterns)
                async with asyncio.timeout(nodes.options.request_timeout):
                    for _ in patterns:  # the confirmations: from here on no event is missed
                        while await pubsub.get_message(timeout=nodes.options.request_timeout) is None:
                            pass
            log.info(kv("redis.watch.subscribed", node=nodes.current, patterns=len(patterns)))
            yield pubsub

    async def _listen(self, pubsub: object) -> None:
        from redis.asyncio.client import PubSub  # the redis extra, loaded with this backend

        assert isinstance(pubsub, PubSub)
        probe = self.backend.options.watch_probe_interval
        silent_since = time.monotonic()
        pinged = False
        while True:
            with mapped("watch"):
                message = await pubsub.get_message(timeout=probe)
            now = time.monotonic()
            if message is None:
                if pinged and now - silent_since > 2 * probe:
                    raise BackendError(f"redis watch: no answer to PING for {2 * probe:.0f}s")
                if not pinged and now - silent_since >= probe:
                    with mapped("watch ping"):
                        await pubsub.ping()
                    pinged = True
                continue
            silent_since, pinged = now, False
            if message.get("type") != "pmessage":
                continue
            channel, event = message["channel"], message["data"]
            key = _text(channel).split(":", 1)[1] if b":" in channel else ""
            if event not in QUIET_EVENTS and self._matches(key):
                self._changed(self.backend._bump())


async def _enable_notifications(client: object) -> int:
    """Make sure keyspace events of ``NEEDED_EVENTS`` are on; return the connection's DB."""
    from redis.asyncio import Redis  # the redis extra, loaded with this backend
    from redis.exceptions import ResponseError  # the redis extra, loaded with this backend

    assert isinstance(client, Redis)
    db = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
    current = ""
    try:
        reply = await client.config_get("notify-keyspace-events")
        current = _text(next(iter(reply.values()), None) or "")
    except ResponseError as exc:
        refused: Exception = exc
    else:
        have = set(current.replace("A", _ALL_CLASSES))
        missing = "".join(c for c in NEEDED_EVENTS if c not in have)
        if not missing:
            return db
        try:
            await client.config_set("notify-keyspace-events", current + missing)
        except ResponseError as exc:
            refused = exc
        else:
            log.info(
                kv("redis.notify.enabled", was=current or '""', now=current + missing, scope="server-wide")
            )
            return db
    raise WatchUnsupported(
        f"keyspace notifications are off (notify-keyspace-events={current!r}) and CONFIG SET was "
        f"refused ({refused}); set notify-keyspace-events to include {NEEDED_EVENTS} in redis.conf"
    )


def _key(prefixes: Sequence[str]) -> tuple[str, ...]:
    # confd strips "/*" from keys; "" and "/" both mean every key.
    return tuple(sorted(dict.fromkeys(normalize_prefix(p.replace("/*", "")) or "/" for p in prefixes)))


def _text(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", "surrogateescape")
