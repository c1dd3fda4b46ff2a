"""``LiveRoot.apply`` (the index brought along a change) against ``rebuild`` (from scratch).

Random change sequences over a small registry universe that reaches every rule of the
index: bad values, bad and case-clashing names, stray keys, routes and splits, DNS names
whose answers change with no key changing, duplicates, and the panic guard holding mass
removals until its grace ends. Each step, one root follows the change and a twin rebuilds
from the same store with its own guard and claims fed the same history; both must publish
the same services, servers, routes and rejections, and ``apply`` must name every answer
that changed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Mapping, Sequence

import pytest

from muster.confd.store import KVStore
from muster.registry.guard import GuardSettings, PanicGuard
from muster.registry.index import RejectLog, Server
from muster.registry.live import LiveRoot, followable

NAMES = ["web", "Web", "api", "db", "a b", "x*y", "cache"]
IDS = ["a", "b", "c", "d"]
HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "fe80::1", "svc.example", "gone.example", "bad host;"]
ROUTES = [
    '{"paths": ["/v1/"]}',
    '{"split": {"api": 10}}',
    '{"split": {"nowhere": 5}}',
    '{"balance": "least_conn"}',
    '{"paths": "nope"}',
    "not json",
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Dns:
    """A resolver stand-in whose answers change between steps, as a real one's do."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[str, ...]] = {"svc.example": ("10.1.0.1",)}
        self.asked: list[frozenset[str]] = []

    def __call__(self, hosts: Collection[str]) -> Mapping[str, Sequence[str]]:
        self.asked.append(frozenset(hosts))
        return {h: self.answers[h] for h in hosts if h in self.answers}


def _value(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.75:
        data: dict[str, object] = {"host": rng.choice(HOSTS), "port": rng.choice([80, 81, 8080])}
        if rng.random() < 0.2:
            data["weight"] = rng.choice([1, 2, 0])
        return json.dumps(data)
    return rng.choice(["", "[1]", '{"host": "10.0.0.9"}', "{"])


def _key(rng: random.Random) -> str:
    name = rng.choice(NAMES)
    roll = rng.random()
    if roll < 0.75:
        return f"/services/{name}/servers/{rng.choice(IDS)}"
    if roll < 0.85:
        return f"/services/{name}/route"
    if roll < 0.9:
        return f"/services/{name}/servers/{rng.choice(IDS)}/deep"
    if roll < 0.95:
        return f"/services/{name}/stray"
    return rng.choice(["/services", "/other/x", f"/services/{name}"])


def _published(live: LiveRoot) -> tuple[object, ...]:
    index = live.index
    servers = {name: [repr(s) for s in found] for name, found in index.services.items()}
    return (servers, live.names, sorted(index.routes), dict(sorted(index.rejected.items())))


def _answers(live: LiveRoot) -> dict[tuple[str, ...], object]:
    """What each template function would answer now, by token."""
    root = live.root
    out: dict[tuple[str, ...], object] = {("services", root): list(live.names)}
    for name in NAMES:
        out[("servers", root, name)] = [repr(s) for s in live.index.services.get(name, [])]
        out[("route_balance", root, name)] = repr(live.index.routes.get(name))
    return out


def _sequence(seed: int, guarded: bool) -> None:
    rng = random.Random(seed)
    clock = Clock()
    dns = Dns()
    settings = GuardSettings(grace=30.0, window=10.0)

    def guard() -> PanicGuard[Server] | None:
        return PanicGuard(settings, clock=clock) if guarded else None

    values: dict[str, str] = {}
    for _ in range(rng.randrange(0, 25)):
        key = _key(rng)
        values[key] = rng.choice(ROUTES) if key.endswith("/route") else _value(rng)
    follower = LiveRoot("/services", resolvable=dns, guard=guard(), reject_log=RejectLog())
    twin = LiveRoot("/services", resolvable=dns, guard=guard(), reject_log=RejectLog())
    store = KVStore(values)
    follower.rebuild(store)
    twin.rebuild(store)
    for step in range(12):
        changed: list[str] = []
        for _ in range(rng.choice([0, 1, 1, 2, 3, 8])):
            key = _key(rng)
            roll = rng.random()
            if roll < 0.35 and values:
                key = rng.choice(sorted(values))
                del values[key]
            elif key.endswith("/route"):
                values[key] = rng.choice(ROUTES)
            else:
                values[key] = _value(rng)
            changed.append(key)
        if rng.random() < 0.2:  # a DNS answer moves, or a name stops resolving
            dns.answers["svc.example"] = rng.choice([("10.1.0.1",), ("10.1.0.2", "10.1.0.1"), ()])
        if rng.random() < 0.3:
            clock.now += rng.choice([1.0, 15.0, 40.0])
        store = KVStore(values)
        if not store.canonical:
            return  # LiveRoot follows canonical stores only (the renderer starts over otherwise)
        before = _answers(follower)
        tokens = follower.apply(store, changed)
        twin.rebuild(store)
        context = f"seed {seed} step {step} changed {changed}"
        assert _published(follower) == _published(twin), context
        after = _answers(follower)
        missed = [t for t in after if after[t] != before[t] and t not in tokens]
        assert not missed, f"{context}: answers changed but not reported: {missed}"


@pytest.mark.parametrize("block", range(10))
def test_apply_equals_rebuild_without_guard(block: int) -> None:
    for seed in range(block * 40, block * 40 + 40):
        _sequence(seed, guarded=False)


@pytest.mark.parametrize("block", range(10))
def test_apply_equals_rebuild_with_the_guard(block: int) -> None:
    for seed in range(block * 40, block * 40 + 40):
        _sequence(seed, guarded=True)


def test_the_dns_holding_names_every_dns_host_of_the_root() -> None:
    dns = Dns()
    live = LiveRoot("/services", resolvable=dns, guard=None, reject_log=RejectLog())
    values = {
        "/services/web/servers/a": '{"host": "svc.example", "port": 80}',
        "/services/api/servers/a": '{"host": "10.0.0.1", "port": 80}',
    }
    live.rebuild(KVStore(values))
    values["/services/api/servers/b"] = '{"host": "10.0.0.2", "port": 80}'
    dns.answers["svc.example"] = ("10.1.0.9",)
    tokens = live.apply(KVStore(values), ["/services/api/servers/b"])
    # web's key did not change, but its address did: re-indexed, and the resolver asked
    # for every DNS name the root serves (its holding is what it keeps fresh).
    assert dns.asked[-1] == {"svc.example"}
    assert [s.Addr for s in live.index.services["web"]] == ["10.1.0.9:80"]
    assert ("servers", "/services", "web") in tokens


def test_only_clean_absolute_roots_are_followed() -> None:
    assert followable("/services")
    assert not followable("/")
    assert not followable("services")
    assert not followable("/a/../b")
