"""The etcd v2 keys API client (``/v2/keys``): requests, long-polls and the change follower.

``follow`` is the theory of operation of the v2 watch (see ``muster.backends.etcd.v2``): one
long-poll per prefix from one past the last index seen, never "from now"; no-op events (TTL
refreshes) only advance the index; a silent poll is checked with ``/health``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

import aiohttp

from muster.backends.etcd.transport import (
    TRANSPORT_ERRORS,
    Endpoints,
    PooledSession,
    map_exceptions,
    parse_json,
)
from muster.backends.keys import normalize_prefix
from muster.backends.options import BackendOptions
from muster.backoff import Backoff
from muster.errors import BackendError, BackendUnavailable, RevisionCompacted
from muster.log import kv

__all__ = ["EtcdV2Client", "V2Error", "event_index", "flatten", "follow", "is_noop_event"]

log = logging.getLogger(__name__)

KEY_NOT_FOUND = 100
COMPARE_FAILED = 101
EVENT_INDEX_CLEARED = 401
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 0.5


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


class EtcdV2Client(PooledSession):
    """``/v2/keys`` requests with endpoint failover, TLS and HTTP basic auth."""

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.endpoints = Endpoints(options.endpoints())
        auth = None
        if options.username:
            auth = aiohttp.BasicAuth(options.username, options.password)
        self._auth = auth

    def __repr__(self) -> str:
        return f"<EtcdV2Client {self.endpoints!r}>"

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
    backoff = Backoff(_BACKOFF_FIRST, _BACKOFF_MAX, jitter=False)
    failures, outage_since = 0, None
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
                await asyncio.sleep(backoff.next())
                failures = 0
            continue
        if outage_since is not None:
            log.info(kv("etcd.v2.watch.resumed", endpoint=url, index=wait_index - 1,
                        outage=f"{time.monotonic() - outage_since:.3f}s"))  # fmt: skip
            failures, outage_since = 0, None
            backoff.reset()
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
