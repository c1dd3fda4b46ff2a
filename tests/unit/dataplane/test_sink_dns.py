"""The Lua plane's sink and DNS: a slow name never delays an unrelated change, and a name's
new answer (a late first one, an address that moved) is pushed without a registry change."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping

import pytest

from muster.dataplane.peers import Peer
from muster.dataplane.resolve import PeerResolver
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

    def last(self, name: str) -> list[Peer]:
        return self.pushed[-1].get(name, []) if self.pushed else []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def server(host: str, port: int = 80) -> str:
    return f'{{"host": "{host}", "port": {port}}}'


@contextlib.asynccontextmanager
async def running(sink: MembershipSink) -> AsyncIterator[None]:
    task = asyncio.create_task(sink.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_slow_name_delays_only_its_first_push_and_is_pushed_when_it_answers() -> None:
    release = threading.Event()

    def lookup(host: str) -> list[str]:
        if host == "slow.example":
            release.wait(10)
            return ["10.0.0.8"]
        return ["10.0.0.9"]

    plane = RecordingPlane()
    sink = MembershipSink(plane, verify_interval=0.05)
    sink.resolver = PeerResolver(0.3, lookup=lookup)
    values = {
        "/services/slow/servers/1": server("slow.example"),
        "/services/ip/servers/1": server("10.0.0.1"),
    }
    try:
        async with running(sink):
            started = time.monotonic()
            await sink.apply(values)
            assert 0.25 < time.monotonic() - started < 2.0, "a new name waits, at most the deadline"
            assert plane.last("slow") == [] and plane.last("ip") == [Peer("10.0.0.1", 80)]
            for n in range(5):  # unrelated changes, while the slow lookup is still running
                values[f"/services/ip/servers/{n + 2}"] = server(f"10.0.1.{n}")
                started = time.monotonic()
                await sink.apply(values)
                assert time.monotonic() - started < 0.1, "an unrelated change never waits for it"
                assert Peer(f"10.0.1.{n}", 80) in plane.last("ip")
            values["/services/web/servers/1"] = server("web.example")  # a new, quick name
            await sink.apply(values)
            assert plane.last("web") == [Peer("10.0.0.9", 80)]
            release.set()
            await wait_for(lambda: plane.last("slow") == [Peer("10.0.0.8", 80)])
            assert len(plane.last("ip")) == 6, "the re-push keeps everything else"
    finally:
        release.set()


async def test_an_address_that_moves_is_pushed_without_a_registry_change() -> None:
    clock = Clock()
    answers = {"api.example": ["10.0.0.1"]}
    plane = RecordingPlane()
    sink = MembershipSink(plane, verify_interval=0.02)
    sink.resolver = PeerResolver(1.0, lookup=lambda host: answers[host], clock=clock)
    await sink.apply({"/services/api/servers/1": server("api.example", 81)})
    assert plane.last("api") == [Peer("10.0.0.1", 81)]
    async with running(sink):
        answers["api.example"] = ["10.0.0.2", "10.0.0.3"]
        await asyncio.sleep(0.1)
        assert plane.last("api") == [Peer("10.0.0.1", 81)], "fresh answers are not looked up again"
        clock.now += 31  # past the TTL: the periodic refresh looks it up again
        await wait_for(lambda: plane.last("api") == [Peer("10.0.0.2", 81), Peer("10.0.0.3", 81)])


async def test_a_name_that_stops_resolving_costs_only_its_own_entries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import socket

    clock = Clock()
    answers: dict[str, list[str] | Exception] = {"a.example": ["10.0.0.1"], "b.example": ["10.0.0.2"]}

    def lookup(host: str) -> list[str]:
        answer = answers[host]
        if isinstance(answer, Exception):
            raise type(answer)(*answer.args)
        return answer

    plane = RecordingPlane()
    sink = MembershipSink(plane, verify_interval=0.02)
    sink.resolver = PeerResolver(1.0, lookup=lookup, clock=clock)
    values = {"/services/a/servers/1": server("a.example"), "/services/b/servers/1": server("b.example")}
    await sink.apply(values)
    async with running(sink):
        answers["a.example"] = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        clock.now += 31
        await wait_for(lambda: plane.last("a") == [])
        assert plane.last("b") == [Peer("10.0.0.2", 80)]
        for _ in range(3):  # more refreshes while it stays gone: logged once
            clock.now += 6
            await asyncio.sleep(0.05)
    failed = [r for r in caplog.records if "dataplane.resolve.failed" in r.getMessage()]
    assert len(failed) == 1 and "a.example" in failed[0].getMessage()
