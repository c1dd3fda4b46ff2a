"""The daemon's modes against the shipped MemoryBackend: onetime, interval and watch."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from daemon_helpers import ConfDir, FakeClock, eventually

from muster.backends.memory import MemoryBackend
from muster.config import Config
from muster.daemon import Daemon, minimal_prefixes, run


def make_config(confdir: ConfDir, **kw: object) -> Config:
    fields: dict[str, object] = {
        "confdir": str(confdir.root),
        "backend": "memory",
        "watch": True,
        "debounce_window": 1.0,
        "debounce_max": 5.0,
        "resync_interval": 0.0,
    }
    fields.update(kw)
    return Config(**fields)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def watching(daemon: Daemon) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(daemon.run_watch())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_minimal_prefixes() -> None:
    assert minimal_prefixes(["/a/b", "/a", "/ab", "/a/"]) == ["/a", "/ab"]
    assert minimal_prefixes(["/x", "/"]) == ["/"]
    assert minimal_prefixes([]) == []


# -- onetime -----------------------------------------------------------------------------------


async def test_onetime_renders_every_resource(confdir: ConfDir) -> None:
    a = confdir.add("a")
    b = confdir.add("b", '{{getv "/svc/x"}}')
    backend = MemoryBackend({"/svc/x": "1", "/svc/y": "2", "/other": "no"})
    code = await Daemon(make_config(confdir, onetime=True), backend).run_once()
    assert code == 0
    assert a.read_text() == "/svc/x=1\n/svc/y=2\n"
    assert b.read_text() == "1"
    assert confdir.reload_count() == 2


async def test_onetime_reports_every_failure_and_exits_with_the_worst(
    confdir: ConfDir, caplog: pytest.LogCaptureFixture
) -> None:
    good = confdir.add("good")
    missing = confdir.add("missing", '{{getv "/svc/nope"}}')
    checked = confdir.add("checked", extra='check_cmd = "false"\n')
    (confdir.root / "conf.d" / "broken.toml").write_text('[template]\nsrc = "x"\n')
    backend = MemoryBackend({"/svc/x": "1"})
    with caplog.at_level(logging.ERROR):
        code = await Daemon(make_config(confdir, onetime=True), backend).run_once()
    assert code == 2  # the ConfigError of broken.toml is the worst
    assert good.read_text() == "/svc/x=1\n"
    assert not missing.exists() and not checked.exists()
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resource.failed")]
    assert len(failed) == 3
    assert any("missing.toml" in m and "key does not exist: /svc/nope" in m for m in failed)
    assert any("checked.toml" in m for m in failed)
    assert any("broken.toml" in m and "dest is required" in m for m in failed)


async def test_onetime_template_syntax_error_exits_1(confdir: ConfDir) -> None:
    dest = confdir.add("bad", "{{ if }}")
    assert await Daemon(make_config(confdir, onetime=True), MemoryBackend()).run_once() == 1
    assert not dest.exists()


async def test_onetime_backend_down_fails_every_resource(confdir: ConfDir) -> None:
    confdir.add("a")
    backend = MemoryBackend()
    backend.set_unavailable(True)
    assert await Daemon(make_config(confdir, onetime=True), backend).run_once() == 1


async def test_prefix_is_stripped_as_confd_does(confdir: ConfDir) -> None:
    dest = confdir.add("p", '{{getv "/app/name"}} {{ls "/"}}', keys='["/app"]', extra='prefix = "/prod"\n')
    backend = MemoryBackend({"/prod/app/name": "shop", "/staging/app/name": "no"})
    assert await Daemon(make_config(confdir, onetime=True), backend).run_once() == 0
    assert dest.read_text() == "shop []"


async def test_noop_prints_diff_and_writes_nothing(confdir: ConfDir) -> None:
    dest = confdir.add("a")
    dest.write_text("old\n")
    import io

    out = io.StringIO()
    daemon = Daemon(
        make_config(confdir, onetime=True, noop=True), MemoryBackend({"/svc/k": "v"}), diff_out=out
    )
    assert await daemon.run_once() == 0
    assert dest.read_text() == "old\n"
    assert "-old\n+/svc/k=v\n" in out.getvalue()
    assert confdir.reload_count() == 0


# -- watch -------------------------------------------------------------------------------------


async def test_watch_applies_a_lone_change_at_once(confdir: ConfDir, clock: FakeClock) -> None:
    dest = confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: dest.exists() and daemon.batches == 1)
        clock.advance(10)  # well past the quiet window
        backend.put("/svc/b", "2")
        # No clock movement is needed: the change is applied without any debounce wait.
        await eventually(lambda: daemon.batches == 2, what="the change")
        assert dest.read_text() == "/svc/a=1\n/svc/b=2\n"
        assert confdir.reload_count() == 2
        assert clock.sleeping == 0
        assert backend.watch_calls >= 1


async def test_the_watcher_asks_once_per_batch_under_churn(confdir: ConfDir, clock: FakeClock) -> None:
    # A watch reports a change per message (500/s under churn); the watcher used to wake and
    # ask the backend again for each one, though only the first of a batch sets anything.
    dest = confdir.add("a", extra='check_cmd = "sleep 0.2"\n', reload=False)
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1)
        asked = backend.watch_calls
        for i in range(50):  # over 0.5 s, while batches run their 0.2 s checks
            backend.put(f"/svc/k{i:02d}", str(i))
            await asyncio.sleep(0.01)
        await eventually(lambda: "/svc/k49=49" in dest.read_text(), what="every change")
        batches = daemon.batches - 1
        assert 2 <= batches <= 6
        assert backend.watch_calls - asked <= batches + 1
        assert dest.read_text().count("\n") == 51


async def test_a_lone_change_right_after_a_reload_waits_only_for_the_interval(
    confdir: ConfDir, clock: FakeClock
) -> None:
    dest = confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir, reload_interval=0.5), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1)
        clock.advance(0.4)
        backend.put("/svc/b", "2")  # 0.4 s after the reload: held for the 0.1 s left, no more
        await eventually(lambda: clock.sleeping == 1, what="the hold")
        assert confdir.reload_count() == 1
        clock.advance(0.1)
        await eventually(lambda: confdir.reload_count() == 2, what="the held reload")
        assert dest.read_text() == "/svc/a=1\n/svc/b=2\n"
        assert clock.sleeping == 0  # no quiet window after a lone change


async def test_a_burst_inside_the_interval_is_folded_until_it_pauses(
    confdir: ConfDir, clock: FakeClock
) -> None:
    dest = confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir, reload_interval=0.5), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1)
        backend.put("/svc/b", "2")  # at t=0, right after the first reload: held
        await eventually(lambda: clock.sleeping == 1, what="the hold")
        backend.put("/svc/c", "3")  # a second change while held: a burst
        await asyncio.sleep(0.05)
        clock.advance(0.5)  # the interval is over, but the burst has not paused for 1 s yet
        await asyncio.sleep(0.05)
        assert confdir.reload_count() == 1
        clock.advance(0.4)
        await asyncio.sleep(0.05)
        assert confdir.reload_count() == 1
        clock.advance(0.2)  # 1 s after the last change
        await eventually(lambda: confdir.reload_count() == 2, what="the folded reload")
        assert dest.read_text() == "/svc/a=1\n/svc/b=2\n/svc/c=3\n"


async def test_resources_without_a_reload_cmd_never_wait(confdir: ConfDir, clock: FakeClock) -> None:
    plain = confdir.add("plain", reload=False)
    reloaded = confdir.add("reloaded")
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir, reload_interval=0.5), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1)
        for i, key in enumerate(("b", "c", "d")):  # a burst, right after the reload
            backend.put(f"/svc/{key}", "x")
            await eventually(lambda key=key: f"/svc/{key}=x" in plain.read_text(), what="the plain file")
            assert confdir.reload_count() == 1 and "/svc/b" not in reloaded.read_text(), i
        clock.advance(2.0)
        await eventually(lambda: confdir.reload_count() == 2, what="the held reload")
        assert reloaded.read_text() == plain.read_text()


async def test_watch_max_wait_bounds_the_delay(confdir: ConfDir, clock: FakeClock) -> None:
    dest = confdir.add("a")
    backend = MemoryBackend({"/svc/0": "x"})
    daemon = Daemon(make_config(confdir, debounce_max=3.0), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1)
        backend.put("/svc/1", "x")  # held: right after the first reload
        await eventually(lambda: clock.sleeping == 1)
        backend.put("/svc/1b", "x")  # a second one while held: a burst, folded
        await asyncio.sleep(0.02)
        for i in range(2, 5):  # a change every 0.9 s never leaves a 1 s quiet window
            await eventually(lambda: clock.sleeping == 1)
            assert confdir.reload_count() == 1
            clock.advance(0.9)
            backend.put(f"/svc/{i}", "x")
            await asyncio.sleep(0.02)
        await eventually(lambda: clock.sleeping == 1)
        assert confdir.reload_count() == 1
        clock.advance(0.9)  # t=3.6: still not quiet (last change at 2.7), but 3 s since the first
        await eventually(lambda: confdir.reload_count() == 2, what="the max-wait batch")
        assert dest.read_text().count("=x") == 6


async def test_changes_during_a_reload_are_folded_into_one_render(confdir: ConfDir, clock: FakeClock) -> None:
    started = confdir.root / "started"
    dest = confdir.add(
        "a", extra=f'reload_cmd = "touch {started}; sleep 0.3; echo a >> {confdir.reloads}"\n', reload=False
    )
    backend = MemoryBackend({"/svc/0": "x"})
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1)
        clock.advance(10)
        started.unlink()
        backend.put("/svc/1", "x")
        await eventually(started.exists, what="the second reload to start")
        for i in range(2, 50):
            backend.put(f"/svc/{i}", "x")
        await eventually(lambda: daemon.batches == 2 and clock.sleeping == 1)
        assert confdir.reload_count() == 2
        clock.advance(1.0)
        await eventually(lambda: confdir.reload_count() == 3)
        assert len(dest.read_text().splitlines()) == 50
        await asyncio.sleep(0.05)
        assert daemon.batches == 3


async def test_resources_sharing_a_reload_cmd_reload_once(confdir: ConfDir, clock: FakeClock) -> None:
    shared = f'reload_cmd = "echo shared >> {confdir.reloads}"\n'
    a = confdir.add("a", extra=shared, reload=False)
    b = confdir.add("b", '{{len (ls "/svc")}}', extra=shared, reload=False)
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1)
        clock.advance(10)
        backend.put("/svc/b", "2")
        await eventually(lambda: b.read_text() == "2")
        await asyncio.sleep(0.05)
        assert confdir.reload_count() == 2
        assert a.read_text() == "/svc/a=1\n/svc/b=2\n"


async def test_one_watch_for_all_resources(confdir: ConfDir, clock: FakeClock) -> None:
    for name in "abcde":
        confdir.add(name, keys='["/svc", "/svc/x"]')
    confdir.add("f", '{{getv "/cfg/k"}}', keys='["/cfg"]')
    backend = MemoryBackend({"/svc/a": "1", "/cfg/k": "v"})
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    calls: list[list[str]] = []
    original = backend.wait_changed

    async def spy(prefixes: list[str], since: int | None) -> int | None:
        calls.append(list(prefixes))
        return await original(prefixes, since)

    backend.wait_changed = spy  # type: ignore[method-assign]
    async with watching(daemon):
        await eventually(lambda: len(calls) == 1)
        await asyncio.sleep(0.05)
        assert calls == [["/cfg", "/svc"]]
        assert backend.get_calls == 2  # one snapshot per distinct key set, not per resource


async def test_template_error_keeps_old_file_and_daemon_runs_on(confdir: ConfDir, clock: FakeClock) -> None:
    dest = confdir.add("a", '{{getv "/svc/need"}}')
    backend = MemoryBackend({"/svc/need": "v1"})
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon) as task:
        await eventually(lambda: daemon.batches == 1)
        clock.advance(10)
        backend.delete("/svc/need")
        await eventually(lambda: daemon.batches == 2)
        assert dest.read_text() == "v1"
        assert not task.done()
        clock.advance(10)
        backend.put("/svc/need", "v2")
        await eventually(lambda: dest.read_text() == "v2")


async def test_compaction_forces_a_full_reread(confdir: ConfDir, clock: FakeClock) -> None:
    dest = confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1)
        clock.advance(10)
        backend.set_unavailable(True)  # the watch breaks...
        await eventually(lambda: clock.sleeping >= 1, what="the watch retry")
        backend.put("/svc/b", "2")  # ...history moves on and is compacted meanwhile
        backend.put("/svc/c", "3")
        backend.compact()
        backend.set_unavailable(False)
        clock.advance(1)
        await eventually(lambda: dest.read_text() == "/svc/a=1\n/svc/b=2\n/svc/c=3\n", what="the re-read")


async def test_backend_outage_is_retried_and_recovered(
    confdir: ConfDir, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    dest = confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    with caplog.at_level(logging.INFO, logger="muster.daemon"):
        async with watching(daemon):
            await eventually(lambda: daemon.batches == 1)
            clock.advance(10)
            backend.set_unavailable(True)
            for _ in range(5):  # several failed attempts, with growing backoff
                await eventually(lambda: clock.sleeping >= 1)
                clock.advance(2)
            backend.put("/svc/b", "2")
            backend.set_unavailable(False)
            clock.advance(2)
            await eventually(lambda: dest.read_text() == "/svc/a=1\n/svc/b=2\n")
    assert "watch.failed" in caplog.text
    assert "watch.recovered" in caplog.text


async def test_startup_with_backend_down_waits_and_then_renders(confdir: ConfDir, clock: FakeClock) -> None:
    dest = confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    backend.set_unavailable(True)
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: clock.sleeping >= 1)
        assert not dest.exists()
        backend.set_unavailable(False)
        clock.advance(5)
        await eventually(dest.exists)


async def test_resync_catches_a_lost_event_and_new_resources(confdir: ConfDir, clock: FakeClock) -> None:
    dest = confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir, resync_interval=0.2), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1)
        clock.advance(10)
        backend.put("/svc/b", "2", notify=False)  # the watch never hears of this one
        new = confdir.add("late")
        await eventually(lambda: dest.read_text() == "/svc/a=1\n/svc/b=2\n", what="the resync")
        await eventually(new.exists)


async def test_resync_without_changes_renders_nothing(confdir: ConfDir, clock: FakeClock) -> None:
    confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir, resync_interval=0.05), backend, clock=clock, sleep=clock.sleep)
    renders: list[str] = []
    real_render = daemon._render

    def counting_render(spec: object, values: object, changed: object = None) -> bytes:
        renders.append(getattr(spec, "name", ""))
        return real_render(spec, values, changed)  # type: ignore[arg-type]

    daemon._render = counting_render  # type: ignore[method-assign]

    async def time_flies() -> None:  # keep every resync out of the previous batch's window
        while True:
            await asyncio.sleep(0.01)
            clock.advance(10)

    ticker = asyncio.create_task(time_flies())
    async with watching(daemon):
        await eventually(lambda: daemon.batches >= 4, what="several resyncs")
        assert renders == ["a.toml"]  # only the first batch rendered
        assert backend.get_calls >= 4  # but every resync did re-read the backend
        clock.advance(10)
        backend.put("/svc/a", "2", notify=False)
        await eventually(lambda: len(renders) == 2, what="the resync to find the lost change")
    ticker.cancel()


async def test_sighup_rereads_conf_d(confdir: ConfDir, clock: FakeClock) -> None:
    confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir), backend, clock=clock, sleep=clock.sleep)
    async with watching(daemon):
        await eventually(lambda: daemon.batches == 1)
        new = confdir.add("b")
        clock.advance(10)
        daemon.hangup()
        await eventually(new.exists)


# -- interval and signals ----------------------------------------------------------------------


async def test_interval_mode_rereads_conf_d_each_cycle(confdir: ConfDir) -> None:
    a = confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    daemon = Daemon(make_config(confdir, watch=False, interval=3600), backend)
    task = asyncio.create_task(daemon.run_interval())
    try:
        await eventually(a.exists)
        b = confdir.add("b")
        backend.put("/svc/b", "2")
        daemon.hangup()  # instead of waiting an hour
        await eventually(lambda: b.exists() and "/svc/b=2" in a.read_text())
        assert backend.watch_calls == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_run_stops_on_sigterm_and_restores_handlers(confdir: ConfDir) -> None:
    dest = confdir.add("a")
    backend = MemoryBackend({"/svc/a": "1"})
    before = signal.getsignal(signal.SIGTERM)
    task = asyncio.create_task(run(make_config(confdir), backend))
    await eventually(dest.exists)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 5) == 0
    assert signal.getsignal(signal.SIGTERM) is before
    assert backend.closed


async def test_run_onetime_returns_exit_code(confdir: ConfDir, tmp_path: Path) -> None:
    confdir.add("a", '{{ getv "/missing" }}')
    backend = MemoryBackend()
    assert await run(make_config(confdir, onetime=True), backend) == 1
    assert backend.closed


async def test_a_backend_that_will_not_close_does_not_hang_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    from muster.daemon.backend import close_backend

    class StuckBackend(MemoryBackend):
        async def aclose(self) -> None:
            await asyncio.Event().wait()  # e.g. a half-open connection that never answers

    with caplog.at_level(logging.WARNING, logger="muster.daemon.backend"):
        await asyncio.wait_for(close_backend(StuckBackend(), timeout=0.1), 5)
    assert "backend.close.timeout" in caplog.text


# -- the dashboard's observer ------------------------------------------------------------------


async def test_the_observer_sees_what_a_batch_reads_and_reads_nothing_itself(confdir: ConfDir) -> None:
    from muster.daemon.observer import RegistryObserver
    from muster.observe.events import EventLog

    confdir.add("svc", '{{range gets "/services/*"}}{{.Key}}\n{{end}}', keys='["/services"]')
    values = {
        "/services/web/servers/a": '{"host": "10.0.0.1", "port": 80}',
        "/services/web/servers/b": "nope",
    }
    backend = MemoryBackend(values)
    observer = RegistryObserver(EventLog())
    daemon = Daemon(make_config(confdir, onetime=True), backend, observer=observer)
    assert await daemon.run_once() == 0
    assert backend.get_calls == 1, "the observer rode on the resource's read"
    services, rejected = observer.snapshot()
    assert services == {"web": [("10.0.0.1", 80, 1)]} and list(rejected) == ["/services/web/servers/b"]


async def test_the_observer_widens_no_read_when_no_resource_reads_its_root(confdir: ConfDir) -> None:
    from muster.daemon.observer import RegistryObserver
    from muster.observe.events import EventLog

    confdir.add("a")  # reads /svc only
    backend = MemoryBackend({"/svc/x": "1", "/services/web/servers/a": '{"host": "10.0.0.1", "port": 80}'})
    observer = RegistryObserver(EventLog())
    daemon = Daemon(make_config(confdir, onetime=True), backend, observer=observer)
    assert await daemon.run_once() == 0
    assert backend.get_calls == 1 and observer.snapshot() == ({}, {})
