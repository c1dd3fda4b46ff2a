"""The etcd v2 keys API backend (``/v2/keys``), as the seed post's curl workflow writes it.

Theory of operation for ``wait_changed``: one long-poll per prefix,
``?wait=true&recursive=true&waitIndex=N``, where ``N`` is one past the last index seen, never
"from now" (confd 0.16 re-created its watch from now after every render and lost changes).
An event that changes no value (a ``refresh=true`` TTL refresh, or the seed's loop re-PUTting
the same value with a new TTL) only advances ``N``: it costs no render. ``errorCode`` 401
(EventIndexCleared: more than 1000 events went by) raises ``RevisionCompacted`` so the daemon
re-reads. A poll silent for ``watch_probe_interval`` is checked with ``/health`` on its
member; a dead or leaderless member is abandoned for the next endpoint. Once ``wait_changed``
is called with the index of the last ``get_values``, a ``V2Mirror`` (``etcdv2_mirror``)
follows the prefixes and later ``get_values`` calls answer from its replica.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from muster.backends.base import Snapshot
from muster.backends.changefeed import Changes, Cursor
from muster.backends.keys import normalize_prefix
from muster.backends.options import BackendOptions
from muster.backends.transport import (
    TRANSPORT_ERRORS,
    Endpoints,
    make_session,
    map_exceptions,
    parse_json,
)
from muster.errors import BackendError, BackendUnavailable, LeaseLost, RevisionCompacted
from muster.log import kv

if TYPE_CHECKING:
    from muster.backends.etcdv2_mirror import V2Mirror

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

KEY_NOT_FOUND = 100
COMPARE_FAILED = 101
EVENT_INDEX_CLEARED = 401
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 0.5
_MAX_MIRRORS = 4  # distinct prefix sets followed at once (the daemon uses one)


class V2Error(BackendError):
    """etcd answered with a v2 error body; ``error_code`` is etcd's ``errorCode``."""

    def __init__(self, message: str, *, error_code: int, index: int = 0) -> None:
        self.error_code = error_code
        self.index = index
        super().__init__(message)


def flatten(node: Mapping[str, Any] | None) -> Iterator[tuple[str, str]]:
    """Every leaf ``(key, value)`` below a v2 node, depth first; directories hold no values."""
    if node is None:
        return
    if node.get("dir"):
        for child in node.get("nodes", ()):
            yield from flatten(child)
    elif "key" in node:
        yield node["key"], node.get("value", "")


def is_noop_event(event: Mapping[str, Any]) -> bool:
    """True for events that change no key's value: TTL refreshes and same-value re-PUTs."""
    if event.get("refresh") or event.get("node", {}).get("refresh"):
        return True
    node, prev = event.get("node") or {}, event.get("prevNode")
    if event.get("action") not in ("set", "update", "compareAndSwap") or not prev:
        return False
    return not node.get("dir") and not prev.get("dir") and node.get("value") == prev.get("value")


def _key_path(prefix: str) -> str:
    p = normalize_prefix(prefix)
    return "/v2/keys" + urllib.parse.quote(p if p.startswith("/") else "/" + p, safe="/")


class EtcdV2Client:
    """``/v2/keys`` requests with endpoint failover, TLS and HTTP basic auth."""

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.endpoints = Endpoints(options.endpoints())
        self._session: aiohttp.ClientSession | None = None
        auth = None
        if options.username:
            auth = aiohttp.BasicAuth(options.username, options.password)
        self._auth = auth

    def __repr__(self) -> str:
        return f"<EtcdV2Client {self.endpoints!r}>"

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = make_session(self.options)
        return self._session

    async def request_on(
        self, url: str, method: str, path: str, *, params: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None, timeout: float | None = 0.0,
    ) -> tuple[dict[str, Any], int]:  # fmt: skip
        """One request to one endpoint: ``(body, X-Etcd-Index)``; v2 errors raised as ``V2Error``.

        ``timeout=None`` means none (long polls); ``0.0`` means ``request_timeout``.
        """
        what = f"{method} {path} {url}"
        total = self.options.request_timeout if timeout == 0.0 else timeout
        client_timeout = aiohttp.ClientTimeout(total=total, sock_connect=self.options.dial_timeout)
        with map_exceptions(TRANSPORT_ERRORS, what):
            async with self.session.request(
                method, url + path, params=params, data=form, auth=self._auth, timeout=client_timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
                index = int(resp.headers.get("X-Etcd-Index", 0) or 0)
        if not raw:
            # etcd closes long polls with an empty 200 when it shuts down.
            raise BackendUnavailable(f"{what}: empty reply (HTTP {status})")
        body = parse_json(raw, what)
        if not isinstance(body, dict):
            raise BackendError(f"{what}: unexpected reply {raw[:80]!r}")
        if "errorCode" in body:
            code = int(body["errorCode"])
            message = f"{what}: {body.get('message', '')} ({body.get('cause', '')})"
            if code == EVENT_INDEX_CLEARED:
                raise RevisionCompacted(message, compact_revision=int(body.get("index", 0)) or None)
            if 300 <= code < 400 or status >= 500:  # raft internal / leader election
                raise BackendUnavailable(message)
            raise V2Error(message, error_code=code, index=int(body.get("index", 0) or 0))
        if status >= 500:
            raise BackendUnavailable(f"{what}: HTTP {status}")
        if status >= 400:
            raise BackendError(f"{what}: HTTP {status}: {raw[:200]!r}")
        return body, index

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[dict[str, Any], int]:
        """``request_on`` the current endpoint, failing over on ``BackendUnavailable``."""
        errors: list[str] = []
        for url in self.endpoints.rotation():
            try:
                result = await self.request_on(url, method, path, **kwargs)
            except BackendUnavailable as exc:
                errors.append(str(exc))
                self.endpoints.mark_failed(url, exc)
                continue
            self.endpoints.mark_good(url)
            return result
        raise BackendUnavailable(f"no etcd endpoint answered {method} {path}: " + "; ".join(errors))

    async def get_tree(self, prefix: str) -> tuple[dict[str, str], int]:
        """Leaf values under ``prefix`` (recursive GET) and the store index they were read at."""
        try:
            body, index = await self.request("GET", _key_path(prefix), params={"recursive": "true"})
        except V2Error as exc:
            if exc.error_code == KEY_NOT_FOUND:
                return {}, exc.index
            raise
        return dict(flatten(body.get("node"))), index

    async def put(self, key: str, value: str | None = None, *, ttl: int | None = None,
                  refresh: bool = False, prev_exist: bool | None = None,
                  prev_index: int | None = None) -> dict[str, Any]:  # fmt: skip
        """PUT a key (``value`` omitted for a ``refresh``); returns etcd's reply.

        ``prev_index`` makes it a compare-and-swap on the key's ``modifiedIndex``.
        """
        form: dict[str, str] = {}
        if value is not None:
            form["value"] = value
        if ttl is not None:
            form["ttl"] = str(ttl)
        if refresh:
            form["refresh"] = "true"
        if prev_exist is not None:
            form["prevExist"] = "true" if prev_exist else "false"
        if prev_index is not None:
            form["prevIndex"] = str(prev_index)
        body, _ = await self.request("PUT", _key_path(key), form=form)
        return body

    async def delete(self, key: str) -> bool:
        """DELETE a key; False when it did not exist."""
        try:
            await self.request("DELETE", _key_path(key))
        except V2Error as exc:
            if exc.error_code == KEY_NOT_FOUND:
                return False
            raise
        return True

    async def healthy(self, url: str, timeout: float) -> bool:
        """``GET /health`` on one member: reachable and with a leader."""
        try:
            async with self.session.get(
                url + "/health", timeout=aiohttp.ClientTimeout(total=timeout), auth=self._auth
            ) as resp:
                body = parse_json(await resp.read(), "health")
        except (BackendError, aiohttp.ClientError, TimeoutError, OSError):
            return False
        return isinstance(body, dict) and body.get("health") in ("true", True)


class EtcdV2Backend:
    """``Backend`` and ``Registrar`` over etcd's v2 keys API (``muster.backends.base``).

    ``Snapshot.revision`` is etcd's ``X-Etcd-Index``. v2 has no read-at-index, so several
    prefixes are read one after the other and the snapshot carries the lowest index seen:
    a change racing the reads is then reported by the next ``wait_changed``.
    """

    def __init__(self, *, options: BackendOptions | None = None, client: EtcdV2Client | None = None) -> None:
        self.options = options or BackendOptions()
        self.client = client or EtcdV2Client(self.options)
        self._mirrors: dict[tuple[str, ...], V2Mirror] = {}
        # The trees of the last get_values and the index each was read at: mirror seeds.
        self._last_reads: dict[str, tuple[dict[str, str], int]] = {}

    def __repr__(self) -> str:
        return f"<EtcdV2Backend {self.client!r} mirrors={list(self._mirrors.values())!r}>"

    async def __aenter__(self) -> EtcdV2Backend:
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

    def changes(self, prefixes: Sequence[str], cursor: Cursor | None) -> Changes | None:
        """What changed under ``prefixes`` since ``cursor``, from a live mirror (``ChangeLog``);
        None when no mirror serves them."""
        for mirror in self._mirrors.values():
            if mirror.serves(prefixes):
                return mirror.changes(prefixes, cursor)
        return None

    async def get_values(self, prefixes: Sequence[str]) -> Snapshot:
        """Every leaf under ``prefixes``; from the watch replica while one is live for them."""
        for mirror in self._mirrors.values():
            if mirror.serves(prefixes):
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
        from muster.backends.etcdv2_mirror import V2Mirror  # it builds on this module

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


def event_index(event: Mapping[str, Any]) -> int:
    return int(event.get("node", {}).get("modifiedIndex", 0) or 0)


async def follow(
    client: EtcdV2Client, options: BackendOptions, prefix: str, wait_index: int,
    on_connected: Callable[[bool], None] | None = None,
) -> AsyncIterator[dict[str, Any]]:  # fmt: skip
    """Every event under ``prefix`` from ``wait_index`` on, in index order, across outages.

    Long-polls the current endpoint, failing over with a short capped backoff; each event's
    ``modifiedIndex + 1`` is the next ``waitIndex``. ``on_connected`` hears about outages.
    """
    path = _key_path(prefix)
    params = {"wait": "true", "recursive": "true"}
    delay, failures, outage_since = _BACKOFF_FIRST, 0, None
    while True:
        url = client.endpoints.current
        try:
            event = await _poll(client, options, url, path, {**params, "waitIndex": str(wait_index)})
        except BackendUnavailable as exc:
            client.endpoints.mark_failed(url, exc)
            if on_connected is not None:
                on_connected(False)
            if outage_since is None:
                outage_since = time.monotonic()
                log.warning(kv("etcd.v2.watch.disconnected", endpoint=url, index=wait_index - 1, error=exc))
            failures += 1
            if failures >= len(client.endpoints.urls):
                await asyncio.sleep(delay)
                delay, failures = min(delay * 2, _BACKOFF_MAX), 0
            continue
        if outage_since is not None:
            log.info(kv("etcd.v2.watch.resumed", endpoint=url, index=wait_index - 1,
                        outage=f"{time.monotonic() - outage_since:.3f}s"))  # fmt: skip
            delay, failures, outage_since = _BACKOFF_FIRST, 0, None
        if on_connected is not None:
            on_connected(True)
        index = event_index(event)
        if index < wait_index:
            raise BackendError(f"watch {path}: event index {index} before waitIndex {wait_index}")
        yield event
        wait_index = index + 1


async def _poll(
    client: EtcdV2Client, options: BackendOptions, url: str, path: str, params: Mapping[str, str]
) -> dict[str, Any]:
    """One long poll, probing the member with ``/health`` each time it stays silent."""
    probe = options.watch_probe_interval
    poll = asyncio.ensure_future(client.request_on(url, "GET", path, params=params, timeout=None))
    try:
        while True:
            done, _ = await asyncio.wait({poll}, timeout=probe)
            if done:
                body, _ = poll.result()
                return body
            if not await client.healthy(url, timeout=min(probe, options.request_timeout)):
                raise BackendUnavailable(f"watch {path} {url}: member unhealthy or unreachable")
    finally:
        if not poll.done():
            poll.cancel()
            # Bounded: aiohttp may hold a cancelled read until data arrives; the session
            # close reaps it then.
            await asyncio.wait({poll}, timeout=1.0)
        if poll.done() and not poll.cancelled():
            poll.exception()  # retrieved, so asyncio does not log it as never retrieved
