"""The membership sink resolves only the services a change touched."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping

import pytest

from muster.dataplane.peers import Peer
from muster.dataplane.sink import MembershipSink


class RecordingPlane:
    def __init__(self) -> None:
        self.pushed: list[dict[str, list[Peer]]] = []
        self.only: object = None  # the ``only`` of the last apply
        self.admin = self

    async def aclose(self) -> None:
        pass

    async def apply(
        self, desired: Mapping[str, Iterable[Peer]], *, verify: bool = False, only: object = None
    ) -> int:
        self.only = only
        self.pushed.append({name: list(peers) for name, peers in desired.items()})
        return len(desired)


def counting_lookups(monkeypatch: pytest.MonkeyPatch, answer: Callable[[str], object]) -> list[str]:
    """Replace the system resolver with ``answer(host)`` (it may block); return the hosts asked."""
    asked: list[str] = []

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> object:
        asked.append(host)
        return answer(host)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def address(ip: str) -> list[tuple[object, ...]]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0))]


async def test_only_dns_names_are_looked_up_each_push(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked = counting_lookups(monkeypatch, lambda host: address("10.9.9.9"))
    plane = RecordingPlane()
    sink = MembershipSink(plane)
    values = {
        "/services/a/servers/1": '{"host": "10.0.0.1", "port": 80}',
        "/services/b/servers/1": '{"host": "b.example", "port": 81}',
        "/services/c/servers/1": '{"host": "b.example", "port": 82}',
    }
    await sink.apply(values)
    assert asked == ["b.example"], "IP-only services need no lookup; a shared name is asked once"
    await sink.apply(values)
    assert asked == ["b.example"], "a fresh answer is reused: refreshed after its TTL, in the background"
    await sink.apply({**values, "/services/a/servers/2": '{"host": "10.0.0.2", "port": 80}'})
    assert plane.pushed[-1]["a"] == [Peer("10.0.0.1", 80), Peer("10.0.0.2", 80)]
    assert plane.pushed[-1]["c"] == [Peer("10.9.9.9", 82)]


async def test_a_dead_resolver_costs_one_timeout_only_its_entries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    counting_lookups(monkeypatch, lambda host: release.wait(10) and [])
    plane = RecordingPlane()
    sink = MembershipSink(plane)
    sink.resolver.timeout = 0.3
    values = {f"/services/dns{i}/servers/1": f'{{"host": "svc{i}.example", "port": 80}}' for i in range(5)}
    values["/services/ip/servers/1"] = '{"host": "10.0.0.1", "port": 80}'
    started = time.monotonic()
    try:
        await sink.apply(values)
    finally:
        release.set()
    assert time.monotonic() - started < 1.5, "five stuck names wait out one timeout together"
    assert plane.pushed[-1]["ip"] == [Peer("10.0.0.1", 80)]
    assert all(plane.pushed[-1][f"dns{i}"] == [] for i in range(5))


async def test_a_stuck_name_holds_one_lookup_and_late_names_keep_their_last_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    slow = threading.Event()  # set: good.example hangs too

    def answer(host: str) -> object:
        if host == "hang.example" or slow.is_set():
            release.wait(10)
        return address("10.1.1.1")

    asked = counting_lookups(monkeypatch, answer)
    plane = RecordingPlane()
    sink = MembershipSink(plane)
    sink.resolver.timeout = 0.1
    values = {
        "/services/hang/servers/1": '{"host": "hang.example", "port": 80}',
        "/services/good/servers/1": '{"host": "good.example", "port": 80}',
    }
    try:
        for _ in range(12):  # more pushes than the 8 threads that once ran lookups
            await sink.apply(values)
            assert plane.pushed[-1]["good"] == [Peer("10.1.1.1", 80)]
            assert plane.pushed[-1]["hang"] == []
        assert asked.count("hang.example") == 1, "a stuck name is not asked again while it hangs"
        slow.set()  # now good.example is late too: it keeps the answer it had
        await sink.apply(values)
        assert plane.pushed[-1]["good"] == [Peer("10.1.1.1", 80)]
    finally:
        release.set()
