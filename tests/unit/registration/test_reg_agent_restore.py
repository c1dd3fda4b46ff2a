"""The agent puts back a key that vanished while its lease lives (issue 14), over MemoryRegistrar."""

from __future__ import annotations

import asyncio
import logging

import pytest

from muster.registration.agent import Agent
from muster.registration.lease import Backoff
from muster.registration.testing import MemoryLease, MemoryRegistrar
from muster.registration.validate import RegistrationSpec

KEY = "/services/web/servers/a"
VALUE = '{"host":"10.0.0.5","port":8080}'
FAST = Backoff(base=0.01, cap=0.05)


def spec(ttl: int = 1) -> RegistrationSpec:
    return RegistrationSpec.create("web", "10.0.0.5", 8080, server_id="a", ttl=ttl)


async def until(condition: object, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def restored_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("registration.key.restored")]


async def test_deleted_key_is_put_back_on_the_same_lease_within_one_refresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "muster.registration")
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=1), backoff=FAST)  # refreshed every 1/3 s
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    leases = set(store.leases)
    store.delete(KEY)  # etcdctl del --prefix /services
    loop = asyncio.get_running_loop()
    deleted = loop.time()
    await until(lambda: KEY in store.values)
    assert loop.time() - deleted < 1 / 3 + 0.2  # one refresh interval, plus scheduling slack
    assert store.values[KEY] == VALUE
    assert set(store.leases) == leases  # the same lease, not a new one
    assert ("restore", KEY) in store.calls and store.calls.count(("register", KEY)) == 1
    assert restored_lines(caplog) == [f"registration.key.restored key={KEY} lease=same"]
    record = next(r for r in caplog.records if r.getMessage().startswith("registration.key.restored"))
    assert record.levelno == logging.WARNING
    agent.stop()
    assert await task is True
    assert store.values == {}


async def test_an_intact_key_is_checked_but_never_written_again() -> None:
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=1), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    await until(lambda: store.calls.count(("verify", KEY)) >= 3)
    ops = [op for op, _ in store.calls]
    assert "restore" not in ops and ops.count("register") == 1
    assert ops[1:7] == ["keepalive", "verify"] * 3  # each refresh: keepalive, then the check
    agent.stop()
    await task


async def test_lost_lease_logs_the_key_restored_on_a_new_lease(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "muster.registration")
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=1), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    store.expire(KEY)  # v2: the key and its TTL deleted together; v3: the lease revoked
    await until(lambda: KEY in store.values)
    await until(lambda: restored_lines(caplog) != [])
    assert restored_lines(caplog) == [f"registration.key.restored key={KEY} lease=new"]
    assert "registration.lease.lost" in caplog.text
    agent.stop()
    await task


async def test_first_registration_and_health_recovery_are_not_restorations(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "muster.registration")
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=5), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    agent.set_healthy(False)
    await asyncio.wait_for(agent.wait_deregistered(), 1.0)
    agent.set_healthy(True)
    await asyncio.wait_for(agent.wait_registered(), 1.0)
    agent.stop()
    await task
    assert restored_lines(caplog) == []


async def test_registered_is_false_while_the_key_is_missing() -> None:
    store = MemoryRegistrar()
    store.failing = {"restore"}
    agent = Agent(store, spec(ttl=1), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    store.delete(KEY)
    await asyncio.wait_for(agent.wait_deregistered(), 1.0)
    assert agent.machine.key_missing
    store.failing = set()
    await asyncio.wait_for(agent.wait_registered(), 1.0)
    assert store.values[KEY] == VALUE
    agent.stop()
    await task


async def test_a_failing_restore_is_retried_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "muster.registration")
    store = MemoryRegistrar()
    store.failing = {"restore"}
    agent = Agent(store, spec(ttl=30), backoff=FAST)  # next refresh in 10 s: only restores retry
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    store.delete(KEY)
    agent.machine.next_at = 0.0  # refresh now rather than in 10 s
    agent.set_healthy(True)  # (no change) just wakes the driver
    await until(lambda: store.calls.count(("restore", KEY)) >= 3)
    assert KEY not in store.values
    assert "registration.restore.failed" in caplog.text
    store.failing = set()
    await until(lambda: KEY in store.values)
    assert store.calls.count(("register", KEY)) == 1
    agent.stop()
    await task


async def test_a_failing_check_assumes_the_key_is_there(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "muster.registration")
    store = MemoryRegistrar()
    store.failing = {"verify"}  # e.g. a role that may write the key but not read it
    agent = Agent(store, spec(ttl=1), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    await until(lambda: store.calls.count(("keepalive", KEY)) >= 3)
    assert agent.registered and store.values[KEY] == VALUE
    warnings = [r for r in caplog.records if r.getMessage().startswith("registration.verify.failed")]
    assert len(warnings) == 1  # once, not every refresh
    assert "restore" not in [op for op, _ in store.calls]
    assert "registration.store.recovered" not in caplog.text  # the keepalives never failed
    agent.stop()
    await task


async def test_a_key_taken_by_another_lease_is_left_to_it() -> None:
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=1), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    other = await store.register(KEY, '{"host":"10.0.0.6","port":8080}', 30)  # same ID, another agent
    await until(lambda: store.calls.count(("verify", "")) >= 2)
    assert store.values[KEY] == '{"host":"10.0.0.6","port":8080}'
    assert other.lease_id in store.leases
    assert "restore" not in [op for op, _ in store.calls]
    agent.stop()
    await task


class Scripted(MemoryLease):
    """A lease whose checks and restores answer from scripts (then as MemoryLease does)."""

    verify_answers: list[bool] = []
    restore_answers: list[bool] = []

    async def verify(self) -> bool:
        result = await super().verify()
        return self.verify_answers.pop(0) if self.verify_answers else result

    async def restore(self) -> bool:
        result = await super().restore()
        return self.restore_answers.pop(0) if self.restore_answers else result


class ScriptedStore(MemoryRegistrar):
    async def register(self, key: str, value: str, ttl: int) -> MemoryLease:
        lease = await super().register(key, value, ttl)
        lease.__class__ = Scripted
        return lease


async def test_restore_that_finds_the_key_rewritten_logs_no_restoration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "muster.registration")
    Scripted.verify_answers[:] = [False]  # missing at the first check...
    Scripted.restore_answers[:] = [False]  # ...but someone else wrote it before our restore
    store = ScriptedStore()
    agent = Agent(store, spec(ttl=1), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    await until(lambda: "registration.restore.skipped" in caplog.text)
    assert restored_lines(caplog) == []
    await until(lambda: store.calls.count(("verify", KEY)) >= 2)  # and it keeps checking
    assert not agent.machine.key_missing
    agent.stop()
    await task


async def test_cancelled_during_the_check_still_deregisters() -> None:
    store = MemoryRegistrar()
    store.hanging = {"verify"}
    agent = Agent(store, spec(ttl=1), op_timeout=5.0, backoff=FAST)
    task = asyncio.create_task(agent.run())
    await until(lambda: ("verify", KEY) in store.calls)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2.0)
    assert store.values == {}
    assert store.calls[-1] == ("revoke", KEY)
