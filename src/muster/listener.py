"""A TCP listener for the daemon's small HTTP servers that stays cheap under floods of connections.

asyncio's ``loop.create_server`` accepts for as long as the process has file descriptors,
holds every idle connection until the client goes away, and once ``accept()`` fails
with ``EMFILE`` logs a traceback through the loop's exception handler at every retry;
the daemon sharing those descriptors then cannot open a connection to etcd or run a
command. ``Listener`` runs its own accept loop instead:

* it holds at most ``max_connections``; one more closes the one open longest, so a
  client that has just connected (a health probe) is served while a flood only churns
  its own connections, and the daemon never spends more than that many descriptors;
* a connection that sends nothing for ``idle_timeout`` seconds is aborted (not closed
  gracefully: a client that stops reading cannot hold it by leaving a reply unread);
* when ``accept()`` fails (out of descriptors or anything else) it waits ``backoff``
  seconds before the next attempt; it logs one line, without a traceback, at most once a
  minute (with the count of failures since the last one), and one when accepting works
  again. Evictions are logged the same way, so no client can make the log grow faster.

HTTP stays with the protocol ``protocol_factory`` builds (aiohttp's request handler);
``Listener`` only sees bytes arrive and connections open and close.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable
from typing import cast

from muster.log import kv

__all__ = ["Listener"]

logger = logging.getLogger(__name__)

#: Seconds between two log lines about the same trouble (failed accepts, evictions).
LOG_EVERY = 60.0


class Listener:
    """Accepts on ``host:port`` and hands each connection to a protocol from ``protocol_factory``.

    ``start()`` binds every address ``host`` resolves to (raising ``OSError`` if one
    cannot be bound) and starts accepting; ``aclose()`` stops accepting and aborts every
    open connection. ``port`` is the bound port (useful with port 0).
    """

    def __init__(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        host: str,
        port: int,
        *,
        max_connections: int = 256,
        idle_timeout: float = 5.0,
        backoff: float = 1.0,
        backlog: int = 128,
        name: str = "listener",
    ) -> None:
        if max_connections < 1 or idle_timeout <= 0 or backoff <= 0:
            raise ValueError("max_connections, idle_timeout and backoff must be positive")
        self.protocol_factory = protocol_factory
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.backoff = backoff
        self.backlog = backlog
        self.name = name
        self._sockets: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        # Insertion order is opening order: the first key is the connection open longest.
        self._connections: dict[_Guarded, None] = {}
        # Failed accepts and evictions since the last line that reported them.
        self._accept_failures = 0
        self._failure_reported = False
        self._evictions = 0
        self._next_log = {"accept": 0.0, "evict": 0.0}

    def __repr__(self) -> str:
        return (
            f"<Listener {self.name} {self.host}:{self.port} connections={len(self._connections)}"
            f"/{self.max_connections}>"
        )

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._connections)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        seen = set()
        try:
            for family, kind, proto, _, address in infos:
                if (family, address) in seen:
                    continue
                seen.add((family, address))
                sock = socket.socket(family, kind, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if self.port == 0 and len(self._sockets) > 1:
                    address = (address[0], self._sockets[0].getsockname()[1], *address[2:])
                sock.bind(address)
                sock.listen(self.backlog)
                sock.setblocking(False)
        except OSError:
            self._close_sockets()
            raise
        self.port = int(self._sockets[0].getsockname()[1])
        self._tasks = [asyncio.create_task(self._accept(sock)) for sock in self._sockets]

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close_sockets()
        for conn in list(self._connections):
            conn.abort()
        self._connections.clear()

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except ConnectionAbortedError:
                continue  # the client reset the connection before we took it
            except OSError as exc:
                self._accept_failed(exc)
                await asyncio.sleep(self.backoff)
                continue
            if self._failure_reported:
                logger.info(kv(f"{self.name}.accept.recovered", unreported_failures=self._accept_failures))
                self._failure_reported = False
                self._accept_failures = 0
            try:
                await loop.connect_accepted_socket(lambda: _Guarded(self, self.protocol_factory()), conn)
            except OSError:
                conn.close()

    def _accept_failed(self, exc: OSError) -> None:
        self._accept_failures += 1
        if self._may_log("accept"):
            name = errno.errorcode.get(exc.errno or 0, "?")
            logger.warning(
                kv(
                    f"{self.name}.accept.failed",
                    error=f"{name} {exc.strerror or exc}",
                    failures=self._accept_failures,
                    retry_in_s=self.backoff,
                    connections=len(self._connections),
                )
            )
            self._accept_failures = 0
            self._failure_reported = True

    def _may_log(self, what: str) -> bool:
        now = asyncio.get_running_loop().time()
        if now < self._next_log[what]:
            return False
        self._next_log[what] = now + LOG_EVERY
        return True

    def _opened(self, conn: _Guarded) -> None:
        if len(self._connections) >= self.max_connections:
            oldest = next(iter(self._connections))
            del self._connections[oldest]
            oldest.abort()
            self._evictions += 1
            if self._may_log("evict"):
                logger.warning(
                    kv(
                        f"{self.name}.connections.full",
                        max=self.max_connections,
                        closed=self._evictions,
                        note="each new connection closes the one open longest",
                    )
                )
                self._evictions = 0
        self._connections[conn] = None

    def _closed(self, conn: _Guarded) -> None:
        self._connections.pop(conn, None)


class _Guarded(asyncio.Protocol):
    """Passes everything to ``inner``; tracks the connection and aborts it when idle."""

    __slots__ = ("_inner", "_last", "_listener", "_timer", "_transport")

    def __init__(self, listener: Listener, inner: asyncio.Protocol) -> None:
        self._listener = listener
        self._inner = inner
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        self._timer = loop.call_at(self._last + self._listener.idle_timeout, self._check_idle)
        self._listener._opened(self)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        # Only record the time: rescheduling the timer per read would cost more than
        # letting it fire once and re-arm itself (see _check_idle).
        self._last = asyncio.get_running_loop().time()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._listener._closed(self)
        self._inner.connection_lost(exc)

    def abort(self) -> None:
        # Also when closing: a graceful close waits for the client to read what is buffered.
        if self._transport is not None:
            self._transport.abort()

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = self._last + self._listener.idle_timeout
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._check_idle)
            return
        self._timer = None
        self.abort()
