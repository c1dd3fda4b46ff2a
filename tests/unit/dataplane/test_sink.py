"""The membership sink re-resolves only the services a change touched."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pytest

import muster.dataplane.sink as sink_module
from muster.dataplane.peers import Peer
from muster.dataplane.sink import MembershipSink


class RecordingPlane:
    def __init__(self) -> None:
        self.pushed: list[dict[str, list[Peer]]] = []
        self.admin = self

    async def aclose(self) -> None:
        pass

    async def apply(self, desired: Mapping[str, Iterable[Peer]], *, verify: bool = False) -> int:
        self.pushed.append({name: list(peers) for name, peers in desired.items()})
        return len(desired)


async def test_unchanged_ip_services_are_not_resolved_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[tuple[str, int, int]]] = []
    real = sink_module.resolve_peers

    async def counting(entries: Iterable[tuple[str, int, int]], timeout: float | None = None) -> list[Peer]:
        entries = list(entries)
        calls.append(entries)
        return await real(entries, timeout)

    monkeypatch.setattr(sink_module, "resolve_peers", counting)
    plane = RecordingPlane()
    sink = MembershipSink(plane)
    values = {
        "/services/a/servers/1": '{"host": "10.0.0.1", "port": 80}',
        "/services/b/servers/1": '{"host": "localhost", "port": 81}',
    }
    await sink.apply(values)
    assert calls == [[("localhost", 81, 1)]], "IP-only services need no lookup"
    await sink.apply(values)
    assert calls[1:] == [[("localhost", 81, 1)]], "DNS names resolve afresh each time"
    await sink.apply({**values, "/services/a/servers/2": '{"host": "10.0.0.2", "port": 80}'})
    assert calls[2:] == [[("localhost", 81, 1)]]
    assert plane.pushed[-1]["a"] == [Peer("10.0.0.1", 80), Peer("10.0.0.2", 80)]


async def test_a_dead_resolver_costs_one_timeout_and_only_its_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket
    import threading
    import time

    import muster.dataplane.pusher as pusher

    release = threading.Event()
    monkeypatch.setattr(pusher, "RESOLVE_TIMEOUT", 0.3)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: release.wait(10) and [])
    plane = RecordingPlane()
    values = {f"/services/dns{i}/servers/1": f'{{"host": "svc{i}.example", "port": 80}}' for i in range(5)}
    values["/services/ip/servers/1"] = '{"host": "10.0.0.1", "port": 80}'
    started = time.monotonic()
    try:
        await MembershipSink(plane).apply(values)
    finally:
        release.set()
    assert time.monotonic() - started < 1.5, "five stuck names wait out one timeout together"
    assert plane.pushed[-1]["ip"] == [Peer("10.0.0.1", 80)]
    assert all(plane.pushed[-1][f"dns{i}"] == [] for i in range(5))
