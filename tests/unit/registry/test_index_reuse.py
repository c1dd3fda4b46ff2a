"""What ``services`` must build once and reuse: the resolver's thread pool, each snapshot's index.

Both were gaps of a mutation run (``scripts/mutate``): a resolver that built a pool per
lookup, or ignored the executor it was given, and template functions that indexed the
registry again on every call, passed every other test. These count instead of timing.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
from collections.abc import Callable
from typing import Any

import pytest

import muster.registry.index as services
import muster.registry.live as live
import muster.registry.resolve as resolve
from muster.confd.store import KVStore
from muster.gotemplate import Template
from muster.registry.index import HostResolver, RejectLog
from muster.registry.servicefuncs import service_funcs
from muster.threads import DaemonThreadExecutor


class RecordingExecutor(concurrent.futures.Executor):
    """Runs each call inside ``submit`` and records what it was asked to run."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        self.calls.append(args)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


UP = ("10.0.0.1",)


def lookup(host: str) -> list[str]:
    """Names starting with "up" have an address; the others do not exist."""
    if host.startswith("up"):
        return list(UP)
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def pools_built(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every default pool a resolver builds."""
    built: list[object] = []

    def counting(*args: Any, **kwargs: Any) -> object:
        pool = DaemonThreadExecutor(*args, **kwargs)
        built.append(pool)
        return pool

    monkeypatch.setattr(resolve, "DaemonThreadExecutor", counting)
    return built


def test_injected_executor_runs_every_lookup(pools_built: list[object]) -> None:
    executor = RecordingExecutor()
    resolver = HostResolver(timeout=5.0, executor=executor, lookup=lookup)
    assert resolver(["up1.example", "down.example"]) == {"up1.example": UP}
    assert resolver(["up2.example"]) == {"up2.example": UP}
    assert sorted(executor.calls) == [("down.example",), ("up1.example",), ("up2.example",)]
    assert pools_built == []


def test_default_pool_is_built_once_and_only_when_needed(pools_built: list[object]) -> None:
    resolver = HostResolver(timeout=5.0, lookup=lookup)
    assert resolver([]) == {}
    assert pools_built == []  # nothing to look up: no threads
    for n in range(3):
        assert resolver([f"up{n}.example"]) == {f"up{n}.example": UP}
    assert resolver(["up0.example"]) == {"up0.example": UP}  # fresh: no lookup at all
    assert len(pools_built) == 1


class CountingStore:
    """A KV store slot that counts reads, re-pointable like the daemon's template cache."""

    def __init__(self, values: dict[str, str]) -> None:
        self.store = KVStore(values)
        self.reads: list[str] = []

    def lsdir(self, path: str) -> list[str]:
        self.reads.append(f"lsdir {path}")
        return self.store.lsdir(path)

    def gets(self, pattern: str) -> list[object]:
        self.reads.append(f"gets {pattern}")
        return list(self.store.gets(pattern))


def registry(services_count: int) -> dict[str, str]:
    return {
        f"/services/s{n}/servers/a": json.dumps({"host": f"10.0.0.{n}", "port": 80})
        for n in range(services_count)
    }


def test_each_snapshot_is_indexed_once_however_many_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    indexed: list[int] = []
    real = live.index_services

    def counting(entries: Any, names: Any, *args: Any, **kwargs: Any) -> services.ServiceIndex:
        indexed.append(1)
        return real(entries, names, *args, **kwargs)

    monkeypatch.setattr(live, "index_services", counting)
    slot = CountingStore(registry(20))
    funcs = service_funcs(slot, reject_log=RejectLog(), resolvable=None)
    # One `servers` call per service: without the index cache, that is quadratic work.
    template = Template("t", funcs=funcs).parse("{{ range services }}{{ len (servers .) }}{{ end }}")
    assert template.execute(None) == "1" * 20
    assert len(indexed) == 1
    assert slot.reads == []  # the index reads the snapshot itself, not through the slot
    assert template.execute(None) == "1" * 20  # the same snapshot: the same index
    assert len(indexed) == 1
    slot.store = KVStore(registry(3))
    assert template.execute(None) == "111"
    assert len(indexed) == 2
    funcs["services"].fn("/other")
    assert len(indexed) == 3  # a root of its own


def test_each_entry_is_parsed_again_only_when_its_value_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    real = services.parse_server

    def counting(key: str, value: str) -> services.Server:
        parsed.append(key)
        return real(key, value)

    monkeypatch.setattr(services, "parse_server", counting)
    slot = CountingStore(registry(3))
    template = Template("t", funcs=service_funcs(slot, reject_log=RejectLog(), resolvable=None))
    template.parse("{{ range services }}{{ range servers . }}{{ .Addr }} {{ end }}{{ end }}")
    assert template.execute(None) == "10.0.0.0:80 10.0.0.1:80 10.0.0.2:80 "
    values = registry(3)
    values["/services/s1/servers/a"] = json.dumps({"host": "10.0.1.1", "port": 80})
    slot.store = KVStore(values)
    assert template.execute(None) == "10.0.0.0:80 10.0.1.1:80 10.0.0.2:80 "
    assert sorted(parsed) == [f"/services/s{n}/servers/a" for n in (0, 1, 1, 2)]
