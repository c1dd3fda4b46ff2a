"""The ZooKeeper backend (confd's ``-backend zookeeper``): znodes as keys, their data as values.

confd's reading is kept: a znode without children is a key whose value is its data (an empty
one gives ``""``); a znode with children is a directory, and its own data is not read. The
system tree ``/zookeeper`` is left out when the prefix is ``/``. A prefix that does not exist
reads as no keys (confd errors out).

Theory of operation for ``wait_changed``. kazoo is thread-based: the first read of a prefix
walks its tree in a worker thread, a level at a time with pipelined requests, and leaves a
one-shot ZooKeeper watch on every znode it reads (a children watch on each, a data watch on
each leaf, an exists watch on a prefix that is missing). A watch firing, in kazoo's thread,
is handed to the event loop with ``call_soon_threadsafe``; it bumps ``revision``, a counter
of this backend (ZooKeeper has no single revision a watch could resume from), and records
which path changed, so a wait ends only for changes under its prefixes. The tree read is
kept as a replica; a later read re-reads only the znodes whose watches fired (re-arming
them), so a change costs a few round trips however many keys there are (kazoo manages
about 0.3 ms a znode: a full walk of 1,000 keys takes ~0.3 s, the read after one change
~3 ms). A wait on a prefix whose watches have fired since its last read re-reads it first.

kazoo keeps retrying the connection (backoff capped at 0.25 s; a handshake that hangs is cut,
see ``_unstick``); after a disconnect, and after a lost session (whose watches the server
dropped), the reconnect counts as a change to every prefix, so the daemon walks them afresh
and re-arms. ``outage()`` reports how long the connection has been down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError

from muster.backends.base import Snapshot
from muster.backends.keys import matches_prefix, normalize_prefix
from muster.backends.options import BackendOptions
from muster.errors import BackendError, BackendUnavailable, LeaseLost
from muster.log import kv
from muster.threads import DaemonThreadExecutor

__all__ = ["DEFAULT_NODE", "ZooKeeperBackend", "ZooKeeperLease", "hosts"]

log = logging.getLogger(__name__)

DEFAULT_NODE = "127.0.0.1:2181"
SESSION_TIMEOUT = 10.0
#: A session handshake (one round trip) still unanswered after this long is cut and retried,
#: doubling each time until a connect succeeds (see ``_unstick``).
HANDSHAKE_STALL = 0.5
_FIRED_KEPT = 4096
_T = TypeVar("_T")
_UNAVAILABLE = (ConnectionLoss, ConnectionClosedError, SessionExpiredError, KazooTimeoutError)


def hosts(options: BackendOptions) -> str:
    """kazoo's ``host:port,host:port`` from confd's ``-node`` list (schemes dropped, commas kept)."""
    out: list[str] = []
    for node in options.nodes or (DEFAULT_NODE,):
        for part in node.split(","):
            part = part.strip().rstrip("/")
            if "://" in part:
                part = part.split("://", 1)[1]
            if part:
                out.append(part)
    return ",".join(out or [DEFAULT_NODE])


@contextlib.contextmanager
def map_exceptions(what: str) -> Iterator[None]:
    """kazoo's errors as muster's: connection trouble is ``BackendUnavailable``."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise BackendUnavailable(f"zookeeper {what}: {type(exc).__name__} {exc}".rstrip()) from exc
    except KazooException as exc:
        raise BackendError(f"zookeeper {what}: {type(exc).__name__} {exc}".rstrip()) from exc


def _child(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


class ZooKeeperBackend:
    """``Backend`` and ``Registrar`` over ZooKeeper through one kazoo session.

    ``session_timeout`` is the session's (seconds); registering before the first read uses
    the registration's TTL instead, so an ephemeral key outlives a dead agent by at most it.
    """

    def __init__(
        self, *, options: BackendOptions | None = None, session_timeout: float = SESSION_TIMEOUT
    ) -> None:
        self.options = options or BackendOptions()
        self.hosts = hosts(self.options)
        self.session_timeout = session_timeout
        self._client: KazooClient | None = None
        self._start_lock = asyncio.Lock()
        self._executor = DaemonThreadExecutor(8, name="muster-zookeeper")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._revision = 0
        self._fired: dict[str, int] = {}  # path -> revision of its last watch event
        self._armed: dict[str, int] = {}  # prefix -> revision its last read started at
        self._changed = asyncio.Event()
        self._up = asyncio.Event()  # connected, as last reported by kazoo
        self._read_lock = asyncio.Lock()
        self._updating: asyncio.Future[None] | None = None
        self._data: dict[str, str] = {}  # the replica: leaf znode -> value
        self._dirs: dict[str, set[str]] = {}  # directory znode -> its children
        self._down_since: float | None = None
        self._was_down = False
        self._closed = False
        self._watchdog: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        state = self._client.state if self._client is not None else "unstarted"
        return f"<ZooKeeperBackend hosts={self.hosts!r} state={state} revision={self._revision}>"

    async def __aenter__(self) -> ZooKeeperBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        client, self._client = self._client, None
        if client is not None:
            await self._run(self._stop, client)

    @staticmethod
    def _stop(client: KazooClient) -> None:
        with contextlib.suppress(Exception):
            client.stop()
            client.close()

    def outage(self) -> float | None:
        """Seconds since the session lost its server, or None while connected."""
        down = self._down_since
        return time.monotonic() - down if down is not None else None

    @property
    def session_id(self) -> int | None:
        client = self._client
        return client.client_id[0] if client is not None and client.client_id else None

    # -- threads and the loop ----------------------------------------------------------------

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _connected(self, session_timeout: float | None = None) -> KazooClient:
        """The started client; the first call connects (``BackendUnavailable`` if no node answers)."""
        if self._closed:
            raise BackendError("zookeeper backend is closed")
        async with self._start_lock:
            if self._client is not None:
                return self._client
            self._loop = asyncio.get_running_loop()
            client = KazooClient(
                hosts=self.hosts,
                timeout=session_timeout or self.session_timeout,
                connection_retry={
                    "max_tries": -1,
                    "delay": 0.05,
                    "backoff": 2,
                    "max_delay": 0.25,  # back within 1 s of the server (and cheap: a refused connect)
                    "max_jitter": 0.05,
                },
                logger=logging.getLogger(f"{__name__}.kazoo"),  # under muster's log config  # fmt: skip
            )
            client.add_listener(self._on_state)
            log.debug(kv("zookeeper.connect.started", hosts=self.hosts))
            try:
                with map_exceptions(f"connect {self.hosts}"):
                    await self._run(client.start, self.options.dial_timeout)
            except BackendError:
                await self._run(self._stop, client)
                raise
            log.debug(kv("zookeeper.connect.complete", hosts=self.hosts, session=hex(client.client_id[0])))
            self._client = client
            self._up.set()
            self._watchdog = asyncio.create_task(self._unstick(client), name="zookeeper-handshake-watchdog")
            return client

    async def _unstick(self, client: KazooClient) -> None:
        """Cut a reconnect whose handshake hangs, so it is retried at once.

        A server still starting accepts connections before it serves them; ZooKeeper 3.8
        can then fail to close one (an NPE in ``NIOServerCnxn.close``), and kazoo would wait
        its whole connect timeout (session timeout / nodes: 10 s) on it. While disconnected,
        a socket kazoo holds longer than ``HANDSHAKE_STALL`` is shut down (kazoo sees a
        dropped connection and tries again); the limit doubles after each cut, so a merely
        slow server is waited for, and resets once connected.
        """
        limit, seen, since = HANDSHAKE_STALL, None, 0.0
        while True:
            await asyncio.sleep(0.1)
            if self._up.is_set():
                limit, seen = HANDSHAKE_STALL, None
                continue
            sock = getattr(getattr(client, "_connection", None), "_socket", None)  # kazoo internals
            if sock is not seen:
                seen, since = sock, time.monotonic()
            elif sock is not None and time.monotonic() - since > limit:
                log.info(kv("zookeeper.handshake.stalled", after_s=round(limit, 2), action="reconnect"))
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                limit, seen = limit * 2, None

    def _on_state(self, state: str) -> None:
        """kazoo's thread: the connection went away (SUSPENDED), the session too (LOST), or back."""
        self._call_in_loop(self._state_changed, state)

    def _on_watch(self, event: Any) -> None:
        """kazoo's thread: a one-shot watch fired for ``event.path`` (None: the session ended)."""
        self._call_in_loop(self._mark, event.path or "/")

    def _call_in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(fn, *args)

    def _state_changed(self, state: str) -> None:
        if self._closed:
            return
        if state == KazooState.CONNECTED:
            self._up.set()
            if self._was_down:
                outage = f"{self.outage() or 0:.3f}s"
                log.info(kv("zookeeper.reconnected", outage=outage, session=hex(self.session_id or 0)))
                self._down_since, self._was_down = None, False
                self._mark("/")  # watches may be gone (a new session) or changes missed: re-read all
            return
        self._up.clear()
        if self._down_since is None:
            self._down_since = time.monotonic()
        self._was_down = True
        event = "zookeeper.session.lost" if state == KazooState.LOST else "zookeeper.disconnected"
        log.warning(kv(event, hosts=self.hosts))

    def _mark(self, path: str) -> None:
        self._revision += 1
        self._fired[path] = self._revision
        self._changed.set()

    # -- Backend -----------------------------------------------------------------------------

    async def get_values(self, prefixes: Sequence[str]) -> Snapshot:
        """Every leaf znode under ``prefixes`` (confd's nodeWalk), leaving watches on all read.

        The first read of a prefix walks its tree; later reads re-read only the znodes whose
        watches fired since (a changed leaf, a directory whose children changed), from a
        replica of the tree kept here, so a change costs round trips in proportion to it.
        """
        client = await self._connected()
        unique = list(dict.fromkeys(normalize_prefix(p) or "/" for p in prefixes))
        async with self._read_lock:
            if self._updating is not None:  # a read cancelled mid-way: its thread must end first
                await asyncio.wait([self._updating])
                if not self._updating.cancelled():
                    self._updating.exception()  # retrieved: it was raised to the cancelled read
            for attempt in range(2):
                revision = self._revision
                full = [p for p in unique if p not in self._armed or self._fired.get("/", 0) > self._armed[p]]
                dirty = sorted(
                    {path for path, rev in self._fired.items() for p in unique
                     if p not in full and rev > self._armed[p] and matches_prefix(path, p)},
                    key=lambda path: path.count("/"),
                )  # fmt: skip
                try:
                    with map_exceptions(f"read {unique}"):
                        update = self._updating = asyncio.ensure_future(
                            self._run(self._update, client, full, dirty)
                        )
                        await asyncio.shield(update)  # cancelled, the thread still runs: see above
                    break
                except BaseException as exc:
                    for p in unique:  # the replica may be half updated: walk them anew
                        self._armed.pop(p, None)
                    # Cut off mid-read (or the session just expired): kazoo reconnects on its
                    # own, so wait for that once rather than fail the read.
                    if not isinstance(exc, BackendUnavailable) or attempt:
                        raise
                    if not await self._wait_up(self.options.request_timeout):
                        raise
            for prefix in unique:
                self._armed[prefix] = revision
            values = {k: v for k, v in self._data.items() if any(matches_prefix(k, p) for p in unique)}
        if len(self._fired) > _FIRED_KEPT:
            # Ephemeral keys come and go under new names: forget events every prefix has read past.
            floor = min(self._armed.values(), default=0)
            self._fired = {path: rev for path, rev in self._fired.items() if rev > floor}
        log.debug(kv("zookeeper.get.complete", keys=len(values), revision=revision, walked=len(full),
                     refreshed=len(dirty)))  # fmt: skip
        return Snapshot(dict(sorted(values.items())), revision)

    # The replica (``_data``: leaf -> value, ``_dirs``: directory -> children) is only changed
    # by ``_update``, in a worker thread, one at a time (``_read_lock``).

    def _update(self, client: KazooClient, full: list[str], dirty: list[str]) -> None:
        """Worker thread: walk ``full`` prefixes afresh, then re-read each ``dirty`` znode."""
        for prefix in full:
            self._drop(prefix)
        if full:
            self._merge(self._walk(client, full))
        for path in dirty:
            self._refresh(client, path)

    def _refresh(self, client: KazooClient, path: str) -> None:
        """Re-read one znode whose watch fired: its children (re-armed), or its data if it has none."""
        timeout = self.options.request_timeout
        try:
            children = client.get_children_async(path, watch=self._on_watch).get(timeout=timeout)
        except NoNodeError:
            self._drop(path)
            if path in self._armed:  # a prefix that went: watch for it to come back
                self._merge(self._walk(client, [path]))
            return
        kept = {c for c in children if not (path == "/" and c == "zookeeper")}
        if not kept:
            self._drop(path)
            self._merge(self._walk(client, [path]))
            return
        self._data.pop(path, None)
        old = self._dirs.get(path, set())
        for gone in old - kept:
            self._drop(_child(path, gone))
        self._dirs[path] = kept
        added = [_child(path, c) for c in sorted(kept - old)]
        if added:
            self._merge(self._walk(client, added))

    def _drop(self, path: str) -> None:
        below = path.rstrip("/") + "/"
        for table in (self._data, self._dirs):
            for key in [k for k in table if k == path or k.startswith(below)]:
                del table[key]

    def _merge(self, found: tuple[dict[str, str], dict[str, set[str]]]) -> None:
        values, dirs = found
        self._data.update(values)
        self._dirs.update(dirs)

    def _walk(self, client: KazooClient, roots: list[str]) -> tuple[dict[str, str], dict[str, set[str]]]:
        """Worker thread: read the trees under ``roots``, a level at a time, arming watches.

        Returns the leaves' values and each directory's children.
        """
        timeout = self.options.request_timeout
        watch = self._on_watch
        values: dict[str, str] = {}
        dirs: dict[str, set[str]] = {}
        frontier = [r if r.startswith("/") else "/" + r for r in roots]
        tops = set(frontier)
        for _ in range(3):  # a missing root created meanwhile is walked again, twice at most
            missing: list[str] = []
            while frontier:
                listing = [(p, client.get_children_async(p, watch=watch)) for p in frontier]
                frontier, leaves = [], []
                for path, pending in listing:
                    try:
                        children = pending.get(timeout=timeout)
                    except NoNodeError:
                        if path in tops:
                            missing.append(path)
                        continue  # deleted since its parent was listed: the parent's watch fired
                    system = path == "/"  # confd would list /zookeeper (quotas, config) too
                    kept = [c for c in children if not (system and c == "zookeeper")]
                    if kept:
                        dirs[path] = set(kept)
                        frontier.extend(_child(path, c) for c in kept)
                    else:
                        leaves.append(path)
                reads = [(p, client.get_async(p, watch=watch)) for p in leaves]
                for path, pending in reads:
                    try:
                        data, _stat = pending.get(timeout=timeout)
                    except NoNodeError:
                        continue
                    values[path] = (data or b"").decode("utf-8", errors="replace")
            # A missing prefix: watch for its creation; walk it if it appeared in between.
            frontier = [p for p in missing if client.exists(p, watch=watch) is not None]
            if not frontier:
                break
        return values, dirs

    async def _wait_up(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._up.wait()
        except TimeoutError:
            return False
        return True

    async def wait_changed(self, prefixes: Sequence[str], since: int | None) -> int | None:
        """Block until a znode under ``prefixes`` changes after revision ``since``; return the new one.

        Rides out disconnects and lost sessions on its own (see ``outage()``); the reconnect
        itself ends the wait, so the caller re-reads.
        """
        unique = list(dict.fromkeys(normalize_prefix(p) or "/" for p in prefixes))
        if not unique:
            await asyncio.Event().wait()  # nothing to watch: wait until cancelled
        if since is None:
            since = (await self.get_values(unique)).revision or 0
        while True:
            fired = self._fired.items()
            changed = [rev for path, rev in fired if rev > since and self._affects(path, unique)]
            if changed:
                return max(changed)
            stale = [p for p in unique if p not in self._armed or self._fired_since(p, self._armed[p])]
            if stale:
                await self.get_values(stale)  # re-arms; a change it finds shows as an event
                if self._revision > since and any(self._fired_since(p, since) for p in stale):
                    continue
            self._changed.clear()
            await self._changed.wait()

    @staticmethod
    def _affects(path: str, prefixes: Sequence[str]) -> bool:
        # A path fires for itself and its children: a prefix below it may be affected too.
        return any(matches_prefix(path, p) or matches_prefix(p, path) or path == "/" for p in prefixes)

    def _fired_since(self, prefix: str, revision: int) -> bool:
        return any(rev > revision and self._affects(path, [prefix]) for path, rev in self._fired.items())

    # -- Registrar ---------------------------------------------------------------------------

    async def register(self, key: str, value: str, ttl: int) -> ZooKeeperLease:
        """Create ``key`` as an ephemeral znode of this session (parents made persistent).

        A znode already there (a stale copy, or the last session's, not yet expired) is
        replaced. ``ttl`` is the session timeout when this call opens the session.
        """
        client = await self._connected(session_timeout=float(ttl))
        with map_exceptions(f"register {key}"):
            session = await self._run(self._create, client, key, value)
        log.debug(kv("zookeeper.register.complete", key=key, session=hex(session)))
        return ZooKeeperLease(self, client, key, value, ttl, session)

    @staticmethod
    def _create(client: KazooClient, key: str, value: str) -> int:
        for _ in range(5):
            session = int(client.client_id[0])
            try:
                client.create(key, value.encode(), ephemeral=True, makepath=True)
                return session
            except NoNodeError:
                continue  # a parent was removed (by a revoke's cleanup) in between: make it again
            except NodeExistsError:
                _data, stat = client.get(key)
                if stat.ephemeralOwner == session:
                    client.set(key, value.encode(), version=stat.version)
                    return session
                with contextlib.suppress(NoNodeError, BadVersionError):
                    client.delete(key, version=stat.version)
        raise BackendError(f"zookeeper register {key}: kept being re-created by another client")


class ZooKeeperLease:
    """An ephemeral znode, alive as long as the kazoo session (``muster.backends.base.Lease``).

    kazoo keeps the session alive by itself; ``keepalive`` only checks that the session the
    znode was created in still exists (``LeaseLost`` once it expired, so the agent creates
    the znode again in the new one).
    """

    def __init__(self, backend: ZooKeeperBackend, client: KazooClient, key: str, value: str,
                 ttl: int, session: int) -> None:  # fmt: skip
        self._backend = backend
        self._client = client
        self.key = key
        self.value = value
        self._ttl = ttl
        self.session = session
        self._seen_version: int | None = None  # the znode's version at verify(); None: absent

    def __repr__(self) -> str:
        return f"<ZooKeeperLease key={self.key!r} session={hex(self.session)}>"

    @property
    def ttl(self) -> int:
        return self._ttl

    def _check_session(self) -> None:
        client = self._client
        if client.state == KazooState.LOST or not client.client_id or client.client_id[0] != self.session:
            raise LeaseLost(f"{self.key}: zookeeper session {hex(self.session)} expired")
        if not client.connected:
            raise BackendUnavailable(f"zookeeper keepalive {self.key}: not connected")

    async def keepalive(self) -> int:
        self._check_session()
        return self._ttl

    async def verify(self) -> bool:
        """The znode holds our value and is ephemeral (ours, or another live session's)."""
        self._check_session()
        with map_exceptions(f"verify {self.key}"):
            found = await self._backend._run(self._read)
        if found is None:
            self._seen_version = None
            return False
        data, stat = found
        self._seen_version = stat.version
        if stat.ephemeralOwner == self.session:
            return bool(data == self.value.encode())
        return bool(stat.ephemeralOwner != 0)  # persistent (0): a copy that would outlive us

    def _read(self) -> tuple[bytes, Any] | None:
        try:
            data, stat = self._client.get(self.key)
        except NoNodeError:
            return None
        return data, stat

    async def restore(self) -> bool:
        self._check_session()
        with map_exceptions(f"restore {self.key}"):
            wrote: bool = await self._backend._run(self._write_back)
        return wrote

    def _write_back(self) -> bool:
        try:
            if self._seen_version is not None:
                self._client.delete(self.key, version=self._seen_version)
            self._client.create(self.key, self.value.encode(), ephemeral=True, makepath=True)
        except (NodeExistsError, BadVersionError, NoNodeError):
            return False  # someone wrote it since verify(); the next verify judges
        except SessionExpiredError as exc:
            raise LeaseLost(f"{self.key}: zookeeper session expired") from exc
        return True

    async def revoke(self) -> None:
        """Delete the znode if this session still owns it (closing the session would too)."""
        with map_exceptions(f"revoke {self.key}"):
            await self._backend._run(self._delete_own)

    def _delete_own(self) -> None:
        try:
            _data, stat = self._client.get(self.key)
            if stat.ephemeralOwner == self.session:
                self._client.delete(self.key, version=stat.version)
        except NoNodeError:
            pass
        # The parents ``makepath`` created stay as empty leaf znodes, which confd's reading
        # turns into keys (``/services/web/servers`` = ""): a service with no servers where
        # etcd would have none. Remove those left empty, up to the top-level znode.
        parent = self.key.rsplit("/", 1)[0]
        while parent.count("/") >= 2:
            try:
                self._client.delete(parent)  # refused while it has children
            except (NotEmptyError, NoNodeError):
                return
            parent = parent.rsplit("/", 1)[0]
