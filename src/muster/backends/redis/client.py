"""Connections to Redis for the backend: confd's node syntax, failover in order, mapped errors.

redis-py (``redis.asyncio``) is imported lazily, so muster without the ``redis`` extra never
loads it. Every redis-py error leaves through ``mapped()``: a connection that cannot be made
or broke is ``BackendUnavailable``; a refusal by the server (wrong password, an ACL, a
command on the wrong type) is ``BackendError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from muster.backends.options import BackendOptions
from muster.errors import BackendError, BackendUnavailable, ConfigError
from muster.log import kv
from muster.redact import add_url_secrets, redact

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = ["DEFAULT_NODE", "RedisNodes", "glob_escape", "mapped", "parse_node"]

log = logging.getLogger(__name__)

DEFAULT_NODE = "127.0.0.1:6379"
T = TypeVar("T")


def glob_escape(text: str) -> str:
    """``text`` matched literally by ``SCAN MATCH``/``PSUBSCRIBE`` (confd passes it raw)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def parse_node(node: str) -> dict[str, Any]:
    """redis-py connection arguments for one confd node (see ``muster.backends.redis.backend``)."""
    node = node.strip()
    if "://" in node:
        return {"url": node}
    db = 0
    head, sep, tail = node.rpartition("/")
    if sep and head and tail.isdigit():
        node, db = head, int(tail)
    if node.startswith("/") or os.path.exists(node):
        return {"unix_socket_path": node, "db": db}
    host, colon, port = node.rpartition(":")
    if not colon:
        host, port = node, "6379"
    if not port.isdigit():
        raise ConfigError(f"redis node {node!r}: expected host:port[/db], a socket path or a redis:// URL")
    return {"host": host.strip("[]") or "127.0.0.1", "port": int(port), "db": db}


@contextlib.contextmanager
def mapped(what: str) -> Iterator[None]:
    """Re-raise redis-py's errors (and socket errors) as muster's ``BackendError`` tree."""
    from redis import exceptions as rx  # the redis extra, loaded with this backend

    try:
        yield
    except rx.AuthenticationError as exc:
        raise BackendError(f"redis {what}: authentication failed: {exc}") from exc
    except (rx.ConnectionError, rx.TimeoutError, OSError, EOFError) as exc:
        raise BackendUnavailable(f"redis {what}: {exc or type(exc).__name__}") from exc
    except rx.RedisError as exc:
        raise BackendError(f"redis {what}: {exc}") from exc


class RedisNodes:
    """The configured nodes; ``run`` uses the current one and moves on when it is unreachable."""

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.nodes = tuple(n for n in options.nodes if n.strip()) or (DEFAULT_NODE,)
        self.targets = [parse_node(n) for n in self.nodes]
        for node in self.nodes:
            add_url_secrets(node)  # redis://user:pw@host is masked in logs and errors
        self._index = 0
        self._clients: dict[tuple[int, int], Redis] = {}

    def __repr__(self) -> str:
        return f"<RedisNodes {[redact(n) for n in self.nodes]!r} current={self.current!r}>"

    @property
    def current(self) -> str:
        return redact(self.nodes[self._index])

    def _kwargs(self, index: int) -> dict[str, Any]:
        o = self.options
        # confd hands its redis client -client-key as the password; muster takes -password,
        # and -client-key only when no password is given and it names no file (confd's use).
        password = o.password or (o.client_key if o.client_key and not os.path.exists(o.client_key) else "")
        kwargs: dict[str, Any] = {
            "username": o.username or None,
            "password": password or None,
            "socket_connect_timeout": o.dial_timeout,
            "socket_timeout": o.request_timeout,
        }
        if o.client_ca_keys or o.client_cert:
            kwargs.update(
                ssl=True,
                ssl_ca_certs=o.client_ca_keys or None,
                ssl_certfile=o.client_cert or None,
                ssl_keyfile=o.client_key or None,
                ssl_cert_reqs="none" if o.client_insecure else "required",
            )
        return kwargs

    def client(self, index: int | None = None, *, retries: int = 1) -> Redis:
        """The client of node ``index`` (default: the current one).

        ``retries=1``: one quick retry, since a pooled connection that a restarted server
        closed fails once. Pub/sub takes 0: redis-py would otherwise reconnect and
        resubscribe behind the watch's back, which must notice to re-enable notifications
        and count the gap as a change.
        """
        from redis.asyncio import Redis  # the redis extra, loaded with this backend
        from redis.asyncio.retry import Retry  # the redis extra, loaded with this backend
        from redis.backoff import ExponentialBackoff  # the redis extra, loaded with this backend

        index = self._index if index is None else index
        found = self._clients.get((index, retries))
        if found is None:
            target = dict(self.targets[index])
            kwargs = self._kwargs(index)
            kwargs["retry"] = Retry(ExponentialBackoff(cap=0.1, base=0.01), retries)
            url = target.pop("url", None)
            if url is not None:
                # The URL's scheme says whether to use TLS (rediss://); the TLS files still apply.
                tls = url.startswith("rediss://")
                kwargs = {
                    k: v
                    for k, v in kwargs.items()
                    if v is not None and k != "ssl" and (tls or not k.startswith("ssl"))
                }
                found = Redis.from_url(url, **kwargs)
            else:
                found = Redis(**target, **kwargs)
            self._clients[(index, retries)] = found
        return found

    async def run(self, what: str, op: Callable[[Redis], Awaitable[T]]) -> T:
        """``op(client)`` on the current node, then on each other node while unreachable."""
        last: BackendUnavailable | None = None
        for step in range(len(self.nodes)):
            index = (self._index + step) % len(self.nodes)
            try:
                with mapped(what):
                    result = await op(self.client(index))
            except BackendUnavailable as exc:
                last = exc
                log.debug(kv("redis.node.failed", node=redact(self.nodes[index]), error=exc))
                continue
            if index != self._index:
                log.info(kv("redis.node.switched", node=redact(self.nodes[index])))
                self._index = index
            return result
        assert last is not None
        raise last

    @contextlib.asynccontextmanager
    async def pubsub(self) -> AsyncIterator[PubSub]:
        """A pub/sub connection to the current node, closed on exit."""
        pubsub = self.client(retries=0).pubsub(ignore_subscribe_messages=False)
        try:
            yield pubsub
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
