"""The watch replica's event application, without a server (events fed by hand)."""

from __future__ import annotations

import asyncio

import pytest

from muster.backends.base import Snapshot
from muster.backends.etcd.v3_client import EtcdV3Client, WatchEvent, WatchResponse
from muster.backends.etcd.v3_mirror import Mirror
from muster.backends.options import BackendOptions


def mirror(prefixes: tuple[str, ...] = ("/a", "/c"), values: dict[str, str] | None = None) -> Mirror:
    options = BackendOptions()
    m = Mirror(EtcdV3Client(options), options, prefixes)
    m.values = dict(values or {})
    m.revision = m.start_revision = 10
    m.connected = True
    return m


def put(key: str, value: str, rev: int) -> WatchEvent:
    return WatchEvent("PUT", key.encode(), value.encode(), rev)


def test_apply_puts_deletes_and_filters_the_covering_range() -> None:
    m = mirror(values={"/a/x": "1"})
    m._apply(WatchResponse(0, 13, events=[put("/a/y", "2", 11), put("/b/noise", "n", 12),
                                          WatchEvent("DELETE", b"/a/x", b"", 13)]))  # fmt: skip
    assert m.values == {"/a/y": "2"}
    assert (m.revision, m.latest_change) == (13, 13)
    m._apply(WatchResponse(0, 14, events=[put("/b/more", "n", 14)]))
    assert (m.revision, m.latest_change) == (14, 13)  # noise advances, but is no change
    m._apply(WatchResponse(0, 20))  # progress notification
    assert m.revision == 20
    m._apply(WatchResponse(0, 21, events=[put("/a/y", "old replay", 19)]))
    assert m.values == {"/a/y": "2"}  # replayed events after a reconnect are ignored


def test_serves_and_snapshot() -> None:
    m = mirror(values={"/a/x": "1", "/c/z": "3"})
    assert m.serves(["/a"]) and m.serves(["/a/x/", "/c"]) and not m.serves(["/b"]) and not m.serves(["/"])
    assert m.snapshot(["/c"]) == Snapshot({"/c/z": "3"}, 10)
    assert m.snapshot(["/a", "/c"]).values == {"/a/x": "1", "/c/z": "3"}
    m.connected = False
    assert not m.serves(["/a"])


async def test_wait_changed_wakes_on_apply_and_reports_errors() -> None:
    m = mirror()
    waiter = asyncio.create_task(m.wait_changed(10))
    await asyncio.sleep(0)
    assert not waiter.done()
    m._apply(WatchResponse(0, 11, events=[put("/c/new", "v", 11)]))
    assert await asyncio.wait_for(waiter, 1) == 11
    assert await m.wait_changed(10) == 11  # known changes are returned at once
    with pytest.raises(ValueError):
        await m.wait_changed(5)  # before the replica started: cannot vouch
    waiter = asyncio.create_task(m.wait_changed(11))
    await asyncio.sleep(0)
    m.error = RuntimeError("compacted")
    m._notify()
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(waiter, 1)


def test_changes_since_a_cursor_are_the_keys_changed_with_their_values_now() -> None:
    m = mirror(values={"/a/x": "1", "/c/z": "3"})
    first = m.changes(["/a", "/c"], None)
    assert first.full and first.values == {"/a/x": "1", "/c/z": "3"} and first.revision == 10
    m._apply(WatchResponse(0, 12, events=[put("/a/y", "2", 11), WatchEvent("DELETE", b"/a/x", b"", 12)]))
    m._apply(WatchResponse(0, 13, events=[put("/a/y", "2b", 13), put("/b/noise", "n", 13)]))
    later = m.changes(["/a", "/c"], first.cursor)
    assert not later.full and later.values == {"/a/y": "2b", "/a/x": None} and later.revision == 13
    assert m.changes(["/c"], first.cursor).values == {}  # filtered to the prefixes asked
    assert m.changes(["/a", "/c"], later.cursor).values == {}  # nothing since
    other = mirror()  # a cursor from another mirror (one dropped and reopened) reads everything
    assert other.changes(["/a"], later.cursor).full


def test_a_cursor_older_than_the_log_reads_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    import muster.backends.changefeed as changefeed

    monkeypatch.setattr(changefeed, "LOG_MAX", 4)
    m = mirror()
    cursor = m.changes(["/a"], None).cursor
    m._apply(WatchResponse(0, 13, events=[put(f"/a/{i}", "v", 11 + i) for i in range(3)]))
    assert m.changes(["/a"], cursor).values == {"/a/0": "v", "/a/1": "v", "/a/2": "v"}
    m._apply(WatchResponse(0, 16, events=[put(f"/a/{i}", "w", 14 + i) for i in range(3, 6)]))
    stale = m.changes(["/a"], cursor)
    assert stale.full and len(stale.values) == 6


def test_a_reader_at_the_start_revision_is_answered_from_the_log() -> None:
    # The daemon reads every key (get_values) just before the watch opens the mirror at that
    # revision: its first change then costs what it touches, not a read of every key.
    m = mirror(values={"/a/x": "1"})
    m._apply(WatchResponse(0, 11, events=[put("/a/y", "2", 11)]))
    since_start = m.changes(["/a"], None, since=10)
    assert not since_start.full and since_start.values == {"/a/y": "2"} and since_start.revision == 11
    assert m.changes(["/a"], None, since=11).full  # not the start: the log cannot tell
    assert m.changes(["/a"], None).full
