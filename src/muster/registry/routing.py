"""The route table: which service serves a request, by host and longest path prefix.

Both data planes route from this one table, so they agree on every request: the reload
plane renders it as nginx maps, the Lua plane pushes it to shared memory. Rules:

* A request's host picks one host key: the exact host if some route names it, else the
  longest ``*.`` wildcard that covers it (``*.example.com`` covers ``a.b.example.com``,
  not ``example.com``), else any host (``""``). Exact beats wildcard beats any host.
* That key's entries are its own prefixes plus those of the keys that cover it (longer
  wildcards first, any host last) that no more specific key's prefix shadows: a request
  that a more specific route matches never reaches a less specific one.
* Among them the longest prefix matching the path (``$uri``) wins; none matching means
  the route table does not know the request (nginx's own locations answer it).

Two services claiming the same host and prefix: a route in the registry beats a default
route, then the service name that sorts first wins. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from muster.registry.route import Route, default_route

__all__ = ["Entry", "RouteTable", "build_table", "host_key", "strip"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One (service, prefix) a route serves; ``id`` names it in nginx (``e<id>``)."""

    id: int
    service: str
    prefix: str
    strip: bool


@dataclass(slots=True)
class RouteTable:
    """``hosts``: host key -> its entries, longest prefix first; ``routes``: every service's route."""

    hosts: dict[str, list[Entry]] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)
    routes: dict[str, Route] = field(default_factory=dict)

    def lookup(self, host: str, uri: str) -> Entry | None:
        """The entry serving ``host`` (lower case, no port) and ``uri``; None if none does."""
        for entry in self.hosts.get(host_key(self.hosts, host), ()):
            if uri.startswith(entry.prefix):
                return entry
        return None


def host_key(keys: Collection[str], host: str) -> str:
    """The key of ``keys`` that ``host`` picks: exact, else the longest wildcard, else ``""``."""
    if host in keys:
        return host
    rest = host
    while "." in rest:
        rest = rest.split(".", 1)[1]
        if f"*.{rest}" in keys:
            return f"*.{rest}"
    return ""


def _covering(keys: Collection[str], key: str) -> list[str]:
    """``key`` and the keys covering it, most specific first, ``""`` last."""
    out = [key]
    rest = key[2:] if key.startswith("*.") else key
    while "." in rest:
        rest = rest.split(".", 1)[1]
        if f"*.{rest}" in keys:
            out.append(f"*.{rest}")
    if key:
        out.append("")
    return out


def strip(entry: Entry, uri: str) -> str:
    """The path the upstream gets for ``uri``: the prefix cut off (then a leading ``/``) or not."""
    if not entry.strip:
        return uri
    rest = uri[len(entry.prefix) :]
    return rest if rest.startswith("/") else "/" + rest


def build_table(services: Collection[str], routes: Mapping[str, Route]) -> RouteTable:
    """The table of ``services`` (valid names); ``routes`` holds their valid routes, if any."""
    table = RouteTable()
    table.routes = {name: routes.get(name) or default_route(name) for name in sorted(services)}
    # Registry routes claim first, then default ones; by name within each.
    order = sorted(table.routes.values(), key=lambda r: (r.service not in routes, r.service))
    own: dict[str, dict[str, Entry]] = {"": {}}
    ids: dict[tuple[str, str], Entry] = {}
    for route in order:
        for host in route.hosts or ("",):
            for prefix in route.prefixes:
                claimed = own.setdefault(host, {})
                if prefix in claimed:
                    continue
                entry = ids.get((route.service, prefix))
                if entry is None:
                    entry = ids[(route.service, prefix)] = Entry(
                        len(ids), route.service, prefix, route.strip_prefix
                    )
                claimed[prefix] = entry
    table.entries = list(ids.values())
    for key in own:
        merged: list[Entry] = []
        above: list[str] = []  # prefixes of the more specific keys
        for tier in _covering(own.keys(), key):
            mine = list(own.get(tier, {}).values())
            merged.extend(e for e in mine if not any(e.prefix.startswith(q) for q in above))
            above.extend(e.prefix for e in mine)
        merged.sort(key=lambda e: (-len(e.prefix), e.prefix))
        table.hosts[key] = merged
    return table
