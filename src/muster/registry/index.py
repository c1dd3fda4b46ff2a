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
  resolves (see below).
* ``port``: an integer 1-65535 (a string of digits is accepted). ``weight``: optional
  integer 1-1000, default 1. Other fields are ignored.

Templates call ``services`` (valid service names, sorted) and ``servers NAME`` (its valid
servers as ``Server`` structs with ``.ID .Key .Host .Port .Weight .Addr``, sorted by ID),
both taking an optional root (default ``/services``). The pure core is ``index_services``;
the data plane uses it too, so both modes accept exactly the same entries.

DNS names are resolved by muster, never by nginx: ``.Host`` is the name as registered and
``.Addr`` an address it resolved to (sorted, IPv4 first), one ``Server`` per address, as
nginx makes one peer per address of a name. So nginx resolves nothing at ``nginx -t`` or
reload time, where a slow name used to delay, and a dead one fail, every change.
``HostResolver`` answers from its last good answer while a background lookup refreshes
it; only a name it never saw waits, at most ``RESOLVE_DEADLINE``; a name with no answer
costs its own entries (rejected as ``host does not resolve``, logged once per change of
state); and whoever subscribed hears of every new answer (the daemon renders again).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from muster.golang.values import GoStruct
from muster.log import kv, printable
from muster.registry import routeconf as routeconf
from muster.registry.resolve import (  # re-exported: their home before registry/
    HOST_EVENTS,
    RESOLVE_DEADLINE,
    Holding,
    HostResolver,
    ResolveEvents,
    lookup_addresses,
)
from muster.registry.route import Route, RouteRejected, parse_route
from muster.registry.schema import (
    DEFAULT_ROOT,
    MAX_VALUE_BYTES,
    MAX_WEIGHT,
    is_ip as _is_ip,
    valid_host,
    valid_name,
)

__all__ = [
    "BAD_SERVICE_NAME",
    "DEFAULT_ROOT",
    "HOST_EVENTS",
    "Holding",
    "HostResolver",
    "IGNORED_KEY",
    "NameClaims",
    "RESOLVE_DEADLINE",
    "RejectLog",
    "ResolveEvents",
    "Route",
    "Server",
    "ServiceIndex",
    "case_clash",
    "check_splits",
    "index_services",
    "lookup_addresses",
    "parse_server",
    "valid_host",
    "valid_name",
]

log = logging.getLogger(__name__)


class Rejected(ValueError):
    """Why one registry entry was left out."""


class Server(GoStruct):
    """One valid server of a service, as templates see it."""

    go_type: ClassVar[str] = "services.Server"
    go_fields: ClassVar[tuple[str, ...]] = ("ID", "Key", "Host", "Port", "Weight", "Addr")
    __slots__ = ("ID", "Key", "Host", "Port", "Weight", "Addr")

    def __init__(
        self, id: str, key: str, host: str, port: int, weight: int = 1, address: str | None = None
    ) -> None:
        self.ID = id
        self.Key = key
        self.Host = host
        self.Port = port
        self.Weight = weight
        # ``address``: what a DNS-named host resolved to; nginx is given it, never the name.
        ip = host if address is None else address
        # IPv6 addresses need brackets wherever a port follows.
        self.Addr = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"

    def resolved(self, address: str) -> Server:
        """This server at ``address``, one of its host name's addresses."""
        return Server(self.ID, self.Key, self.Host, self.Port, self.Weight, address)

    def __repr__(self) -> str:
        return f"Server({self.ID!r}, {self.Addr!r}, weight={self.Weight})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Server):
            return NotImplemented
        return (self.ID, self.Key, self.Host, self.Port, self.Weight, self.Addr) == (
            other.ID,
            other.Key,
            other.Host,
            other.Port,
            other.Weight,
            other.Addr,
        )

    def __hash__(self) -> int:
        return hash((self.Key, self.Host, self.Port, self.Weight, self.Addr))


BAD_SERVICE_NAME = "service name is not [A-Za-z0-9._-]"
IGNORED_KEY = "ignored: not ROOT/NAME/servers/ID or ROOT/NAME/route"


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

    def holder(self, fold: str) -> str | None:
        """The name holding ``fold`` now, if any."""
        return self._holders.get(fold)

    def keep_only(self, folds: Collection[str]) -> None:
        """Forget the folds no name holds any more."""
        for fold in self._holders.keys() - folds:
            del self._holders[fold]


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
    """Valid services, their valid servers and valid routes (``ROOT/NAME/route``, see
    ``muster.registry.route``); ``rejected`` maps each bad key to why."""

    services: dict[str, list[Server]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)


def check_splits(
    routes: dict[str, Route], services: Collection[str], rejected: dict[str, str], root: str
) -> None:
    """Drop (and reject) each route that splits traffic to a service not in ``services``."""
    for name, route in list(routes.items()):
        missing = [target for target, _ in route.split if target not in services]
        if missing:
            del routes[name]
            rejected[f"{root}/{name}/route"] = f"route split: service {missing[0]} is not registered"


#: Parses kept across snapshots: key -> (its value, what it parsed to or why it was rejected).
_Cache = dict[str, tuple[str, Server | Route | str]]


def index_services(
    entries: Iterable[tuple[str, str]],
    names: Iterable[str],
    root: str = DEFAULT_ROOT,
    *,
    resolvable: Callable[[Collection[str]], Mapping[str, Sequence[str]]] | None = None,
    cache: _Cache | None = None,
    claims: NameClaims | None = None,
    splits: bool = True,
) -> ServiceIndex:
    """Index ``entries`` (``(key, value)`` under ``ROOT/*/servers/*``) and service ``names``.

    ``names`` are the directories under ``root``: a service whose servers are all gone
    or invalid is still listed (with no servers), so a template can answer 503 for it.
    ``resolvable(hosts)`` maps the DNS names among ``hosts`` that resolve to their
    addresses: a server named by one becomes a server per address (``.Addr``), and one
    whose name is missing is rejected; without it DNS names are kept as they are (the Lua
    data plane resolves them itself). ``cache`` (key -> value and its parse) is
    read and then replaced by this snapshot's entries, so the next call parses only
    what changed. ``claims`` remembers which of two names differing only in case came
    first (see ``NameClaims``); without it the names are judged as if all new. Routes
    that split to a service not among ``names`` are rejected unless ``splits`` is false
    (the caller indexes a part of the registry and checks them itself). Pure: no I/O but
    what ``resolvable`` does.
    """
    root = root.rstrip("/")
    index = ServiceIndex()
    _admit_names(names, root, claims if claims is not None else NameClaims(), index)
    fresh: _Cache = {}
    parsed = _parse_entries(entries, root, index, cache or {}, fresh)
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    if splits:
        check_splits(index.routes, index.services.keys(), index.rejected, root)
    _place_servers(parsed, resolvable, index)
    for servers in index.services.values():
        servers.sort(key=lambda s: s.ID)  # stable: a name's addresses keep their order
        _drop_duplicates(servers, index.rejected)
    return index


def _admit_names(names: Iterable[str], root: str, claims: NameClaims, index: ServiceIndex) -> None:
    """List each valid name in ``index.services``; reject bad ones and case clashes."""
    folds: dict[str, list[str]] = {}
    for name in sorted(names):
        if valid_name(name):
            folds.setdefault(name.lower(), []).append(name)
        else:
            index.rejected[f"{root}/{name}"] = BAD_SERVICE_NAME
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


def _parse_entries(
    entries: Iterable[tuple[str, str]], root: str, index: ServiceIndex, cache: _Cache, fresh: _Cache
) -> list[tuple[str, Server]]:
    """Parse each entry of an admitted service, reusing ``cache``'s parse of an unchanged
    value and recording every parse into ``fresh``: routes go to ``index.routes``, bad
    entries to ``index.rejected``; return the servers."""
    parsed: list[tuple[str, Server]] = []
    for key, value in entries:
        if not key.startswith(root + "/"):
            continue
        parts = key[len(root) + 1 :].split("/")
        name = parts[0]
        if name not in index.services:
            continue  # the name itself was rejected (or not listed): logged once above
        if len(parts) == 2 and parts[1] == "route":
            kind = _ROUTE
        elif len(parts) == 3 and parts[1] == "servers":
            kind = _SERVER
        else:
            # Logged once, so a typo (servers/a/b, server/a) is not a silent no-op.
            index.rejected[key] = IGNORED_KEY
            continue
        known = cache.get(key)
        if known is None or known[0] != value:
            known = (value, _parse(name, key, value, kind))
        fresh[key] = known
        result = known[1]
        if isinstance(result, Server):
            parsed.append((name, result))
        elif isinstance(result, Route):
            index.routes[name] = result
        else:
            index.rejected[key] = result
    return parsed


@dataclass(frozen=True, slots=True)
class _Kind:
    """How to parse one kind of entry, and what to say when its parser crashes."""

    parse: Callable[[str, str, str], Server | Route]  # (name, key, value)
    rejected: type[ValueError]
    crashed_event: str
    crashed_reason: str


_ROUTE = _Kind(
    lambda name, key, value: parse_route(name, value),
    RouteRejected,
    "services.route.parse_crashed",
    "route could not be parsed",
)
_SERVER = _Kind(
    lambda name, key, value: parse_server(key, value),
    Rejected,
    "services.entry.parse_crashed",
    "value could not be parsed",
)


def _parse(name: str, key: str, value: str, kind: _Kind) -> Server | Route | str:
    """``key``'s parse, or why it was rejected."""
    try:
        return kind.parse(name, key, value)
    except kind.rejected as exc:
        return str(exc)
    except Exception as exc:  # a parser bug must cost this entry only, not the batch
        log.exception(kv(kind.crashed_event, key=printable(key)))
        return f"{kind.crashed_reason} ({type(exc).__name__})"


def _place_servers(
    parsed: list[tuple[str, Server]],
    resolvable: Callable[[Collection[str]], Mapping[str, Sequence[str]]] | None,
    index: ServiceIndex,
) -> None:
    """Add each server to its service: one per address of a DNS name when ``resolvable``
    is given (rejected if the name does not resolve), else as registered."""
    dns_names = {s.Host for _, s in parsed if not _is_ip(s.Host)}
    addresses = resolvable(dns_names) if resolvable is not None and dns_names else {}
    for name, server in parsed:
        if resolvable is None or server.Host not in dns_names:
            index.services[name].append(server)
        elif found := addresses.get(server.Host):
            index.services[name].extend(server.resolved(address) for address in found)
        else:
            index.rejected[server.Key] = "host does not resolve"


def _drop_duplicates(servers: list[Server], rejected: dict[str, str]) -> None:
    """Two IDs registering one address would double its share of traffic: keep the first."""
    seen: set[str] = set()
    keep: list[Server] = []
    dropped: list[str] = []
    for server in servers:
        if server.Addr in seen:
            dropped.append(server.Key)
        else:
            seen.add(server.Addr)
            keep.append(server)
    # A DNS-named server keeps its entry while any of its addresses is its own.
    kept = {server.Key for server in keep}
    for key in dropped:
        if key not in kept:
            rejected[key] = "address already registered under another ID"
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


DEFAULT_REJECT_LOG = RejectLog()
DEFAULT_RESOLVER = HostResolver()
