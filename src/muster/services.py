"""Parse and validate service registrations so no registry value can inject nginx config.

Registry values are untrusted input: anyone who can write ``/services/...`` in etcd could
otherwise write nginx config (a host of ``1.2.3.4; include /etc/passwd``, a newline and a
``}``). The seed post's template pastes values into nginx's config verbatim, and one
non-JSON value fails the whole render, freezing every later update. Here each entry is
parsed on its own and kept only if every field is well formed; a bad entry costs only
itself, and is logged once (by key and reason, never its value, which may be secret).

Layout read (the seed post's, and what ``muster register`` writes)::

    /services/NAME/servers/ID = {"host": "10.0.0.5", "port": 8080, "weight": 2, ...}

* ``NAME`` and ``ID``: ASCII letters, digits, ``.``, ``_``, ``-``, starting with a letter
  or digit, at most 128 characters (the registration agent's rule).
* ``host``: an IPv4/IPv6 address (not unspecified or multicast) or a DNS name that
  resolves now; a name nginx cannot resolve would fail ``nginx -t`` for everyone.
* ``port``: an integer 1-65535 (a string of digits is accepted). ``weight``: optional
  integer 1-1000, default 1. Other fields are ignored.

Templates call ``services`` (valid service names, sorted) and ``servers NAME`` (its valid
servers as ``Server`` structs with ``.ID .Key .Host .Port .Weight .Addr``, sorted by ID),
both taking an optional root (default ``/services``). The pure core is ``index_services``;
the data plane uses it too, so both modes accept exactly the same entries.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from muster.gotemplate.values import GoFunc, GoSlice, GoStruct
from muster.log import kv, printable
from muster.threads import DaemonThreadExecutor

__all__ = [
    "BAD_SERVICE_NAME",
    "DEFAULT_ROOT",
    "IGNORED_KEY",
    "HostResolver",
    "NameClaims",
    "RejectLog",
    "Server",
    "ServiceIndex",
    "case_clash",
    "index_services",
    "parse_server",
    "service_funcs",
    "valid_host",
    "valid_name",
]

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/services"
MAX_VALUE_BYTES = 64 * 1024
MAX_WEIGHT = 1000

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z", re.ASCII)
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z", re.ASCII)


class Rejected(ValueError):
    """Why one registry entry was left out."""


class Server(GoStruct):
    """One valid server of a service, as templates see it."""

    go_type: ClassVar[str] = "services.Server"
    go_fields: ClassVar[tuple[str, ...]] = ("ID", "Key", "Host", "Port", "Weight", "Addr")
    __slots__ = ("ID", "Key", "Host", "Port", "Weight", "Addr")

    def __init__(self, id: str, key: str, host: str, port: int, weight: int = 1) -> None:
        self.ID = id
        self.Key = key
        self.Host = host
        self.Port = port
        self.Weight = weight
        # IPv6 addresses need brackets wherever a port follows.
        self.Addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def __repr__(self) -> str:
        return f"Server({self.ID!r}, {self.Addr!r}, weight={self.Weight})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Server):
            return NotImplemented
        return (self.ID, self.Key, self.Host, self.Port, self.Weight) == (
            other.ID,
            other.Key,
            other.Host,
            other.Port,
            other.Weight,
        )

    def __hash__(self) -> int:
        return hash((self.Key, self.Host, self.Port, self.Weight))


BAD_SERVICE_NAME = "service name is not [A-Za-z0-9._-]"
IGNORED_KEY = "ignored: not ROOT/NAME/servers/ID"


def case_clash(first: str) -> str:
    """Why a service name is rejected when ``first`` holds its case fold."""
    return f"service name differs only in case from {first}, registered first"


class NameClaims:
    """Which name holds each case fold: nginx compares upstream names without case.

    The name seen first keeps its fold for as long as it is registered, so a newcomer
    (``Hello`` beside ``hello``) is the one rejected and ``hello``'s clients keep being
    served. Names seen together for the first time (a daemon starting) are ordered
    lower-case first, then by code point, so the usual all-lower-case name wins there too.
    Long-lived: one per registry root, across snapshots.
    """

    __slots__ = ("_holders",)

    def __init__(self) -> None:
        self._holders: dict[str, str] = {}

    def judge(self, fold: str, members: Collection[str]) -> str | None:
        """The holder of ``fold`` among ``members`` (every valid name that folds to it now)."""
        holder = self._holders.get(fold)
        if holder is None or holder not in members:
            if not members:
                self._holders.pop(fold, None)
                return None
            holder = min(members, key=lambda n: (n != n.lower(), n))
            self._holders[fold] = holder
        return holder

    def keep_only(self, folds: Collection[str]) -> None:
        """Forget the folds no name holds any more."""
        for fold in self._holders.keys() - folds:
            del self._holders[fold]


def valid_name(name: str) -> bool:
    """Whether ``name`` is a valid service name or server ID."""
    return bool(_NAME.match(name))


def valid_host(host: str) -> bool:
    """Whether ``host`` is a usable IP address or a syntactically valid DNS name."""
    return _is_ip(host) or _dns_name(host)


# A dotted quad without leading zeros (which ipaddress rejects too); ipaddress is exact but
# costs more than all the rest of an entry's parsing, and most registries hold IPv4.
_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\Z", re.ASCII
)


def _is_ip(host: str) -> bool:
    """An address nginx can connect to: not unspecified, not multicast, no IPv6 zone."""
    if _IPV4.match(host):
        first = int(host.split(".", 1)[0])
        # Unspecified, multicast and the limited broadcast address are no servers.
        return host not in ("0.0.0.0", "255.255.255.255") and not 224 <= first <= 239
    if ":" not in host:
        return False
    try:
        addr = ipaddress.IPv6Address(host)
    except ValueError:
        return False
    # nginx cannot parse a zone index; unspecified and multicast are no servers.
    return addr.scope_id is None and not addr.is_unspecified and not addr.is_multicast


def _dns_name(host: str) -> bool:
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    labels = name.split(".")
    # An all-numeric last label is no TLD: "1.2.3" would be read as the address 1.2.0.3.
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _int_field(data: Mapping[str, Any], name: str, low: int, high: int, default: int | None) -> int:
    value = data.get(name)
    if value is None:
        if default is None:
            raise Rejected(f"no {name}")
        return default
    if type(value) is int and low <= value <= high:
        return value  # the common case, checked first: this runs for every entry
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(f"{name} is not an integer")
    if not low <= value <= high:
        raise Rejected(f"{name} out of range {low}-{high}")
    return value


def parse_server(key: str, value: str) -> Server:
    """Parse ``/ROOT/NAME/servers/ID``'s value; raise ``Rejected`` naming what is wrong."""
    server_id = key.rsplit("/", 1)[-1]
    if not valid_name(server_id):
        raise Rejected("server ID is not [A-Za-z0-9._-]")
    if len(value) > MAX_VALUE_BYTES:
        raise Rejected(f"value larger than {MAX_VALUE_BYTES} bytes")
    try:
        data = json.loads(value)
    except ValueError:  # also a number of more than 4,300 digits (sys.int_info)
        raise Rejected("value is not JSON") from None
    except RecursionError:
        # A few KB of "[[[[..." exhausts the decoder's stack: one entry must not stop a batch.
        raise Rejected("value is nested too deeply") from None
    if not isinstance(data, dict):
        raise Rejected("value is not a JSON object")
    host = data.get("host")
    if not isinstance(host, str) or not valid_host(host):
        raise Rejected("host is not an IP address or DNS name")
    port = _int_field(data, "port", 1, 65535, None)
    weight = _int_field(data, "weight", 1, MAX_WEIGHT, 1)
    return Server(server_id, key, host, port, weight)


@dataclass(slots=True)
class ServiceIndex:
    """Valid services and their valid servers; ``rejected`` maps each bad key to why."""

    services: dict[str, list[Server]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)


def index_services(
    entries: Iterable[tuple[str, str]],
    names: Iterable[str],
    root: str = DEFAULT_ROOT,
    *,
    resolvable: Callable[[Collection[str]], Collection[str]] | None = None,
    cache: dict[str, tuple[str, Server | str]] | None = None,
    claims: NameClaims | None = None,
) -> ServiceIndex:
    """Index ``entries`` (``(key, value)`` under ``ROOT/*/servers/*``) and service ``names``.

    ``names`` are the directories under ``root``: a service whose servers are all gone
    or invalid is still listed (with no servers), so a template can answer 503 for it.
    ``resolvable(hosts)`` returns the DNS names among ``hosts`` that resolve; without
    it DNS names are accepted as they are. ``cache`` (key -> value and its parse) is
    read and then replaced by this snapshot's entries, so the next call parses only
    what changed. ``claims`` remembers which of two names differing only in case came
    first (see ``NameClaims``); without it the names are judged as if all new. Pure: no
    I/O but what ``resolvable`` does.
    """
    fresh: dict[str, tuple[str, Server | str]] = {}
    root = root.rstrip("/")
    index = ServiceIndex()
    folds: dict[str, list[str]] = {}
    for name in sorted(names):
        if valid_name(name):
            folds.setdefault(name.lower(), []).append(name)
        else:
            index.rejected[f"{root}/{name}"] = BAD_SERVICE_NAME
    claims = claims if claims is not None else NameClaims()
    claims.keep_only(folds.keys())
    for fold, members in folds.items():
        # nginx compares upstream names without case: two would be a duplicate upstream.
        holder = members[0] if len(members) == 1 else claims.judge(fold, members)
        for name in members:
            if name == holder:
                index.services[name] = []
            else:
                index.rejected[f"{root}/{name}"] = case_clash(holder or "")
        if len(members) == 1:
            claims.judge(fold, members)
    parsed: list[tuple[str, Server]] = []
    for key, value in entries:
        if not key.startswith(root + "/"):
            continue
        parts = key[len(root) + 1 :].split("/")
        name = parts[0]
        if name not in index.services:
            continue  # the name itself was rejected (or not listed): logged once above
        if len(parts) != 3 or parts[1] != "servers":
            # Logged once, so a typo (servers/a/b, server/a) is not a silent no-op.
            index.rejected[key] = IGNORED_KEY
            continue
        known = cache.get(key) if cache is not None else None
        if known is not None and known[0] == value:
            result = known[1]
        else:
            try:
                result = parse_server(key, value)
            except Rejected as exc:
                result = str(exc)
            except Exception as exc:  # a parser bug must cost this entry only, not the batch
                log.exception(kv("services.entry.parse_crashed", key=printable(key)))
                result = f"value could not be parsed ({type(exc).__name__})"
        fresh[key] = (value, result)
        if isinstance(result, Server):
            parsed.append((name, result))
        else:
            index.rejected[key] = result
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    dns_names = {s.Host for _, s in parsed if not _is_ip(s.Host)}
    resolved = set(resolvable(dns_names)) if resolvable is not None and dns_names else dns_names
    for name, server in parsed:
        if server.Host in dns_names and server.Host not in resolved:
            index.rejected[server.Key] = "host does not resolve"
            continue
        index.services[name].append(server)
    for servers in index.services.values():
        servers.sort(key=lambda s: s.ID)
        _drop_duplicates(servers, index.rejected)
    return index


def _drop_duplicates(servers: list[Server], rejected: dict[str, str]) -> None:
    """Two IDs registering one address would double its share of traffic: keep the first."""
    seen: set[str] = set()
    keep: list[Server] = []
    for server in servers:
        if server.Addr in seen:
            rejected[server.Key] = "address already registered under another ID"
        else:
            seen.add(server.Addr)
            keep.append(server)
    servers[:] = keep


class RejectLog:
    """Logs each rejected key once for as long as it stays rejected for the same reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, str] = {}

    def report(self, rejected: Mapping[str, str], root: str) -> None:
        """Log what is newly rejected under ``root``; forget keys that are fine or gone."""
        with self._lock:
            for key, reason in rejected.items():
                if self._seen.get(key) != reason:
                    log.warning(kv("services.entry.rejected", key=printable(key), reason=reason))
            prefix = root.rstrip("/") + "/"
            self._seen = {k: v for k, v in self._seen.items() if not k.startswith(prefix)}
            self._seen.update(rejected)


class HostResolver:
    """Which DNS names resolve now, asked in parallel under one deadline, with a short cache.

    nginx resolves upstream names when it loads its config, and one name it cannot
    resolve fails the whole load; so an unresolvable name is treated like a bad value.
    A lookup still running when its deadline passes counts as failed for this render but
    keeps running: the next render takes its answer without waiting again, so a dead
    resolver costs one deadline per name, not one per render.

    Thread safety: one lock guards the cache and the set of names being looked up. It is
    held only to read or update them, never while calling out (``submit``) or waiting, and
    a lookup stores its own answer before its future completes, so a caller that saw the
    future done finds the answer cached. (Storing it from a done callback added under the
    lock could deadlock: a lookup that finished before the callback was added ran it at
    once, in the caller's thread, on the held lock.) ``executor`` runs the lookups; the
    default runs up to 8 at once in daemon threads, which do not hold up the exit.
    """

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        ttl: float = 30.0,
        negative_ttl: float = 5.0,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.timeout = timeout
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._cache: dict[str, tuple[bool, float]] = {}
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._pool = executor

    def __call__(self, hosts: Collection[str]) -> set[str]:
        now = time.monotonic()
        ok: set[str] = set()
        asked: list[str] = []
        with self._lock:
            for host in hosts:
                cached = self._cache.get(host)
                if cached is not None and cached[1] > now:
                    if cached[0]:
                        ok.add(host)
                elif host not in self._pending:
                    self._pending.add(host)
                    asked.append(host)
            if asked and self._pool is None:
                self._pool = DaemonThreadExecutor(8, "muster-dns")
            pool = self._pool
        if not asked:
            return ok
        assert pool is not None
        submitted: list[concurrent.futures.Future[None]] = []
        try:
            for host in asked:
                submitted.append(pool.submit(self._lookup, host))
        finally:
            if len(submitted) < len(asked):  # submit failed (a pool shut down): nothing runs for these
                with self._lock:
                    self._pending.difference_update(asked[len(submitted) :])
        concurrent.futures.wait(submitted, timeout=self.timeout)
        with self._lock:
            ok.update(host for host in asked if self._cache.get(host, (False, 0.0))[0])
        return ok

    def _lookup(self, host: str) -> None:
        good = False
        try:
            good = _resolves(host)
        finally:
            # Stored before the future completes, even if the lookup raised: a host left in
            # ``_pending`` would never be looked up again.
            self._store(host, good)

    def _store(self, host: str, good: bool) -> None:
        with self._lock:
            self._pending.discard(host)
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[host] = (good, time.monotonic() + (self.ttl if good else self.negative_ttl))


def _resolves(host: str) -> bool:
    try:
        return bool(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM))
    except (OSError, UnicodeError):
        return False


class ServiceStore(Protocol):
    """What ``service_funcs`` needs of confd's KV store (``muster.store``)."""

    def lsdir(self, path: str) -> list[str]: ...

    def gets(self, pattern: str) -> list[Any]: ...


DEFAULT_REJECT_LOG = RejectLog()
DEFAULT_RESOLVER = HostResolver()


def service_funcs(
    store: ServiceStore,
    *,
    reject_log: RejectLog = DEFAULT_REJECT_LOG,
    resolvable: Callable[[Collection[str]], Collection[str]] | None = DEFAULT_RESOLVER,
) -> dict[str, GoFunc]:
    """Template functions ``services [ROOT]`` and ``servers NAME [ROOT]`` over ``store``.

    Each root is indexed once per snapshot, so a template calling ``servers`` for every
    service costs time in proportion to the entries, not their square. ``store`` may be a
    slot whose ``.store`` attribute is re-pointed at each new snapshot (the daemon's
    template cache binds functions once and re-executes): the index follows it.
    """
    indexes: dict[str, ServiceIndex] = {}
    parses: dict[str, dict[str, tuple[str, Server | str]]] = {}  # per root, across snapshots
    claims: dict[str, NameClaims] = {}  # per root, across snapshots: the first name keeps it
    # The snapshot the indexes were built from, held so its id cannot be reused meanwhile.
    indexed: list[object] = [None]

    def index(roots: tuple[str, ...]) -> ServiceIndex:
        if len(roots) > 1:
            raise ValueError("at most one root")
        current = getattr(store, "store", store)
        if current is not indexed[0]:
            indexes.clear()
            indexed[0] = current
        root = (roots[0] if roots else DEFAULT_ROOT).rstrip("/") or "/"
        found = indexes.get(root)
        if found is None:
            names = store.lsdir(root)
            pairs = [(kv.Key, kv.Value) for kv in store.gets(f"{root}/*/servers/*")]
            # Keys one level off the layout, to say they are ignored (deeper ones go unsaid).
            pairs += [(kv.Key, kv.Value) for kv in store.gets(f"{root}/*/servers/*/*")]
            pairs += [
                (kv.Key, kv.Value) for kv in store.gets(f"{root}/*/*") if kv.Key.split("/")[-1] != "servers"
            ]
            found = index_services(
                pairs,
                names,
                root,
                resolvable=resolvable,
                cache=parses.setdefault(root, {}),
                claims=claims.setdefault(root, NameClaims()),
            )
            reject_log.report(found.rejected, root)
            indexes[root] = found
        return found

    def services(*root: str) -> GoSlice:
        return GoSlice(sorted(index(root).services), "string")

    def servers(name: str, *root: str) -> GoSlice:
        return GoSlice(index(root).services.get(name, []), Server.go_type)

    return {
        "services": GoFunc(services, (), variadic="string", name="services"),
        "servers": GoFunc(servers, ("string",), variadic="string", name="servers"),
    }
