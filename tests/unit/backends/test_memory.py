"""The shipped in-memory backend honours the Backend contract: revisions, watches, compaction."""

from __future__ import annotations

import asyncio

import pytest

from muster.backends import create
from muster.backends.base import Backend
from muster.backends.memory import MemoryBackend
from muster.errors import BackendUnavailable, RevisionCompacted


def test_is_a_backend_and_in_the_registry() -> None:
    assert isinstance(MemoryBackend(), Backend)
    assert isinstance(create("memory"), MemoryBackend)


async def test_hierarchical_prefixes_and_revisions() -> None:
    b = MemoryBackend({"/a": "1", "/a/b": "2", "/ab": "3"})
    assert b.revision == 2  # one transaction on top of the empty store
    snap = await b.get_values(["/a"])
    assert dict(snap.values) == {"/a": "1", "/a/b": "2"}
    assert snap.revision == 2
    assert dict((await b.get_values(["/"])).values) == {"/a": "1", "/a/b": "2", "/ab": "3"}


async def test_wait_changed_returns_newest_matching_revision() -> None:
    b = MemoryBackend({"/x/1": "a"})
    since = b.revision
    waiter = asyncio.create_task(b.wait_changed(["/x"], since))
    await asyncio.sleep(0)
    b.put("/other", "ignored")
    await asyncio.sleep(0)
    assert not waiter.done()
    rev = b.put("/x/2", "b")
    assert await waiter == rev
    # Changes already made are reported at once, with the newest revision.
    b.put("/x/3", "c")
    last = b.delete("/x/1")
    assert await b.wait_changed(["/x/"], rev) == last


async def test_compaction_and_outage() -> None:
    b = MemoryBackend({"/x": "1"})
    old = b.revision
    b.put("/x", "2")
    b.compact()
    with pytest.raises(RevisionCompacted):
        await b.wait_changed(["/x"], old - 1)
    b.set_unavailable(True)
    with pytest.raises(BackendUnavailable):
        await b.get_values(["/x"])
    b.set_unavailable(False)
    assert (await b.get_values(["/x"])).values == {"/x": "2"}


async def test_outage_wakes_a_waiting_watch() -> None:
    b = MemoryBackend()
    waiter = asyncio.create_task(b.wait_changed(["/x"], b.revision))
    await asyncio.sleep(0)
    b.set_unavailable(True)
    with pytest.raises(BackendUnavailable):
        await waiter
    await b.aclose()
    await b.aclose()
