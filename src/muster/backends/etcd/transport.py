"""HTTP plumbing shared by the etcd backends: TLS contexts, endpoint failover, error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp

from muster.backends.options import BackendOptions
from muster.errors import BackendError, BackendUnavailable, ConfigError
from muster.log import kv

__all__ = [
    "Endpoints",
    "PooledSession",
    "is_certificate_error",
    "make_session",
    "map_exceptions",
    "parse_json",
    "ssl_context",
]

log = logging.getLogger(__name__)

#: aiohttp/OS errors meaning "this endpoint is unreachable right now": try the next one.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    asyncio.TimeoutError,
    ConnectionError,
)


@contextlib.contextmanager
def map_exceptions(mapping: Mapping[type[BaseException], type[BackendError]], what: str) -> Iterator[None]:
    """Re-raise foreign exceptions as muster errors (first matching class wins), ``from`` the original.

    ``what`` names the operation and endpoint for the message, e.g. ``"range http://h:2379"``.
    """
    try:
        yield
    except BackendError:
        raise
    except Exception as exc:
        if is_certificate_error(exc):
            # Not transient: retrying another node or later will not fix a certificate.
            raise BackendError(f"{what}: TLS certificate rejected: {exc}") from exc
        for source, target in mapping.items():
            if isinstance(exc, source):
                detail = str(exc) or type(exc).__name__
                raise target(f"{what}: {detail}") from exc
        raise


def is_certificate_error(exc: BaseException) -> bool:
    """True for TLS failures caused by certificates (ours or the server's), not by the network."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
        return True
    text = f"{exc} {exc.__cause__ or ''}".upper()
    return "SSL" in text and ("CERTIFICATE" in text or "UNKNOWN_CA" in text)


#: The mapping both etcd clients use for transport failures.
TRANSPORT_ERRORS: dict[type[BaseException], type[BackendError]] = {
    exc: BackendUnavailable for exc in UNAVAILABLE
}


def ssl_context(options: BackendOptions) -> ssl.SSLContext | None:
    """A client TLS context from confd's ``client_*`` options, or ``None`` when none are set.

    Raises ``ConfigError`` naming the file when a certificate or key cannot be loaded.
    """
    if not (options.client_ca_keys or options.client_cert or options.client_insecure):
        return None
    try:
        ctx = ssl.create_default_context(cafile=options.client_ca_keys or None)
        if options.client_cert or options.client_key:
            if not (options.client_cert and options.client_key):
                raise ConfigError("client_cert and client_key must be given together")
            ctx.load_cert_chain(options.client_cert, options.client_key)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(f for f in (options.client_ca_keys, options.client_cert, options.client_key) if f)
        raise ConfigError(f"cannot load TLS files ({files}): {exc}") from exc
    if options.client_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_session(options: BackendOptions) -> aiohttp.ClientSession:
    """One pooled session per backend; per-request timeouts are passed by the callers."""
    ctx = ssl_context(options)
    connector = aiohttp.TCPConnector(ssl=ctx if ctx is not None else True, limit=0)
    return aiohttp.ClientSession(connector=connector, json_serialize=json.dumps)


class PooledSession:
    """The lazily made, re-made-when-closed session of an etcd client (``options`` set by it)."""

    options: BackendOptions
    _session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = make_session(self.options)
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def parse_json(raw: bytes, what: str) -> Any:
    """Decode a JSON reply, raising ``BackendError`` (not ``ValueError``) for garbage."""
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise BackendError(f"{what}: invalid JSON from etcd: {raw[:80]!r}") from exc


class Endpoints:
    """The configured nodes in order with a cursor on the one in use; failover moves the cursor.

    A success keeps the cursor where it is, so all requests stick to one healthy member
    (the watch and the reads then see the same member's revisions).
    """

    def __init__(self, urls: tuple[str, ...]) -> None:
        if not urls:
            raise ConfigError("no backend nodes configured")
        self.urls = urls
        self._index = 0

    def __repr__(self) -> str:
        return f"<Endpoints current={self.current} all={list(self.urls)}>"

    @property
    def current(self) -> str:
        return self.urls[self._index]

    def rotation(self) -> list[str]:
        """Every endpoint once, starting with the current one."""
        n = len(self.urls)
        return [self.urls[(self._index + i) % n] for i in range(n)]

    def mark_good(self, url: str) -> None:
        self._index = self.urls.index(url)

    def mark_failed(self, url: str, error: BaseException) -> None:
        """Move past ``url`` unless another caller already did."""
        if self.current == url:
            self._index = (self._index + 1) % len(self.urls)
            if len(self.urls) > 1:
                log.warning(kv("etcd.failover", failed=url, next=self.current, error=error))
