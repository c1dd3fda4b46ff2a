"""The v2 watch replica's event application, without a server (events fed by hand)."""

from __future__ import annotations

import asyncio

from muster.backends.etcd.v2_client import EtcdV2Client
from muster.backends.etcd.v2_mirror import V2Mirror
from muster.backends.options import BackendOptions


def mirror() -> V2Mirror:
    options = BackendOptions()
    seeds = {"/s": ({"/s/a/1": "x", "/s/a/2": "y", "/s/b": "z"}, 10), "/t": ({}, 12)}
    return V2Mirror(EtcdV2Client(options), options, seeds)


def ev(action: str, key: str, index: int, value: str | None = None, **extra: object) -> dict[str, object]:
    node: dict[str, object] = {"key": key, "modifiedIndex": index}
    if value is not None:
        node["value"] = value
    node.update(extra)
    return {"action": action, "node": node}


def test_apply_v2_events() -> None:
    m = mirror()
    assert m.seed_revision == 10
    m.apply("/s", ev("set", "/s/c", 11, "new"))
    m.apply("/s", ev("delete", "/s/a", 12, dir=True))  # a recursive directory delete
    m.apply("/s", ev("expire", "/s/b", 13))
    assert m.values["/s"] == {"/s/c": "new"} and m.latest_change == 13
    refresh = ev("update", "/s/c", 14, "new")
    refresh["prevNode"] = {"key": "/s/c", "value": "new"}
    m.apply("/s", refresh)
    m.apply("/s", ev("set", "/s/dir", 15, dir=True))
    assert m.latest_change == 13 and m.applied["/s"] == 15  # no value changed
    m.apply("/s", ev("set", "/s/c", 12, "replayed"))
    assert m.values["/s"]["/s/c"] == "new"
    m.apply("/t", ev("create", "/t/x", 16, "1"))
    snap = m.snapshot(["/s", "/t"])
    assert snap.values == {"/s/c": "new", "/t/x": "1"} and snap.revision == 16
    assert m.snapshot(["/t"]).values == {"/t/x": "1"}


def test_serves_only_followed_and_connected_prefixes() -> None:
    m = mirror()
    assert m.serves(["/s/a"]) and m.serves(["/s", "/t"]) and not m.serves(["/u"])
    m._set_connected("/t", False)
    assert not m.serves(["/s"])


async def test_wait_changed() -> None:
    m = mirror()
    waiter = asyncio.create_task(m.wait_changed(10))
    await asyncio.sleep(0)
    assert not waiter.done()
    m.apply("/s", ev("set", "/s/q", 20, "v"))
    assert await asyncio.wait_for(waiter, 1) == 20


def test_changes_follow_v2_events_including_directory_deletes() -> None:
    m = mirror()
    start = m.changes(["/s", "/t"], None)
    assert start.full and start.values == {"/s/a/1": "x", "/s/a/2": "y", "/s/b": "z"} and start.revision == 10
    m.apply("/s", ev("delete", "/s/a", 13, dir=True))
    m.apply("/t", ev("create", "/t/x", 14, "1"))
    refresh = ev("update", "/s/b", 15, "z")
    refresh["prevNode"] = {"key": "/s/b", "value": "z"}
    m.apply("/s", refresh)  # a TTL refresh changes nothing
    changes = m.changes(["/s", "/t"], start.cursor)
    assert changes.values == {"/s/a/1": None, "/s/a/2": None, "/t/x": "1"} and changes.revision == 14
    assert m.changes(["/t"], start.cursor).values == {"/t/x": "1"}
