"""The daemon feeds a sink from the backend's change log: only what changed, and at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence

from daemon_helpers import ConfDir, eventually

from muster.backends.changefeed import Changes, Cursor
from muster.backends.memory import MemoryBackend
from muster.config import Config
from muster.daemon import Daemon


class LoggedMemoryBackend(MemoryBackend):
    """MemoryBackend plus a change log (``backends.changefeed.ChangeLog``), as the etcd mirrors keep."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.log: list[str] = []
        super().__init__(values)

    def transaction(
        self, values: Mapping[str, str], delete: Sequence[str] = (), *, notify: bool = True
    ) -> int:
        self.log.extend([k for k in delete if k in self._values] + list(values))
        return super().transaction(values, delete, notify=notify)

    def changes(self, prefixes: Sequence[str], cursor: Cursor | None) -> Changes | None:
        here = (id(self), len(self.log))
        under = [p.rstrip("/") + "/" for p in prefixes]
        if cursor is None or cursor[0] != id(self):
            values = {k: v for k, v in self._values.items() if k.startswith(tuple(under))}
            return Changes(values, self.revision, here, full=True)
        keys = {k for k in self.log[cursor[1] :] if k.startswith(tuple(under))}
        return Changes({k: self._values.get(k) for k in keys}, self.revision, here)


class RecordingSink:
    prefixes = ("/svc",)

    def __init__(self) -> None:
        self.full: list[dict[str, str]] = []
        self.changes: list[dict[str, str | None]] = []

    async def apply(self, values: Mapping[str, str]) -> None:
        self.full.append(dict(values))

    async def apply_changes(self, changes: Mapping[str, str | None]) -> None:
        self.changes.append(dict(changes))

    async def run(self) -> None:
        await asyncio.Event().wait()


@contextlib.asynccontextmanager
async def watching(daemon: Daemon) -> AsyncIterator[None]:
    task = asyncio.create_task(daemon.run_watch())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def config(confdir: ConfDir) -> Config:
    return Config(confdir=str(confdir.root), backend="memory", watch=True, resync_interval=0.0)


async def test_the_sink_gets_only_the_changed_keys(confdir: ConfDir) -> None:
    confdir.add("a", reload=False)
    backend = LoggedMemoryBackend({"/svc/a": "1", "/svc/b": "2", "/other": "x"})
    sink = RecordingSink()
    daemon = Daemon(config(confdir), backend, sinks=[sink])
    async with watching(daemon):
        await eventually(lambda: daemon.batches >= 1)
        assert sink.full == [{"/svc/a": "1", "/svc/b": "2"}]  # the first feed: everything
        backend.put("/svc/c", "3")
        backend.delete("/svc/a")
        backend.put("/other", "y")
        await eventually(lambda: {"/svc/c": "3", "/svc/a": None}.items() <= merged(sink).items())
        assert set(merged(sink)) == {"/svc/c", "/svc/a"}, "never the unchanged keys, nor other prefixes"
        assert len(sink.full) == 1


def merged(sink: RecordingSink) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for change in sink.changes:
        out.update(change)
    return out


async def test_a_change_reaches_the_sink_while_a_batch_is_busy(confdir: ConfDir) -> None:
    started = confdir.root / "check-started"
    confdir.add("slow", reload=False, extra=f'check_cmd = "touch {started}; sleep 3"\n')
    backend = LoggedMemoryBackend({"/svc/a": "1"})
    sink = RecordingSink()
    daemon = Daemon(config(confdir), backend, sinks=[sink])
    async with watching(daemon):
        await eventually(lambda: daemon.batches >= 1, timeout=10)
        started.unlink()
        backend.put("/svc/b", "2")  # a batch starts and sits in its check for 3 s
        await eventually(started.exists, what="the slow check")
        began = time.monotonic()
        backend.put("/svc/c", "3")
        await eventually(lambda: "/svc/c" in merged(sink), what="the early feed")
        assert time.monotonic() - began < 2.0, "the sink did not wait for the batch's check"
        assert daemon.batches == 1, "the batch is still in its check"
