"""daemon.heap: a long render is followed by a collection and a freeze of what is alive."""

from __future__ import annotations

import gc
import weakref

import pytest
from daemon_helpers import ConfDir

import muster.daemon.core as core
from muster.backends.memory import MemoryBackend
from muster.config import Config
from muster.daemon import Daemon, heap
from muster.daemon.heap import settle


def test_settle_freezes_what_is_alive_and_collects_the_rest() -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    try:
        garbage = weakref.ref(Cycle())  # garbage only the collector finds
        kept = Cycle()
        settle()
        assert garbage() is None and gc.get_freeze_count() > 0
        frozen = weakref.ref(kept)
        del kept
        gc.collect()
        assert frozen() is not None  # frozen: the collector's scans skip it...
        settle()
        assert frozen() is None  # ...until the next settle thaws and collects
    finally:
        gc.unfreeze()


def test_settle_hands_freed_memory_back_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    assert heap._TRIM is not None, "Debian's glibc has malloc_trim"
    trimmed: list[int] = []
    monkeypatch.setattr(heap, "_TRIM", lambda pad: trimmed.append(pad) or 1)
    settle()
    gc.unfreeze()
    assert trimmed == [0]


async def test_the_daemon_settles_after_a_long_render_from_scratch_only(
    confdir: ConfDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    confdir.add("a", reload=False)
    settled: list[int] = []
    config = Config(confdir=str(confdir.root), backend="memory", onetime=True)
    daemon = Daemon(config, MemoryBackend({"/svc/x": "1"}), settle_heap=lambda: settled.append(1))
    daemon.load()
    await daemon.process()
    assert settled == []  # a render of a few keys is no reason to scan the heap
    monkeypatch.setattr(core, "SETTLE_AFTER_RENDER_MS", 0.0)
    await daemon.process()
    assert settled == []  # followed on incrementally: the heap has not been rebuilt
    daemon._templates._renderers.clear()  # the next render starts from scratch
    await daemon.process()
    assert settled == [1]
