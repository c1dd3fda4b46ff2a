"""DNS names of registered servers to addresses, for both data planes, under deadlines.

nginx must never resolve a registry name itself (``nginx -t`` and every reload would wait
on, or fail with, one slow name), so muster resolves them and renders or pushes addresses.
The rules are in ``HostResolver``: stale-while-revalidate, one lookup per name at a time,
a deadline only for names never answered.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import heapq
import ipaddress
import logging
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from muster.log import kv
from muster.registry.schema import is_ip
from muster.threads import DaemonThreadExecutor

__all__ = [
    "HOST_EVENTS",
    "Holding",
    "HostResolver",
    "RESOLVE_DEADLINE",
    "ResolveEvents",
    "lookup_addresses",
]

log = logging.getLogger(__name__)


#: Seconds a render or push waits for a DNS name it has never looked up before.
RESOLVE_DEADLINE = 0.5


class ResolveEvents(NamedTuple):
    """The log events of one ``HostResolver``: each logged once per change of a name's state."""

    failed: str  #: warning: a lookup failed (first, or after a good one)
    recovered: str  #: info: a name that had failed answers again
    late: str  #: warning: a name's first lookup outlived the deadline (once per name)


HOST_EVENTS = ResolveEvents("services.host.unresolved", "services.host.resolved", "services.host.late")


class Holding:
    """The DNS names one user (a template root, a data plane sink) serves now.

    A ``HostResolver`` keeps these names fresh (``refresh``) for as long as the holding
    lives; it holds it weakly, so a template cache that drops its funcs lets them go.
    """

    __slots__ = ("names", "__weakref__")

    def __init__(self) -> None:
        self.names: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Name:
    answer: tuple[str, ...] = ()  # the last good answer; () if none yet, or the name is gone
    state: str = "new"  # of the last lookup that finished: new (none yet), ok or failed
    stale_at: float = 0.0  # from then on, the next ask or refresh looks it up again
    running: bool = False  # its one lookup is running (or being submitted)
    waiters: int = 0  # callers waiting on its first lookup now
    asked: float = 0.0  # when a caller last asked for it
    late: bool = False  # its first lookup outlived a caller's deadline (logged)


class HostResolver:
    """DNS names to addresses, stale-while-revalidate: a render or push never waits twice.

    Theory of operation. Each name has a state (``new``, ``ok``, ``failed``: how its last
    lookup ended), its last good answer and a time it goes stale (``ttl`` after a good
    answer, ``negative_ttl`` after a failure). A caller (``addresses``, or ``begin`` then
    ``collect`` for an async caller) gets the last good answer of every name at once; a
    stale name is looked up again in the background, with at most one lookup per name
    running. Only a ``new`` name (never looked up) makes the caller that started its
    lookup wait, and at most ``timeout``: a lookup still running then is left to finish
    (logged once as late) and no later caller waits for it. A lookup that fails
    definitively (no such name, no address) drops the answer, so the name costs its own
    entries only; one that fails otherwise (timeout, SERVFAIL, a resolver down) keeps
    the last good answer, as serve-stale resolvers do. Failures and recoveries are logged
    once per change of state. When a lookup nobody waits for changes a name's answer,
    every ``subscribe``d callback is called with the name (from the lookup's thread), so
    the daemon renders, or the sink pushes, again. ``refresh()`` (called periodically by
    whoever subscribed) looks up again the stale names held by a live ``Holding`` or
    asked for within ``forget_after``, and forgets the rest.

    Thread safety: one lock guards the table. It is held only to read or update it, never
    while calling out (``submit``, ``lookup``, callbacks) or waiting; a lookup stores its
    own answer before its future completes, so a caller that saw the future done finds
    the answer stored. ``executor`` runs the lookups; the default runs up to 8 at once in
    daemon threads, which do not hold up the exit. ``lookup(host)`` returns the host's
    addresses or raises ``OSError`` (default: ``lookup_addresses``); ``clock`` is
    injectable for tests.
    """

    def __init__(
        self,
        *,
        timeout: float = RESOLVE_DEADLINE,
        ttl: float = 30.0,
        negative_ttl: float = 5.0,
        forget_after: float = 600.0,
        executor: concurrent.futures.Executor | None = None,
        lookup: Callable[[str], Sequence[str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        events: ResolveEvents = HOST_EVENTS,
    ) -> None:
        self.timeout = timeout
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.forget_after = forget_after
        self.events = events
        self._lookup = lookup
        self._clock = clock
        self._names: dict[str, _Name] = {}
        self._holdings: weakref.WeakSet[Holding] = weakref.WeakSet()
        self._listeners: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._pool = executor

    # -- callers -------------------------------------------------------------------------------

    def __call__(self, hosts: Collection[str]) -> dict[str, tuple[str, ...]]:
        return self.addresses(hosts)

    def addresses(
        self, hosts: Collection[str], *, holding: Holding | None = None
    ) -> dict[str, tuple[str, ...]]:
        """The addresses of each name in ``hosts`` that has an answer; waits only for new names.

        With ``holding``, ``hosts`` become the names it holds (kept fresh by ``refresh``).
        """
        waits = self.begin(hosts, holding=holding)
        if waits:
            concurrent.futures.wait(waits.values(), timeout=self.timeout)
        return self.collect(hosts, waits)

    def begin(
        self, hosts: Collection[str], *, holding: Holding | None = None
    ) -> dict[str, concurrent.futures.Future[None]]:
        """Start the lookups ``hosts`` need; return those of new names, for the caller to wait
        on (at most ``timeout``) before it calls ``collect(hosts, waits)``, which it must."""
        now = self._clock()
        with self._lock:
            if holding is not None:
                holding.names = frozenset(hosts)
            if len(self._names) > 10_000:
                self._prune(now)
            claimed: list[str] = []
            first: set[str] = set()
            for host in hosts:
                entry = self._names.get(host)
                if entry is None:
                    entry = self._names[host] = _Name()
                entry.asked = now
                if not entry.running and now >= entry.stale_at:
                    entry.running = True
                    claimed.append(host)
                    if entry.state == "new":
                        entry.waiters += 1
                        first.add(host)
        try:
            started = self._start(claimed)
        except BaseException:
            # A submit failed (a pool shut down): nobody waits on these first lookups, and a
            # waiter left counted would silence the name's subscribers for good.
            with self._lock:
                for host in first:
                    self._names[host].waiters -= 1
            raise
        return {host: started[host] for host in first}

    def collect(
        self, hosts: Collection[str], waits: Mapping[str, concurrent.futures.Future[None]]
    ) -> dict[str, tuple[str, ...]]:
        """The answers for ``hosts`` after waiting on ``begin``'s ``waits``."""
        late: list[str] = []
        with self._lock:
            for host in waits:
                entry = self._names.get(host)
                if entry is not None:
                    entry.waiters -= 1
                    if entry.state == "new" and not entry.late:
                        entry.late = True
                        late.append(host)
            found = {
                host: e.answer for host in hosts if (e := self._names.get(host)) is not None and e.answer
            }
        for host in late:
            log.warning(
                kv(self.events.late, host=host, waited_s=self.timeout, note="left out until it answers")
            )
        return found

    def answers(self, hosts: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """The last good answers for ``hosts``: no lookup, no waiting."""
        with self._lock:
            return {host: e.answer for host in hosts if (e := self._names.get(host)) is not None and e.answer}

    def holding(self) -> Holding:
        """A new ``Holding`` whose names this resolver keeps fresh while it lives."""
        found = Holding()
        with self._lock:
            self._holdings.add(found)
        return found

    def hold(self, holding: Holding, hosts: Collection[str]) -> None:
        """``hosts`` are now the names ``holding`` serves."""
        with self._lock:
            holding.names = frozenset(hosts)

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(host)`` whenever a lookup nobody waits for changes ``host``'s answer;
        return the function that unsubscribes it. Called from a lookup thread: be quick."""
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return unsubscribe

    def refresh(self, limit: int = 64) -> int:
        """Look up again, in the background, the stale names still in use (the stalest
        ``limit`` of them: a thread each); forget the others. Returns how many it started."""
        now = self._clock()
        with self._lock:
            self._prune(now)
            stale = [(e.stale_at, h) for h, e in self._names.items() if not e.running and now >= e.stale_at]
            claimed = [host for _, host in heapq.nsmallest(limit, stale)]
            for host in claimed:
                self._names[host].running = True
        return len(self._start(claimed))

    # -- internals -----------------------------------------------------------------------------

    def _prune(self, now: float) -> None:
        """Forget the names neither held nor asked for within ``forget_after``."""
        held: set[str] = set()
        for holding in self._holdings:
            held |= holding.names
        for host in [h for h, e in self._names.items() if not e.running and h not in held]:
            if now - self._names[host].asked > self.forget_after:
                del self._names[host]

    def _start(self, hosts: list[str]) -> dict[str, concurrent.futures.Future[None]]:
        if not hosts:
            return {}
        with self._lock:
            if self._pool is None:
                self._pool = DaemonThreadExecutor(8, "muster-dns")
            pool = self._pool
        started: dict[str, concurrent.futures.Future[None]] = {}
        try:
            for host in hosts:
                started[host] = pool.submit(self._run, host)
        finally:
            if len(started) < len(hosts):  # a submit failed (a pool shut down): nothing runs
                with self._lock:
                    for host in hosts:
                        entry = self._names.get(host)
                        if host not in started and entry is not None:
                            entry.running = False
        return started

    def _run(self, host: str) -> None:
        answer: tuple[str, ...] = ()
        gone = True
        error = "no address"
        try:
            lookup = self._lookup if self._lookup is not None else lookup_addresses
            answer = _sorted_addresses(lookup(host))
        except (OSError, UnicodeError) as exc:
            gone = _definitive(exc)
            error = str(exc) or type(exc).__name__
        except Exception as exc:  # a resolver bug: like a resolver down, keep the last answer
            log.exception(kv("services.host.lookup_crashed", host=host))
            gone = False
            error = f"{type(exc).__name__}: {exc}"
        finally:
            # Stored before the future completes, even if the lookup raised: a name left
            # running would never be looked up again.
            self._store(host, answer, gone, error)

    def _store(self, host: str, answer: tuple[str, ...], gone: bool, error: str) -> None:
        now = self._clock()
        with self._lock:
            entry = self._names.get(host)
            if entry is None:
                return
            entry.running = False
            before, was = entry.answer, entry.state
            if answer:
                # Up to 10 % early, so names registered together do not all expire together.
                ttl = self.ttl * (1 - random.random() / 10)
                entry.answer, entry.state, entry.stale_at = answer, "ok", now + ttl
            else:
                if gone:
                    entry.answer = ()
                entry.state, entry.stale_at = "failed", now + self.negative_ttl
            using = entry.answer
            # A caller still waiting takes the answer itself: no need to render again.
            listeners = list(self._listeners) if entry.answer != before and entry.waiters == 0 else []
        if not answer and was != "failed":
            using_text = "the last answer" if using else "nothing: its entries are left out"
            log.warning(kv(self.events.failed, host=host, error=error, using=using_text))
        elif answer and was == "failed":
            log.info(kv(self.events.recovered, host=host, addresses=len(answer)))
        elif answer != before and was == "ok":
            log.debug(kv("services.host.changed", host=host, addresses=len(answer)))
        for listener in listeners:
            try:
                listener(host)
            except Exception:  # one listener's bug must not cost the others their news
                log.exception(kv("services.host.listener_failed", host=host))


def lookup_addresses(host: str) -> list[str]:
    """Every address of ``host`` (the system resolver: /etc/hosts, then DNS); raises ``OSError``."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _sorted_addresses(found: Iterable[str]) -> tuple[str, ...]:
    # Usable addresses only (no zone index, not unspecified), IPv4 first, in a stable order:
    # resolvers rotate their answers, and a rotation must not render a new config.
    usable = {ipaddress.ip_address(a) for a in found if is_ip(a)}
    return tuple(str(a) for a in sorted(usable, key=lambda a: (a.version, a)))


_GONE = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def _definitive(exc: BaseException) -> bool:
    """Whether a failed lookup says the name has no address (not that the resolver failed)."""
    return isinstance(exc, UnicodeError) or (isinstance(exc, socket.gaierror) and exc.errno in _GONE)
