"""The template functions over the service registry: ``services``, ``servers`` and the route ones.

They answer from a ``ServiceIndex`` per registry root (``muster.registry.index``): a
template calling ``servers`` for every service costs time in proportion to the entries,
not their square. Over a memoised, incremental render (resources/incremental.py) each
answer is a recorded read, and the index follows each change (``muster.registry.live``),
so a change re-runs only the template bodies whose answers it changed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from typing import Any, Final, Protocol

from muster.confd.store import KVStore
from muster.golang.values import GoFunc, GoSlice
from muster.registry import routeconf
from muster.registry.guard import Guards
from muster.registry.index import DEFAULT_REJECT_LOG, DEFAULT_RESOLVER, RejectLog, Server, ServiceIndex
from muster.registry.live import LiveRoot, Resolvable, followable
from muster.registry.resolve import HostResolver
from muster.registry.routing import RouteTable, build_table
from muster.registry.schema import DEFAULT_ROOT

__all__ = ["SERVICE_READS", "ServiceStore", "service_funcs"]

#: The functions whose answers are recorded reads when the store slot records them.
SERVICE_READS: Final = frozenset("services servers routing route_conf route_balance".split())

#: ``follow``'s callback: (old store, new store, changed keys) -> the tokens whose answers
#: changed, or None when the memo must start over.
Follower = Callable[[Any, Any, Collection[str]], Collection[Hashable] | None]


class ServiceStore(Protocol):
    """What ``service_funcs`` needs of its store: a ``KVStore``, or a slot whose ``store``
    attribute is re-pointed at each snapshot. A slot that also has ``note(token)`` (record
    a read) and ``follow(callback)`` (hear of each snapshot's changed keys) gets memoisable
    answers; see ``resources.incremental.StoreReads``."""

    def lsdir(self, path: str) -> list[str]: ...

    def gets(self, pattern: str) -> list[Any]: ...


def service_funcs(
    store: ServiceStore,
    *,
    reject_log: RejectLog = DEFAULT_REJECT_LOG,
    resolvable: Resolvable | None = DEFAULT_RESOLVER,
    guards: Guards | None = None,
) -> dict[str, GoFunc]:
    """Template functions ``services [ROOT]`` and ``servers NAME [ROOT]`` over ``store``,
    and for routes (``ROOT/NAME/route``): ``routing`` (whether any service has one),
    ``route_conf "http"|"server"`` (the route table's nginx lines, ``muster.registry.routeconf``)
    and ``route_balance NAME`` (its upstream's balancing line).

    Each root is indexed once per snapshot. With a ``HostResolver``, each root's DNS names
    are held (kept fresh) while these funcs live. With ``guards``, each root's servers pass
    a ``PanicGuard`` (mass removals stay routed).
    """
    roots = _RootIndexes(store, reject_log, resolvable, guards)
    table = roots.table
    note: Callable[[Hashable], None] = getattr(store, "note", None) or (lambda token: None)

    def services(*root: str) -> GoSlice:
        live = roots.live(root)
        note(("services", live.root))
        return GoSlice(live.names, "string")

    def routing(*root: str) -> bool:
        live = roots.live(root)
        note(("routing", live.root))
        return bool(live.index.routes)

    def route_conf(level: str, *root: str) -> str:
        note(("route_conf", roots.live(root).root))
        found, routes = table(root)
        live = lambda name: bool(found.services.get(name))  # noqa: E731
        if level == "http":
            return routeconf.http_conf(routes, live)
        if level == "server":
            return routeconf.server_conf(routes, live)
        raise ValueError("route_conf takes http or server")

    def route_balance(name: str, *root: str) -> str:
        live = roots.live(root)
        note(("route_balance", live.root, name))
        route = live.index.routes.get(name)
        return routeconf.balance_directive(route) if route is not None else ""

    def servers(name: str, *root: str) -> GoSlice:
        live = roots.live(root)
        note(("servers", live.root, name))
        return GoSlice(live.index.services.get(name, []), Server.go_type)

    return {
        "services": GoFunc(services, (), variadic="string", name="services"),
        "servers": GoFunc(servers, ("string",), variadic="string", name="servers"),
        "routing": GoFunc(routing, (), variadic="string", name="routing"),
        "route_conf": GoFunc(route_conf, ("string",), variadic="string", name="route_conf"),
        "route_balance": GoFunc(route_balance, ("string",), variadic="string", name="route_balance"),
    }


class _RootIndexes:
    """Each root's ``LiveRoot``, current for the store's snapshot: built on first use,
    brought along each change when the slot reports changes (``follow``), else rebuilt
    for each new snapshot. What a root keeps across snapshots (parses, case claims, DNS
    holdings, its guard) lives in its ``LiveRoot``."""

    def __init__(
        self,
        store: ServiceStore,
        reject_log: RejectLog,
        resolvable: Resolvable | None,
        guards: Guards | None,
    ) -> None:
        self._store = store
        self._reject_log = reject_log
        self._resolvable = resolvable
        self._guards = guards
        self._live: dict[str, LiveRoot] = {}  # per root, across snapshots
        self._current: set[str] = set()  # the roots indexed from the snapshot ``_indexed``
        # The snapshot the indexes are of, held so its id cannot be reused meanwhile.
        self._indexed: object = None
        self._tables: dict[str, RouteTable] = {}  # per root, of the current indexes
        follow: Callable[[Follower], None] | None = getattr(store, "follow", None)
        if follow is not None:
            follow(self.follow)

    def live(self, roots: tuple[str, ...]) -> LiveRoot:
        """The ``LiveRoot`` of the root in ``roots`` (at most one; default ``DEFAULT_ROOT``),
        current for the store's snapshot."""
        if len(roots) > 1:
            raise ValueError("at most one root")
        current = getattr(self._store, "store", self._store)
        if current is not self._indexed:
            self._current.clear()
            self._tables.clear()
            self._indexed = current
        root = (roots[0] if roots else DEFAULT_ROOT).rstrip("/") or "/"
        live = self._live.get(root)
        if live is None:
            live = self._live[root] = LiveRoot(
                root,
                resolvable=_held(self._resolvable),
                guard=self._guards.new() if self._guards is not None else None,
                reject_log=self._reject_log,
            )
        if root not in self._current:
            live.rebuild(current)  # type: ignore[arg-type]  # a KVStore, or what quacks like one
            self._current.add(root)
        return live

    def follow(self, old: object, new: KVStore, changed: Collection[str]) -> set[Hashable] | None:
        """The store moved from ``old`` to ``new`` (which differ in the ``changed`` keys):
        bring each current root along; the tokens whose answers changed, or None when
        the memo must start over (a root that cannot be followed was rebuilt)."""
        if self._indexed is not old:
            return set()  # nothing is current: ``live`` rebuilds from ``new`` on first use
        self._indexed = new
        tokens: set[Hashable] = set()
        rebuilt = False
        for root in self._current:
            live = self._live[root]
            if followable(root) and new.canonical:
                tokens |= live.apply(new, changed)
            else:
                live.rebuild(new)
                rebuilt = True
        if tokens or rebuilt:
            self._tables.clear()
        return None if rebuilt else tokens

    def table(self, roots: tuple[str, ...]) -> tuple[ServiceIndex, RouteTable]:
        """The index of the root in ``roots`` and its route table, built once per index."""
        live = self.live(roots)
        built = self._tables.get(live.root)
        if built is None:
            built = self._tables[live.root] = build_table(live.index.services.keys(), live.index.routes)
        return live.index, built


def _held(resolvable: Resolvable | None) -> Resolvable | None:
    """``resolvable``, holding the names it is last asked for when it is a ``HostResolver``
    (the holding lives as long as the returned function)."""
    if not isinstance(resolvable, HostResolver):
        return resolvable
    resolver = resolvable
    holding = resolver.holding()
    return lambda hosts: resolver.addresses(hosts, holding=holding)
