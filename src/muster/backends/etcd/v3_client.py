"""A small etcd v3 client over the JSON gateway (``/v3/...``) with aiohttp.

Why our own: the maintained Python clients each miss one of read-at-revision, TLS,
multi-endpoint failover, a watch that reports compaction and disconnects, or a working lease
revoke (issue 3). The gateway speaks JSON with base64 keys/values and int64s as strings.

Every request carries ``Grpc-Metadata-hasleader: true``, which the gateway forwards as gRPC
metadata: etcd then fails requests fast ("no leader") on a member cut off from its cluster,
and cancels watch streams on it, instead of letting them hang. Gateway errors arrive as
``{"error", "message", "code"}`` with gRPC codes and are mapped by ``classify()``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from muster.backends.etcd.transport import (
    TRANSPORT_ERRORS,
    Endpoints,
    PooledSession,
    map_exceptions,
    parse_json,
)
from muster.backends.keys import KeyRange, b64decode, b64encode
from muster.backends.options import BackendOptions
from muster.errors import BackendError, BackendUnavailable, RevisionCompacted
from muster.log import kv

__all__ = [
    "EtcdV3Client",
    "GatewayError",
    "RangeResult",
    "WatchEvent",
    "WatchResponse",
    "WatchStream",
    "classify",
    "parse_watch_message",
]

log = logging.getLogger(__name__)

_REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}
# gRPC status codes etcd uses for "try another member / later".
_RETRYABLE_CODES = {4, 14}  # DEADLINE_EXCEEDED, UNAVAILABLE
_RETRYABLE_TEXT = (
    "no leader",
    "request timed out",
    "leader changed",
    "not capable",
    "timed out",
    "too many requests",
    "server is stopping",
)


class GatewayError(BackendError):
    """etcd refused a request; ``code`` is the gRPC status code, ``message`` etcd's text."""

    def __init__(self, message: str, *, code: int = 0, http_status: int = 0) -> None:
        self.code = code
        self.etcd_message = message
        self.http_status = http_status
        super().__init__(message)

    @property
    def is_auth_token_error(self) -> bool:
        return self.code == 16 or "invalid auth token" in self.etcd_message

    @property
    def is_lease_not_found(self) -> bool:
        return "lease not found" in self.etcd_message


def classify(body: Any, what: str, http_status: int = 0) -> BackendError:
    """Map a gateway error body (unary or stream shape) to the muster error it means."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):  # stream errors: {"error": {"grpc_code", "message", ...}}
        code, message = int(err.get("grpc_code", 0) or 0), str(err.get("message", ""))
    else:
        code = int(body.get("code", 0) or 0) if isinstance(body, dict) else 0
        message = str(body.get("message") or err or body) if isinstance(body, dict) else str(body)
    text = f"{what}: {message}"
    if "CommonName of client" in message:
        text += (
            " (etcd 3.4's JSON gateway refuses every request when client-certificate auth and"
            " RBAC are both enabled: use certificates or username/password, not both)"
        )
    if "compacted" in message:
        return RevisionCompacted(text)
    if code in _RETRYABLE_CODES or any(t in message for t in _RETRYABLE_TEXT) or http_status in (502, 503):
        return BackendUnavailable(text)
    return GatewayError(text, code=code, http_status=http_status)


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[tuple[bytes, bytes]]
    revision: int
    more: bool


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # "PUT" or "DELETE"
    key: bytes
    value: bytes
    mod_revision: int


@dataclass(frozen=True, slots=True)
class WatchResponse:
    watch_id: int
    revision: int
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""
    events: list[WatchEvent] = field(default_factory=list)

    @property
    def is_progress(self) -> bool:
        """A progress notification: nothing changed in this watcher's range up to ``revision``."""
        return not (self.created or self.canceled or self.events)


def parse_watch_message(obj: Any, what: str = "watch") -> WatchResponse:
    """One gateway stream message (``{"result": ...}`` or ``{"error": ...}``) as a WatchResponse."""
    if not isinstance(obj, dict) or "result" not in obj:
        raise classify(obj, what)
    res = obj["result"]
    events = [
        WatchEvent(
            type=ev.get("type", "PUT"),  # PUT is enum value 0, which the gateway omits
            key=b64decode(ev.get("kv", {}).get("key")),
            value=b64decode(ev.get("kv", {}).get("value")),
            mod_revision=int(ev.get("kv", {}).get("mod_revision", 0)),
        )
        for ev in res.get("events", ())
    ]
    return WatchResponse(
        watch_id=int(res.get("watch_id", 0)),
        revision=int(res.get("header", {}).get("revision", 0)),
        created=bool(res.get("created", False)),
        canceled=bool(res.get("canceled", False)),
        compact_revision=int(res.get("compact_revision", 0)),
        cancel_reason=str(res.get("cancel_reason", "")),
        events=events,
    )


class WatchStream:
    """An open ``/v3/watch`` response, read one newline-delimited JSON message at a time."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response = response
        self.url = url
        self._buffer = b""

    async def receive(self, idle_timeout: float | None = None) -> WatchResponse | None:
        """The next message, or ``None`` if nothing arrived within ``idle_timeout`` seconds.

        Raises ``BackendUnavailable`` when the stream ends or breaks.
        """
        what = f"watch {self.url}"
        while b"\n" not in self._buffer:
            with map_exceptions(TRANSPORT_ERRORS, what):
                # asyncio.timeout, not wait_for: wait_for runs the read in a second task whose
                # cancellation aiohttp can hold up until data arrives, stalling aclose().
                try:
                    async with asyncio.timeout(idle_timeout):
                        chunk = await self._response.content.readany()
                except TimeoutError:
                    return None
            if not chunk:
                raise BackendUnavailable(f"{what}: stream closed by the server")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return parse_watch_message(parse_json(line, what), what)

    @property
    def pending(self) -> bool:
        """Whether a whole message is already buffered (``receive`` returns it at once)."""
        return b"\n" in self._buffer

    async def hold(self, seconds: float) -> None:
        """Read nothing for ``seconds``: what arrives meanwhile waits in the socket and is
        then read in one go, rather than waking this process once per message.

        The transport is paused, not aiohttp's protocol: pausing that pauses its HTTP parser
        too, which then hands on one message and keeps the rest until the next read.
        """
        connection = self._response.connection
        transport = connection.transport if connection is not None else None
        if transport is None or transport.is_closing():
            await asyncio.sleep(seconds)
            return
        transport.pause_reading()
        try:
            await asyncio.sleep(seconds)
        finally:
            if not transport.is_closing():
                transport.resume_reading()


class EtcdV3Client(PooledSession):
    """Requests to the first healthy endpoint, with failover, auth tokens and TLS.

    Use as ``async with EtcdV3Client(options) as client``; ``aclose()`` is idempotent.
    """

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.endpoints = Endpoints(options.endpoints())
        self._token: str | None = None
        self._auth_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<EtcdV3Client {self.endpoints!r} user={self.options.username or None}>"

    async def __aenter__(self) -> EtcdV3Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _timeout(self, total: float | None) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=total, sock_connect=self.options.dial_timeout)

    # -- unary requests ---------------------------------------------------------------------

    async def _post(self, url: str, path: str, body: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        """One request to one endpoint; gateway errors raised as classified muster errors."""
        what = f"{path} {url}"
        headers = dict(_REQUIRE_LEADER)
        if self._token is not None:
            headers["Authorization"] = self._token
        with map_exceptions(TRANSPORT_ERRORS, what):
            async with self.session.post(
                url + path, data=json.dumps(body), headers=headers,
                timeout=self._timeout(timeout or self.options.request_timeout),
            ) as resp:  # fmt: skip
                raw = await resp.read()
                status = resp.status
        try:
            reply = json.loads(raw) if raw else {}
        except ValueError:
            if status == 200:
                raise BackendError(f"{what}: invalid JSON from etcd: {raw[:80]!r}") from None
            reply = {"message": raw.decode(errors="replace").strip()}  # a plain-text refusal
        if status != 200 or (isinstance(reply, dict) and "error" in reply and "header" not in reply):
            raise classify(reply, what, status)
        if not isinstance(reply, dict):
            raise BackendError(f"{what}: unexpected reply {raw[:80]!r}")
        return reply

    async def _authenticate(self, url: str, stale: str | None) -> None:
        async with self._auth_lock:
            if self._token is not None and self._token != stale:
                return  # another task refreshed it meanwhile
            self._token = None
            body = {"name": self.options.username, "password": self.options.password}
            reply = await self._post(url, "/v3/auth/authenticate", body, None)
            self._token = str(reply.get("token", ""))
            log.debug(kv("etcd.auth.complete", endpoint=url, user=self.options.username))

    async def reauthenticate(self, url: str) -> None:
        """Drop the current token and get a new one from ``url``."""
        await self._authenticate(url, self._token)

    async def request_on(self, url: str, path: str, body: dict[str, Any],
                         timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
        """POST ``body`` to one endpoint, authenticating (again) when a token is missing or expired."""
        if self.options.username and self._token is None:
            await self._authenticate(url, None)
        try:
            return await self._post(url, path, body, timeout)
        except GatewayError as exc:
            if not (self.options.username and exc.is_auth_token_error):
                raise
            await self._authenticate(url, self._token)
            return await self._post(url, path, body, timeout)

    async def request(self, path: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """POST to the current endpoint, failing over to the next on ``BackendUnavailable``."""
        errors: list[str] = []
        for url in self.endpoints.rotation():
            try:
                reply = await self.request_on(url, path, body, timeout)
            except BackendUnavailable as exc:
                errors.append(str(exc))
                self.endpoints.mark_failed(url, exc)
                continue
            self.endpoints.mark_good(url)
            return reply
        raise BackendUnavailable(f"no etcd endpoint answered {path}: " + "; ".join(errors))

    # -- KV ---------------------------------------------------------------------------------

    async def range(self, key: bytes, range_end: bytes | None = None, *, revision: int | None = None,
                    limit: int = 0) -> RangeResult:  # fmt: skip
        """Keys in ``[key, range_end)`` (or just ``key``), at ``revision`` when given."""
        body: dict[str, Any] = {"key": b64encode(key)}
        if range_end is not None:
            body["range_end"] = b64encode(range_end)
        if revision is not None:
            body["revision"] = str(revision)
        if limit:
            body["limit"] = str(limit)
        reply = await self.request("/v3/kv/range", body)
        kvs = [(b64decode(item.get("key")), b64decode(item.get("value"))) for item in reply.get("kvs", ())]
        return RangeResult(kvs, int(reply["header"]["revision"]), bool(reply.get("more", False)))

    async def range_all(
        self, ranges: Sequence[KeyRange], *, revision: int | None = None, page: int = 10_000
    ) -> tuple[dict[bytes, bytes], int]:
        """Every key in ``ranges`` at ``revision``, or all at the revision of the first read."""
        values: dict[bytes, bytes] = {}
        for key, end in ranges:
            start = key
            while True:
                res = await self.range(start, end, revision=revision, limit=page if end is not None else 0)
                if revision is None:
                    revision = res.revision
                values.update(res.kvs)
                if not res.more or not res.kvs:
                    break
                start = res.kvs[-1][0] + b"\0"  # continue after the last key, same revision
        if revision is None:
            raise ValueError("range_all needs at least one range")
        return values, revision

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        """Write ``key``; returns the new revision."""
        body: dict[str, Any] = {"key": b64encode(key), "value": b64encode(value)}
        if lease:
            body["lease"] = str(lease)
        reply = await self.request("/v3/kv/put", body)
        return int(reply["header"]["revision"])

    async def delete_range(self, key: bytes, range_end: bytes | None = None) -> int:
        """Delete ``key`` (or ``[key, range_end)``); returns how many keys went."""
        body: dict[str, Any] = {"key": b64encode(key)}
        if range_end is not None:
            body["range_end"] = b64encode(range_end)
        reply = await self.request("/v3/kv/deleterange", body)
        return int(reply.get("deleted", 0))

    async def compact(self, revision: int) -> None:
        await self.request("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    async def status(self, url: str, timeout: float | None = None) -> dict[str, Any]:
        """``/v3/maintenance/status`` of one member (fails fast when it has no leader)."""
        return await self.request_on(url, "/v3/maintenance/status", {}, timeout)

    # -- leases -----------------------------------------------------------------------------

    async def lease_grant(self, ttl: int) -> tuple[int, int]:
        """A new lease; returns ``(id, granted_ttl)``."""
        reply = await self.request("/v3/lease/grant", {"TTL": str(ttl)})
        if reply.get("error"):
            raise classify(reply, "/v3/lease/grant")
        return int(reply["ID"]), int(reply.get("TTL", 0))

    async def lease_keepalive(self, lease_id: int) -> int:
        """Refresh once; the remaining TTL, 0 when the lease no longer exists."""
        reply = await self.request("/v3/lease/keepalive", {"ID": str(lease_id)})
        # The gateway streams {"result": {...}}; a zero TTL is omitted (protobuf default).
        result = reply.get("result", reply)
        if "error" in reply and "result" not in reply:
            raise classify(reply, "/v3/lease/keepalive")
        return int(result.get("TTL", 0))

    async def lease_revoke(self, lease_id: int) -> bool:
        """Revoke (deleting its keys); False if it was already gone."""
        try:
            await self.request("/v3/lease/revoke", {"ID": str(lease_id)})
        except GatewayError as exc:
            if exc.is_lease_not_found:
                return False
            raise
        return True

    # -- watch ------------------------------------------------------------------------------

    @asynccontextmanager
    async def watch(
        self, url: str, watched: KeyRange, start_revision: int | None, *, progress_notify: bool = True
    ) -> AsyncIterator[WatchStream]:
        """Open one ``/v3/watch`` stream on ``url`` with a single watcher on ``watched``.

        Only one create request per stream: etcd 3.4's gateway starts answering while it
        still reads the request body, and Go's HTTP/1 server then discards the unread rest.
        """
        if self.options.username and self._token is None:
            await self._authenticate(url, None)
        key, end = watched
        create: dict[str, Any] = {"key": b64encode(key), "progress_notify": progress_notify}
        if end is not None:
            create["range_end"] = b64encode(end)
        if start_revision is not None:
            create["start_revision"] = str(start_revision)
        headers = dict(_REQUIRE_LEADER)
        if self._token is not None:
            headers["Authorization"] = self._token
        what = f"watch {url}"
        # The reply starts with the "created" message: a member that accepts the connection
        # but never answers (stopped, wedged) must not hold us here forever.
        with map_exceptions(TRANSPORT_ERRORS, what):
            async with asyncio.timeout(self.options.request_timeout):
                resp = await self.session.post(
                    url + "/v3/watch",
                    data=json.dumps({"create_request": create}),
                    headers=headers,
                    timeout=self._timeout(None),
                )
        try:
            if resp.status != 200:
                raw = await resp.read()
                raise classify(parse_json(raw, what) if raw else {}, what, resp.status)
            yield WatchStream(resp, url)
        finally:
            resp.release()
            resp.close()  # never return a half-read stream to the pool
