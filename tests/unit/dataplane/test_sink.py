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

    async def counting(entries: Iterable[tuple[str, int, int]]) -> list[Peer]:
        entries = list(entries)
        calls.append(entries)
        return await real(entries)

    monkeypatch.setattr(sink_module, "resolve_peers", counting)
    plane = RecordingPlane()
    sink = MembershipSink(plane)
    values = {
        "/services/a/servers/1": '{"host": "10.0.0.1", "port": 80}',
        "/services/b/servers/1": '{"host": "localhost", "port": 81}',
    }
    await sink.apply(values)
    assert len(calls) == 2
    await sink.apply(values)
    assert calls[2:] == [[("localhost", 81, 1)]], "DNS names resolve afresh; IP-only services are cached"
    await sink.apply({**values, "/services/a/servers/2": '{"host": "10.0.0.2", "port": 80}'})
    assert [("10.0.0.1", 80, 1), ("10.0.0.2", 80, 1)] in calls[3:]
    assert plane.pushed[-1]["a"] == [Peer("10.0.0.1", 80), Peer("10.0.0.2", 80)]
