"""A registry root's service index kept current change by change, for incremental renders.

Why: ``index_services`` reads every entry under a root, and the stock template calls
``servers`` for every service, so each change used to re-index the whole root (90,000
entries at 30,000 services: 0.2-2 s a change, every range body run again). ``LiveRoot``
re-indexes only the services the changed keys belong to and says which answers of the
template functions changed, so the memo runs again only the bodies that read them.

Theory of operation. A service's part of the index is a function of the keys under
``ROOT/NAME/`` and of the other names in its case fold (``NameClaims``: nginx compares
upstream names without case). So ``apply`` re-indexes the fold groups of the changed names
with ``index_services``' own steps, then redoes the root-wide ones on what they need: the
route split check (a split must name a registered service), the panic guard (``update``
with the changed names; it adds the held ones, whose hold may end by time), the reject
log. Names with a server named by DNS are re-indexed on every ``apply``: their addresses
may change with no key changing (the resolver's answer; the daemon renders again), and
the resolver's holding must name every DNS name of the root, as a full index's does.
The published lists are never changed in place, only replaced, so the index shares them.

The result equals a fresh ``rebuild`` over the same store with a guard fed the same
history; tests/unit/registry/test_live.py checks random change sequences for it. Only
clean absolute roots (not "/") over a canonical store can be followed (``followable``):
memkv's listings are plain there.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence

from muster.confd.store import KVStore, path_clean
from muster.registry.guard import PanicGuard
from muster.registry.index import (
    BAD_SERVICE_NAME,
    NameClaims,
    RejectLog,
    Server,
    ServiceIndex,
    _Cache,
    _drop_duplicates,
    _parse_entries,
    _place_servers,
    case_clash,
    check_splits,
    index_services,
)
from muster.registry.route import Route
from muster.registry.schema import is_ip, valid_name

__all__ = ["LiveRoot", "Resolvable", "followable", "root_entries"]

#: What resolves DNS names: the names asked -> the addresses of those that answer.
Resolvable = Callable[[Collection[str]], Mapping[str, Sequence[str]]]


def followable(root: str) -> bool:
    """Whether ``LiveRoot.apply`` can follow ``root`` (a normalised root, see ``LiveRoot``)."""
    return root.startswith("/") and root != "/" and path_clean(root) == root


def root_entries(store: KVStore, root: str, name: str = "*") -> list[tuple[str, str]]:
    """The entries ``index_services`` needs of ``name`` (default: every service) under
    ``root``: its servers, keys one level below them (to say they are ignored) and its
    other keys, e.g. ``route``."""
    pairs = [(kv.Key, kv.Value) for kv in store.gets(f"{root}/{name}/servers/*")]
    pairs += [(kv.Key, kv.Value) for kv in store.gets(f"{root}/{name}/servers/*/*")]
    others = store.gets(f"{root}/{name}/*")
    pairs += [(kv.Key, kv.Value) for kv in others if kv.Key.split("/")[-1] != "servers"]
    return pairs


class LiveRoot:
    """One root's ``ServiceIndex`` (``index``, after the guard) and the sorted service
    names (``names``), rebuilt from a store or brought along a change.

    ``root`` is normalised (no trailing "/", "/" for the top). The answers ``apply``
    reports changed are tokens: ``("servers", root, NAME)``, ``("route_balance", root,
    NAME)``, ``("services", root)``, ``("routing", root)`` and ``("route_conf", root)``.
    """

    def __init__(
        self,
        root: str,
        *,
        resolvable: Resolvable | None,
        guard: PanicGuard[Server] | None,
        reject_log: RejectLog,
    ) -> None:
        self.root = root
        self._base = root.rstrip("/")  # what keys start with, before "/NAME"
        self._resolvable = resolvable
        self._guard = guard
        self._reject_log = reject_log
        self._claims = NameClaims()  # across snapshots: the first name keeps its fold
        self._parses: _Cache = {}  # across snapshots: an unchanged value is not parsed again
        self.index = ServiceIndex()
        self.names: list[str] = []
        self._registered: dict[str, list[Server]] = {}  # valid servers per admitted name, before the guard
        self._routes: dict[str, Route] = {}  # valid routes, before the split check
        self._rejected_of: dict[str, dict[str, str]] = {}  # name -> its rejected keys -> why
        # Case fold -> its valid names that have keys, for folds of two or more names (the
        # claims know each fold's holder; a set per service would cost 9 MB at 30,000).
        self._folds: dict[str, set[str]] = {}
        self._dns: set[str] = set()  # admitted names with a server named by DNS
        self._split_rejected: dict[str, str] = {}  # routes that split to an unregistered service

    def __repr__(self) -> str:
        return f"<LiveRoot {self.root!r} services={len(self.names)}>"

    def _name_of(self, key: str) -> str:
        return key[len(self._base) + 1 :].split("/", 1)[0]

    def rebuild(self, store: KVStore) -> ServiceIndex:
        """Index ``store`` from scratch (the guard still remembers what it published)."""
        base = self._base
        names = store.lsdir(self.root)
        found = index_services(
            root_entries(store, base),
            names,
            self.root,
            resolvable=self._resolvable,
            cache=self._parses,
            claims=self._claims,
            splits=False,
        )
        self._registered = found.services
        self._routes = found.routes
        folds: dict[str, set[str]] = {}
        for name in names:
            if valid_name(name):
                folds.setdefault(name.lower(), set()).add(name)
        self._folds = {fold: members for fold, members in folds.items() if len(members) > 1}
        self._rejected_of = {}
        for key, reason in found.rejected.items():
            self._rejected_of.setdefault(self._name_of(key), {})[key] = reason
        self._dns = {
            self._name_of(key)
            for key, (_, parsed) in self._parses.items()
            if isinstance(parsed, Server) and not is_ip(parsed.Host)
        }
        self._publish(None, routes_changed=True)
        return self.index

    def apply(self, store: KVStore, changed: Collection[str]) -> set[Hashable]:
        """Bring the index from the last store to ``store``, which differs in the ``changed``
        keys (template keys; a superset is fine); return the tokens whose answers changed."""
        base = self._base
        prefix = base + "/"
        group = set(self._dns)
        for key in changed:
            if key.startswith(prefix):
                group.add(key[len(prefix) :].split("/", 1)[0])
                if key not in store:
                    self._parses.pop(key, None)
        admitted = self._admit(store, group)  # group grows by the fold mates
        was_admitted = group & self._registered.keys()
        routes_before = {name: self._routes.get(name) for name in group}
        self._reindex(store, group, admitted)
        routes_changed = admitted != was_admitted or any(
            self._routes.get(name) != route for name, route in routes_before.items()
        )
        return self._publish(group, routes_changed=routes_changed)

    def _admit(self, store: KVStore, group: set[str]) -> set[str]:
        """Judge the names of ``group`` (and their fold mates) as ``index_services`` does:
        record the rejected ones; return the admitted ones (``group`` grows by the mates)."""
        base = self._base
        folds: dict[str, set[str]] = {}
        for name in list(group):
            self._rejected_of.pop(name, None)
            if valid_name(name):
                fold = name.lower()
                mates = folds.get(fold)
                if mates is None:
                    mates = folds[fold] = set(self._folds.get(fold, ()))
                    holder = self._claims.holder(fold)
                    if holder is not None:
                        mates.add(holder)
                mates.add(name)
            elif store.is_dir(f"{base}/{name}"):
                self._rejected_of[name] = {f"{base}/{name}": BAD_SERVICE_NAME}
        admitted: set[str] = set()
        for fold, candidates in folds.items():
            group |= candidates
            members = sorted(name for name in candidates if store.is_dir(f"{base}/{name}"))
            if len(members) > 1:
                self._folds[fold] = set(members)
            else:
                self._folds.pop(fold, None)
            holder = members[0] if len(members) == 1 else self._claims.judge(fold, members)
            if len(members) == 1:
                self._claims.judge(fold, members)
            for name in candidates:
                self._rejected_of.pop(name, None)  # a fold mate's clash may have ended
            for name in members:
                if name == holder:
                    admitted.add(name)
                else:
                    self._rejected_of[name] = {f"{base}/{name}": case_clash(holder or "")}
        return admitted

    def _reindex(self, store: KVStore, group: set[str], admitted: set[str]) -> None:
        """Parse and place the servers and routes of the ``admitted`` names of ``group``."""
        scratch = ServiceIndex(services={name: [] for name in sorted(admitted)})
        entries = [pair for name in scratch.services for pair in root_entries(store, self._base, name)]
        fresh: _Cache = {}
        parsed = _parse_entries(entries, self._base, scratch, self._parses, fresh)
        self._parses.update(fresh)
        _place_servers(parsed, self._resolvable, scratch)
        for servers in scratch.services.values():
            servers.sort(key=lambda s: s.ID)
            _drop_duplicates(servers, scratch.rejected)
        for name in group:
            self._dns.discard(name)
            found = scratch.services.get(name)
            if found is None:
                self._registered.pop(name, None)
            else:
                self._registered[name] = found
            route = scratch.routes.get(name)
            if route is None:
                self._routes.pop(name, None)
            else:
                self._routes[name] = route
        self._dns.update(name for name, server in parsed if not is_ip(server.Host))
        for key, reason in scratch.rejected.items():
            self._rejected_of.setdefault(self._name_of(key), {})[key] = reason

    def _publish(self, group: set[str] | None, *, routes_changed: bool) -> set[Hashable]:
        """Pass the registered servers through the guard into ``index`` (``group``: the
        names that may have changed, None for all); return the changed answers' tokens."""
        root = self.root
        index = self.index
        before = index.services
        if self._guard is not None:
            published, touched = self._guard.update(self._registered, group)
        else:
            published = self._registered
            names = before.keys() | published.keys() if group is None else group
            # () for a name not listed: never equal to a list, so a name coming or going counts.
            touched = {n for n in names if before.get(n, ()) != published.get(n, ())}
        tokens: set[Hashable] = {("servers", root, name) for name in touched}
        if group is None:
            index.services = dict(published)
            self.names = sorted(index.services)
            tokens.add(("services", root))
        else:
            services = index.services
            for name in touched:
                servers = published.get(name)
                if servers is None:
                    if services.pop(name, None) is not None:
                        del self.names[bisect.bisect_left(self.names, name)]
                        tokens.add(("services", root))
                else:
                    if name not in services:
                        bisect.insort(self.names, name)
                        tokens.add(("services", root))
                    services[name] = servers
        if routes_changed or group is None:
            routes_before = index.routes
            index.routes = dict(self._routes)
            split_rejected: dict[str, str] = {}
            check_splits(index.routes, self._registered.keys(), split_rejected, self._base)
            tokens.update(
                ("route_balance", root, name)
                for name in routes_before.keys() | index.routes.keys()
                if routes_before.get(name) != index.routes.get(name)
            )
            self._split_rejected = split_rejected
        if tokens or routes_changed:
            # The route table lists every service, its route and whether it has servers.
            tokens.update((("routing", root), ("route_conf", root)))
        index.rejected = {k: v for found in self._rejected_of.values() for k, v in found.items()}
        index.rejected.update(self._split_rejected)
        self._reject_log.report(index.rejected, root)
        return tokens
