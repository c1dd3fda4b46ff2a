"""The batch's change path: key sets read from the change log, renderers told the changed keys."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from daemon_helpers import ConfDir

from muster.backends.memory import MemoryBackend, MemoryChangeLog
from muster.config import Config
from muster.daemon import Daemon
from muster.daemon.views import follow
from muster.resources.render import render

TEMPLATE = """\
{{- range $s := ls "/svc" }}
upstream {{ $s }} {
{{- range gets (printf "/svc/%s/servers/*" $s) }}
  server {{ .Value }}; # {{ base .Key }}
{{- end }}
}
{{- end }}
hosts: {{ join (getvs "/svc/*/servers/*") "," }}
"""


def make_config(confdir: ConfDir) -> Config:
    return Config(confdir=str(confdir.root), backend="memory", onetime=True, resync_interval=0.0)


def full_render(daemon: Daemon, name: str, backend: MemoryBackend) -> bytes:
    """What a render from scratch gives over the backend's values now."""
    spec = next(s for s in daemon.specs if s.name == f"{name}.toml")
    snapshot = {k: v for k, v in backend._values.items() if k.startswith("/svc")}
    return render(spec, snapshot, spec.src.read_bytes())


def churn(backend: MemoryBackend, rng: random.Random, writes: int) -> None:
    for _ in range(writes):
        key = f"/svc/s{rng.randrange(8)}/servers/n{rng.randrange(4)}"
        if rng.random() < 0.3:
            backend.delete(key)
        else:
            backend.put(key, f"10.0.0.{rng.randrange(250)}:{rng.randrange(80, 90)}")


async def test_batches_follow_the_change_log_and_match_full_renders(confdir: ConfDir) -> None:
    dest = confdir.add("up", TEMPLATE, reload=False)
    backend = MemoryChangeLog({"/svc/s0/servers/n0": "10.0.0.1:80", "/other": "x"})
    daemon = Daemon(make_config(confdir), backend)
    daemon.load()
    await daemon.process()
    view = daemon._views[("/svc",)]
    rng = random.Random(15)
    for _ in range(60):
        churn(backend, rng, rng.randrange(1, 6))
        report = await daemon.process()
        assert not report.failures
        assert dest.read_bytes() == full_render(daemon, "up", backend)
    # One read of every key at the start; after it, only the log: the view changed in place.
    assert backend.get_calls == 0
    assert daemon._views[("/svc",)] is view
    assert view.values == {k: v for k, v in backend._values.items() if k.startswith("/svc")}
    renderer = next(iter(daemon._templates._renderers.values()))
    assert renderer.full_renders == 1


async def test_a_held_resource_renders_every_change_it_missed(confdir: ConfDir) -> None:
    held = confdir.add("held", TEMPLATE)  # has a reload_cmd
    other = confdir.add("other", TEMPLATE, reload=False)
    backend = MemoryChangeLog({"/svc/s0/servers/n0": "10.0.0.1:80"})
    daemon = Daemon(make_config(confdir), backend)
    daemon.load()
    await daemon.process()
    rng = random.Random(7)
    without_held = [s for s in daemon.specs if not s.reload_cmd]
    assert [s.name for s in without_held] == ["other.toml"]
    for _ in range(5):
        churn(backend, rng, 3)
        await daemon.process(without_held)  # the reload interval holds ``held`` back
        assert other.read_bytes() == full_render(daemon, "other", backend)
    assert held.read_bytes() != full_render(daemon, "held", backend)
    await daemon.process()
    assert held.read_bytes() == full_render(daemon, "held", backend)


async def test_without_a_live_log_the_batch_reads_everything(confdir: ConfDir) -> None:
    dest = confdir.add("up", TEMPLATE, reload=False)
    backend = MemoryChangeLog({"/svc/s0/servers/n0": "10.0.0.1:80"})
    daemon = Daemon(make_config(confdir), backend)
    daemon.load()
    await daemon.process()
    rng = random.Random(3)
    for step in range(12):
        backend.live = step % 3 != 1  # the mirror goes away now and then...
        if step % 4 == 2:
            backend.reopen()  # ...or comes back as a new one, whose cursors are new
        churn(backend, rng, 4)
        await daemon.process()
        assert dest.read_bytes() == full_render(daemon, "up", backend)
    assert backend.get_calls == 4


async def test_a_resync_reads_in_full_and_finds_what_the_log_missed(confdir: ConfDir) -> None:
    dest = confdir.add("up", TEMPLATE, reload=False)
    backend = MemoryChangeLog({"/svc/s0/servers/n0": "10.0.0.1:80"})
    daemon = Daemon(make_config(confdir), backend)
    daemon.load()
    await daemon.process()
    backend.put("/svc/s1/servers/n0", "10.0.0.2:80", notify=False)  # a lost event
    await daemon.process()
    assert b"10.0.0.2:80" not in dest.read_bytes()
    daemon._trigger = "resync"
    await daemon.process()
    assert dest.read_bytes() == full_render(daemon, "up", backend)
    # A second resync finds nothing new: the resource is not rendered again.
    renderer = next(iter(daemon._templates._renderers.values()))
    renders = renderer.memo.gen  # one generation per render
    report = await daemon.process()
    assert report.changed == 0
    assert renderer.memo.gen == renders


@pytest.mark.parametrize("backend_type", [MemoryBackend, MemoryChangeLog])
async def test_the_batch_log_names_the_changed_keys(
    confdir: ConfDir, backend_type: type[MemoryBackend], caplog: pytest.LogCaptureFixture
) -> None:
    confdir.add("up", TEMPLATE, reload=False)
    backend = backend_type({"/svc/a/servers/n0": "1", "/svc/b/servers/n0": "2"})
    daemon = Daemon(make_config(confdir), backend)
    daemon.load()
    await daemon.process()
    backend.transaction({"/svc/a/servers/n0": "9", "/svc/c/servers/n0": "3"}, delete=["/svc/b/servers/n0"])
    caplog.set_level("INFO", logger="muster.daemon.core")
    await daemon.process()
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backend.snapshot")]
    assert "changed=3" in line
    assert "changes=~/svc/a/servers/n0,-/svc/b/servers/n0,+/svc/c/servers/n0" in line


def test_follow_counts_only_what_really_changed(tmp_path: Path) -> None:
    backend = MemoryChangeLog({"/svc/a": "1", "/svc/b": "2"})
    first = follow(None, backend, ["/svc"])
    assert first is not None and first.changed is None and first.summary == "initial"
    backend.put("/svc/a", "1")  # rewritten with the same value: logged, but no change
    backend.delete("/svc/missing")
    again = follow(first.view, backend, ["/svc"])
    assert again is not None and again.view is first.view
    assert (again.count, again.view.generation) == (0, 0)
    backend.put("/svc/b", "3")
    moved = follow(first.view, backend, ["/svc"])
    assert moved is not None and (moved.count, moved.summary, moved.view.generation) == (1, "~/svc/b", 1)
    backend.live = False
    assert follow(first.view, backend, ["/svc"]) is None


async def test_the_first_change_after_a_full_read_follows_the_log(confdir: ConfDir) -> None:
    dest = confdir.add("up", TEMPLATE, reload=False)
    backend = MemoryChangeLog({"/svc/s0/servers/n0": "10.0.0.1:80"})
    backend.live = False  # at start no mirror serves the keys: the batch reads them
    daemon = Daemon(make_config(confdir), backend)
    daemon.load()
    await daemon.process()
    view = daemon._views[("/svc",)]
    assert view.cursor is None and backend.get_calls == 1
    backend.live = True  # the watch opened the mirror at the revision read
    backend.put("/svc/s1/servers/n0", "10.0.0.2:80")
    await daemon.process()
    assert daemon._views[("/svc",)] is view and view.cursor is not None
    assert dest.read_bytes() == full_render(daemon, "up", backend)
    assert backend.get_calls == 1
