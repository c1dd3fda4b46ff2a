"""The daemon over the shipped file and env backends (real files and environment, no network)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest
from daemon_helpers import ConfDir, eventually

from muster.config import Config
from muster.daemon import Daemon
from muster.daemon.backend import create_backend


def config(confdir: ConfDir, **kw: object) -> Config:
    fields: dict[str, object] = {"confdir": str(confdir.root), "watch": True, "resync_interval": 0.0}
    fields.update(kw)
    return Config(**fields)  # type: ignore[arg-type]


async def test_watch_with_the_file_backend(confdir: ConfDir, tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text("svc:\n  a: '1'\n")
    dest = confdir.add("a")
    cfg = config(confdir, backend="file", files=(str(keys),))
    backend = create_backend(cfg)
    daemon = Daemon(cfg, backend)
    task = asyncio.create_task(daemon.run_watch())
    try:
        await eventually(lambda: dest.exists() and dest.read_text() == "/svc/a=1\n")
        await asyncio.sleep(0.3)  # out of the debounce window
        keys.write_text("svc:\n  a: '1'\n  b: '2'\n")
        await eventually(lambda: dest.read_text() == "/svc/a=1\n/svc/b=2\n", timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backend.aclose()


async def test_watch_with_env_falls_back_to_interval(
    confdir: ConfDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVC_A", "1")
    dest = confdir.add("a", '{{getv "/svc/a"}}', keys='["/svc/a"]')
    cfg = config(confdir, backend="env", interval=1)
    backend = create_backend(cfg)
    daemon = Daemon(cfg, backend)
    task = asyncio.create_task(daemon.run_watch())
    try:
        await eventually(lambda: dest.exists() and dest.read_text() == "1")
        monkeypatch.setenv("SVC_A", "2")
        await eventually(lambda: dest.read_text() == "2", timeout=5, what="the interval re-read")
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backend.aclose()
