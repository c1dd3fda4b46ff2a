"""A batch whose resource failed (its check) runs again by itself, with capped backoff, and a
DNS name's new answer makes the daemon render again (muster.registry.index renders addresses)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from daemon_helpers import ConfDir, FakeClock, eventually

import muster.registry.resolve as resolve
from muster.backends.memory import MemoryBackend
from muster.config import Config
from muster.daemon import Daemon
from muster.registry.index import DEFAULT_RESOLVER


def make_config(confdir: ConfDir, **kw: object) -> Config:
    fields: dict[str, object] = {
        "confdir": str(confdir.root),
        "backend": "memory",
        "watch": True,
        "debounce_window": 0.2,
        "debounce_max": 2.0,
        "resync_interval": 0.0,
    }
    fields.update(kw)
    return Config(**fields)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def watching(daemon: Daemon) -> AsyncIterator[None]:
    task = asyncio.create_task(daemon.run_watch())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def checked(confdir: ConfDir, flag: Path) -> Path:
    """A resource whose check passes only while ``flag`` exists (nginx -t, say)."""
    return confdir.add("a", extra=f'check_cmd = "test -e {flag}"\n')


async def test_a_failed_check_is_retried_with_capped_backoff(
    confdir: ConfDir, clock: FakeClock, tmp_path: Path
) -> None:
    flag = tmp_path / "check-passes"
    dest = checked(confdir, flag)
    daemon = Daemon(make_config(confdir), MemoryBackend({"/svc/a": "1"}), clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1 and clock.sleeping == 1, what="the first retry")
        waits = []
        for _ in range(8):
            batches, before = daemon.batches, clock.now
            while clock.sleeping:  # move time until the retry is due
                clock.advance(0.5)
            waits.append(clock.now - before)
            done = batches + 1
            await eventually(lambda: daemon.batches == done and clock.sleeping == 1, what="a retry")  # noqa: B023
        assert not dest.exists()
        # 1, 2, 4, 8, 16, then 30 s at most: a lasting failure costs a check twice a minute.
        assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
        flag.touch()
        await eventually(lambda: clock.sleeping == 1)
        batches = daemon.batches
        clock.advance(30)
        await eventually(lambda: dest.exists() and daemon.batches == batches + 1, what="the healed batch")
        await asyncio.sleep(0.05)
        assert clock.sleeping == 0, "all applied: no retry pending"
        assert not daemon._retry_backoff.failing, "the backoff starts over"  # noqa: SLF001


async def test_a_change_while_a_retry_waits_is_applied_at_once(
    confdir: ConfDir, clock: FakeClock, tmp_path: Path
) -> None:
    flag = tmp_path / "check-passes"
    dest = checked(confdir, flag)
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1 and clock.sleeping == 1)
        clock.advance(5)  # past the debounce window; the retry (1 s) ran and failed: 2 s now
        await eventually(lambda: daemon.batches == 2 and clock.sleeping == 1)
        flag.touch()
        backend.put("/svc/b", "2")  # the processor does not sleep through the backoff
        await eventually(lambda: dest.exists(), what="the change, with no clock movement")
        assert dest.read_text() == "/svc/a=1\n/svc/b=2\n"


async def test_a_dns_answer_that_changes_renders_again(
    confdir: ConfDir, monkeypatch: pytest.MonkeyPatch
) -> None:

    answers = {"moving.example": ["10.0.0.1"]}
    monkeypatch.setattr(resolve, "lookup_addresses", lambda host: answers[host])
    dest = confdir.add(
        "up",
        '{{ range servers "web" }}{{ .Host }} {{ .Addr }}\n{{ end }}',
        keys='["/services"]',
    )
    value = json.dumps({"host": "moving.example", "port": 80})
    daemon = Daemon(make_config(confdir), MemoryBackend({"/services/web/servers/a": value}))
    async with watching(daemon):
        await eventually(lambda: dest.exists() and "10.0.0.1:80" in dest.read_text())
        answers["moving.example"] = ["10.0.0.2"]
        # The address moves in DNS: the registry is quiet, so only the resolver can tell.
        entry = DEFAULT_RESOLVER._names["moving.example"]  # noqa: SLF001 - make it stale now
        entry.stale_at = 0.0
        await eventually(lambda: "10.0.0.2:80" in dest.read_text(), timeout=10, what="the re-render")
        assert dest.read_text() == "moving.example 10.0.0.2:80\n"
