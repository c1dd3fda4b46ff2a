"""The asyncio agent and the Python API over the shipped MemoryRegistrar (short real TTLs, no network)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from muster.errors import ConfigError, RegistrationError
from muster.registration import registration, sync_registration
from muster.registration.agent import Agent, default_op_timeout
from muster.registration.health import CheckResult
from muster.registration.lease import Backoff
from muster.registration.testing import MemoryLease, MemoryRegistrar
from muster.registration.validate import RegistrationSpec

KEY = "/services/web/servers/a"
FAST = Backoff(base=0.01, cap=0.05)


def spec(ttl: int = 1) -> RegistrationSpec:
    return RegistrationSpec.create("web", "10.0.0.5", 8080, server_id="a", ttl=ttl, meta={"zone": "eu"})


async def until(condition: object, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_registers_refreshes_and_revokes_on_stop() -> None:
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=1), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    assert store.values == {KEY: '{"host":"10.0.0.5","port":8080,"zone":"eu"}'}
    await until(lambda: ("keepalive", KEY) in store.calls)
    agent.stop()
    assert await task is True
    assert store.values == {}
    assert store.calls[-1] == ("revoke", KEY)
    assert not agent.registered


async def test_keeps_retrying_while_the_store_is_down_and_returns_with_it() -> None:
    store = MemoryRegistrar()
    store.unavailable = True
    agent = Agent(store, spec(), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await until(lambda: len(store.calls) >= 5)
    assert store.values == {}
    store.unavailable = False
    await asyncio.wait_for(agent.wait_registered(), 1.0)
    assert KEY in store.values
    agent.stop()
    assert await task is True


async def test_lost_lease_is_replaced_and_the_key_written_again() -> None:
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=1), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    first = set(store.leases)
    store.expire(KEY)  # etcd restored from a snapshot, or the lease ran out during a partition
    assert store.values == {}
    await until(lambda: KEY in store.values)
    assert set(store.leases).isdisjoint(first)
    agent.stop()
    await task


async def test_health_removes_and_restores_the_key() -> None:
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=5), healthy=False, backoff=FAST)
    task = asyncio.create_task(agent.run())
    await asyncio.sleep(0.05)
    assert store.calls == []  # nothing written before the service is healthy
    agent.set_healthy(True)
    await agent.wait_registered()
    agent.set_healthy(False)
    await asyncio.wait_for(agent.wait_deregistered(), 1.0)
    assert store.values == {}
    agent.set_healthy(True)
    await asyncio.wait_for(agent.wait_registered(), 1.0)
    agent.stop()
    await task


async def test_cancelling_run_deregisters_first() -> None:
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=30), backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.values == {}


async def test_a_hanging_store_cannot_block_shutdown_beyond_the_stop_timeout() -> None:
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=30), op_timeout=0.05, stop_timeout=0.3, backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    store.hang = True
    agent.stop()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(task, 2.0) is False  # abandoned: the TTL will remove it
    assert 0.25 <= loop.time() - started < 2.0
    assert store.calls.count(("revoke", KEY)) >= 2


async def test_a_hanging_register_times_out_and_is_retried() -> None:
    store = MemoryRegistrar()
    store.hang = True
    agent = Agent(store, spec(), op_timeout=0.05, backoff=FAST)
    task = asyncio.create_task(agent.run())
    await until(lambda: len(store.calls) >= 3)
    store.hang = False
    await asyncio.wait_for(agent.wait_registered(), 1.0)
    agent.stop()
    await task


def test_default_op_timeout_is_a_third_of_the_ttl_within_bounds() -> None:
    assert default_op_timeout(1) == 1.0
    assert default_op_timeout(9) == 3.0
    assert default_op_timeout(60) == 5.0


async def test_registration_context_manager_with_a_check_function() -> None:
    store = MemoryRegistrar()
    healthy = True

    async def check() -> bool:
        return healthy

    reg = registration(
        "web",
        "10.0.0.5",
        8080,
        server_id="a",
        ttl=5,
        registrar=store,
        check=check,
        check_interval=0.02,
        rise=2,
        fall=2,
    )
    async with reg:
        await asyncio.wait_for(reg.wait_registered(), 1.0)
        assert reg.registered and KEY in store.values
        healthy = False
        await asyncio.wait_for(reg.wait_deregistered(), 1.0)
        assert store.values == {}
        healthy = True
        await asyncio.wait_for(reg.wait_registered(), 1.0)
    assert store.values == {}
    assert reg.clean is True
    assert "key=/services/web/servers/a" in repr(reg)


async def test_registration_body_error_still_deregisters() -> None:
    store = MemoryRegistrar()
    with pytest.raises(ZeroDivisionError):
        async with registration("web", "10.0.0.5", 8080, server_id="a", registrar=store) as reg:
            await reg.wait_registered()
            1 / 0  # noqa: B018
    assert store.values == {}


async def test_manual_health_and_check_objects() -> None:
    class Flaky:
        description = "flaky"

        async def __call__(self) -> CheckResult:
            return CheckResult(True, "fine")

    store = MemoryRegistrar()
    async with registration(
        "web", "10.0.0.5", 8080, registrar=store, check=Flaky(), check_interval=0.01, rise=1
    ) as reg:
        await asyncio.wait_for(reg.wait_registered(), 1.0)
        reg.set_healthy(False)  # a manual report wins until the next flip of the check
        await asyncio.wait_for(reg.wait_deregistered(), 1.0)


def test_invalid_input_fails_before_anything_is_written() -> None:
    store = MemoryRegistrar()
    with pytest.raises(RegistrationError, match="invalid service name"):
        registration("web/x", "10.0.0.5", 8080, registrar=store)
    with pytest.raises(ConfigError, match="unknown backend 'zk'"):
        registration("web", "10.0.0.5", 8080, backend="zk")
    with pytest.raises(ConfigError, match="rise and fall"):
        registration("web", "10.0.0.5", 8080, registrar=store, check=lambda: None, rise=0)
    assert store.calls == []


async def test_non_registrar_backend_is_refused_on_enter() -> None:
    with pytest.raises(ConfigError, match="cannot register"):
        async with registration("web", "10.0.0.5", 8080, backend="memory"):
            pass  # pragma: no cover


def test_sync_registration_runs_in_its_own_thread() -> None:
    store = MemoryRegistrar()
    with sync_registration("web", "10.0.0.5", 8080, server_id="a", ttl=5, registrar=store) as reg:
        assert reg.wait_registered(timeout=2.0)
        assert reg.registered
        assert KEY in store.values
        reg.set_healthy(False)
        assert reg.wait_deregistered(timeout=2.0)
        reg.set_healthy(True)
        assert reg.wait_registered(timeout=2.0)
    assert store.values == {}
    assert not any(t.name.startswith("muster-register") for t in threading.enumerate())


def test_sync_registration_reports_open_errors() -> None:
    with pytest.raises(ConfigError, match="cannot register"):
        with sync_registration("web", "10.0.0.5", 8080, backend="memory"):
            pass  # pragma: no cover


async def test_presumed_expiry_while_the_store_hangs_is_reported() -> None:
    store = MemoryRegistrar()
    agent = Agent(store, spec(ttl=1), op_timeout=0.05, backoff=FAST)
    task = asyncio.create_task(agent.run())
    await agent.wait_registered()
    store.hang = True  # refreshes time out from now on
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(agent.wait_deregistered(), 2.0)
    assert loop.time() - started <= 1.5  # at the lease's presumed expiry (1 s), not later
    store.hang = False
    await asyncio.wait_for(agent.wait_registered(), 1.0)
    agent.stop()
    await task


class BrokenConfig(MemoryRegistrar):
    async def register(self, key: str, value: str, ttl: int) -> MemoryLease:
        raise ConfigError("cannot load TLS files (/nope.pem)")


async def test_config_error_from_the_store_ends_the_block_with_that_error() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        async with registration("web", "10.0.0.5", 8080, registrar=BrokenConfig()):
            await asyncio.sleep(30)  # cancelled by the failure, not waited out
    assert loop.time() - started < 1.0


async def test_manual_health_starting_unhealthy() -> None:
    store = MemoryRegistrar()
    async with registration("web", "10.0.0.5", 8080, registrar=store, healthy=False) as reg:
        await asyncio.sleep(0.05)
        assert store.calls == []
        reg.set_healthy(True)
        await asyncio.wait_for(reg.wait_registered(), 1.0)
    assert store.values == {}
