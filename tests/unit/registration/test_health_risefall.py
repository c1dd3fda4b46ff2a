"""Rise/fall counting and the health monitor's loop, with a fake clock and sleep: no real waiting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from muster.errors import ConfigError
from muster.registration.health import (
    CheckResult,
    CommandCheck,
    HealthMonitor,
    HttpCheck,
    RiseFall,
    parse_host_port,
)


def run(counter: RiseFall, results: str) -> list[bool | None]:
    return [counter.observe(ch == "+") for ch in results]


def test_rise_needs_consecutive_passes_from_unhealthy() -> None:
    counter = RiseFall(rise=3, fall=2)
    assert not counter.healthy
    # A failure in between restarts the count.
    assert run(counter, "++-++") == [None, None, None, None, None]
    assert counter.observe(True) is True
    assert counter.healthy


def test_fall_needs_consecutive_failures_from_healthy() -> None:
    counter = RiseFall(rise=1, fall=3, healthy=True)
    assert run(counter, "--+--") == [None] * 5
    assert counter.observe(False) is False
    assert run(counter, "+") == [True]  # rise=1: back at once


def test_rise_and_fall_of_one_follow_every_result() -> None:
    counter = RiseFall(rise=1, fall=1)
    assert run(counter, "+-+") == [True, False, True]
    assert run(counter, "++") == [None, None]
    assert "healthy=True" in repr(counter)


def test_rise_fall_validation() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        RiseFall(rise=0)


class FakeTime:
    """A clock plus a sleep that only advances it (trio's MockClock in miniature)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Scripted:
    """A check answering from a script: '+' pass, '-' fail, 's' slow (3 s of fake time), '!' raise."""

    description = "scripted"

    def __init__(self, script: str, time: FakeTime) -> None:
        self.script = iter(script)
        self.time = time

    async def __call__(self) -> CheckResult:
        step = next(self.script)
        if step == "!":
            raise RuntimeError("checker bug")
        if step == "s":
            self.time.now += 3.0
            await asyncio.sleep(3600)  # only the monitor's timeout ends this
        return CheckResult(step == "+", step)


async def test_monitor_reports_only_flips() -> None:
    time = FakeTime()
    changes: list[bool] = []
    monitor = HealthMonitor(
        Scripted("++--+---", time),
        changes.append,
        interval=1.0,
        timeout=0.01,
        rise=2,
        fall=3,
        sleep=time.sleep,
        clock=time.clock,
    )
    flips = [await monitor.step() for _ in range(8)]
    assert flips == [None, True, None, None, None, None, None, False]
    assert changes == [True, False]
    assert not monitor.healthy


async def test_monitor_counts_timeouts_and_errors_as_failures() -> None:
    time = FakeTime()
    monitor = HealthMonitor(
        Scripted("+s!", time),
        lambda _: None,
        interval=1.0,
        timeout=0.05,
        rise=1,
        fall=2,
        sleep=time.sleep,
        clock=time.clock,
    )
    assert await monitor.step() is True
    assert (await monitor.probe()) == CheckResult(False, "timed out after 0.05s")
    result = await monitor.probe()
    assert not result.ok and "RuntimeError: checker bug" in result.detail


async def test_monitor_spaces_checks_start_to_start() -> None:
    time = FakeTime()

    class Slowish:
        description = "slowish"

        async def __call__(self) -> CheckResult:
            time.now += 0.25  # each check takes a quarter of a (fake) second
            return CheckResult(True)

    monitor = HealthMonitor(
        Slowish(), lambda _: None, interval=1.0, timeout=5.0, sleep=time.sleep, clock=time.clock
    )
    task = asyncio.create_task(monitor.run())
    while len(time.sleeps) < 3:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.sleeps[:3] == [0.75, 0.75, 0.75]


def test_monitor_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="positive"):
        HealthMonitor(Scripted("", FakeTime()), lambda _: None, interval=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:8080", ("::1", 8080)),
        ("db.local:5432", ("db.local", 5432)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", ":80", "h:0", "h:70000", "h:x"])
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        parse_host_port(text)


def test_check_constructors_validate() -> None:
    with pytest.raises(ConfigError, match="invalid check URL"):
        HttpCheck("ftp://x/")
    with pytest.raises(ConfigError, match="empty"):
        CommandCheck("  ")


async def test_a_failing_first_probe_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    time = FakeTime()
    monitor = HealthMonitor(Scripted("--", time), lambda _: None, sleep=time.sleep, clock=time.clock)
    logger = logging.getLogger("muster.registration.health")
    logger.addHandler(caplog.handler)  # whatever configured the "muster" logger before
    try:
        with caplog.at_level("INFO", logger="muster.registration.health"):
            await monitor.step()
            await monitor.step()
    finally:
        logger.removeHandler(caplog.handler)
    # The same record may arrive twice (our handler and root's): count records, not arrivals.
    waiting = {id(r): r for r in caplog.records if "registration.health.waiting" in r.getMessage()}
    assert len(waiting) == 1 and "check=scripted" in next(iter(waiting.values())).getMessage()


async def test_a_timed_out_command_check_returns_though_a_detached_child_holds_its_output(
    tmp_path: Path,
) -> None:
    child_pid = tmp_path / "child.pid"
    # setsid puts the child out of the check's process group, beyond the timeout's kill;
    # it inherits the check's output. Waiting for that output's end would wait for it.
    check = CommandCheck(f"setsid sleep 30 & echo $! > {child_pid}; sleep 30")
    monitor = HealthMonitor(check, lambda _: None, timeout=0.5)
    started = time.monotonic()
    try:
        result = await monitor.probe()
        assert not result.ok and "timed out" in result.detail
        assert time.monotonic() - started < 10
    finally:
        if child_pid.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(child_pid.read_text()), signal.SIGKILL)
