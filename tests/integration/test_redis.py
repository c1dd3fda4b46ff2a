"""The redis backend against a private redis-server: confd's key layout, the watch, registrations.

Keys are written and read back with a separate redis-py client, as ``redis-cli`` would.
Registration runs as a real ``muster register --backend redis`` subprocess.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from register_helpers import SpawnAgent, spawn_fixture  # noqa: F401  (the ``spawn`` fixture)

from muster.backends import BackendOptions, create
from muster.backends.redis.backend import RedisBackend
from muster.backends.redis.client import parse_node
from muster.errors import BackendError, BackendUnavailable, WatchUnsupported

TTL = 3


@pytest.fixture
async def raw(redis_server: Any) -> AsyncIterator[Any]:
    import redis.asyncio

    client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
    yield client
    await client.aclose()


def backend(node: str, **options: Any) -> RedisBackend:
    made = create("redis", BackendOptions(nodes=(node,), **options))
    assert isinstance(made, RedisBackend)
    return made


async def test_strings_hashes_and_directories_as_confd_reads_them(
    redis_server: Any, raw: Any, key_prefix: str
) -> None:
    p = key_prefix
    await raw.set(f"{p}/app/port", "8080")
    await raw.set(f"{p}/app/hosts/a", "10.0.0.1")
    await raw.hset(f"{p}/app/db", mapping={"user": "u", "name": "n"})  # below a directory: skipped
    await raw.hset(f"{p}/cfg", mapping={"a": "1", "b": "2"})
    await raw.set(f"{p}/apple", "no")
    async with backend(redis_server.node) as b:
        snapshot = await b.get_values([f"{p}/app", f"{p}/cfg", f"{p}/app/port"])
    assert dict(snapshot.values) == {
        f"{p}/app/port": "8080",
        f"{p}/app/hosts/a": "10.0.0.1",
        f"{p}/cfg/a": "1",
        f"{p}/cfg/b": "2",
    }


async def test_separator_maps_paths_to_redis_names(redis_server: Any, raw: Any, key_prefix: str) -> None:
    name = key_prefix.strip("/").replace("/", ":")
    await raw.set(f"{name}:app:port", "8080")
    await raw.set(f"{name}:app:x*y", "glob characters are literal")
    await raw.hset(f"{name}:h", mapping={"f": "v"})
    async with backend(redis_server.node, separator=":") as b:
        snapshot = await b.get_values([f"{key_prefix}/app", f"{key_prefix}/h"])
    assert dict(snapshot.values) == {
        f"{key_prefix}/app/port": "8080",
        f"{key_prefix}/app/x*y": "glob characters are literal",
        f"{key_prefix}/h/f": "v",
    }


async def test_database_number_in_the_node(redis_server: Any, key_prefix: str) -> None:
    import redis.asyncio

    db3 = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port, db=3)
    try:
        await db3.set(f"{key_prefix}/k", "in db 3")
        async with backend(f"{redis_server.node}/3") as b:
            assert dict((await b.get_values([key_prefix])).values) == {f"{key_prefix}/k": "in db 3"}
            waiter = asyncio.ensure_future(
                b.wait_changed([key_prefix], (await b.get_values([key_prefix])).revision)
            )
            await asyncio.sleep(0.3)
            await db3.set(f"{key_prefix}/k", "changed")
            await asyncio.wait_for(waiter, 5)
        async with backend(redis_server.node) as b:
            assert dict((await b.get_values([key_prefix])).values) == {}
    finally:
        await db3.aclose()


def test_nodes_parse_as_confd_takes_them() -> None:
    assert parse_node("10.0.0.1:6380/2") == {"host": "10.0.0.1", "port": 6380, "db": 2}
    assert parse_node("redis.local") == {"host": "redis.local", "port": 6379, "db": 0}
    assert parse_node("/run/redis.sock/1") == {"unix_socket_path": "/run/redis.sock", "db": 1}
    assert parse_node("rediss://h:6380/0") == {"url": "rediss://h:6380/0"}


async def test_password_and_username(redis_server_factory: Callable[..., Any], key_prefix: str) -> None:
    server = redis_server_factory(password="s3cret-pw")
    async with backend(server.node, password="s3cret-pw") as b:
        assert dict((await b.get_values([key_prefix])).values) == {}
    async with backend(server.node, username="default", password="s3cret-pw") as b:
        assert dict((await b.get_values([key_prefix])).values) == {}
    async with backend(server.node, password="wrong-pw") as b:
        with pytest.raises(BackendError) as info:
            await b.get_values([key_prefix])
        assert "wrong-pw" not in str(info.value)


async def test_an_unreachable_node_is_backend_unavailable_and_the_next_node_is_tried(
    redis_server: Any, raw: Any, key_prefix: str
) -> None:
    from muster.stack.etcd import free_port

    await raw.set(f"{key_prefix}/k", "v")
    dead = f"127.0.0.1:{free_port()}"
    async with backend(dead) as b:
        with pytest.raises(BackendUnavailable):
            await b.get_values([key_prefix])
    async with create("redis", BackendOptions(nodes=(dead, redis_server.node))) as b:
        assert dict((await b.get_values([key_prefix])).values) == {f"{key_prefix}/k": "v"}


async def test_notifications_are_enabled_adding_to_what_is_set(
    redis_server_factory: Callable[..., Any], key_prefix: str
) -> None:
    import redis.asyncio

    server = redis_server_factory(notify_keyspace_events="El")
    client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
    try:
        async with backend(server.node) as b:
            first = await b.get_values([key_prefix])
            waiter = asyncio.ensure_future(b.wait_changed([key_prefix], first.revision))
            await asyncio.sleep(0.3)
            flags = (await client.config_get("notify-keyspace-events"))["notify-keyspace-events"]
            assert {"E", "l", "K", "g", "$", "h", "x", "e"} <= set(
                flags if isinstance(flags, str) else flags.decode()
            )
            await client.set(f"{key_prefix}/a", "1")
            assert await asyncio.wait_for(waiter, 5) > (first.revision or 0)
    finally:
        await client.aclose()


async def test_notifications_off_and_config_refused_is_watch_unsupported(
    redis_server_factory: Callable[..., Any], key_prefix: str
) -> None:
    server = redis_server_factory(extra_args=["--rename-command", "CONFIG", ""])
    async with backend(server.node) as b:
        first = await b.get_values([key_prefix])
        with pytest.raises(WatchUnsupported, match="keyspace notifications are off"):
            await asyncio.wait_for(b.wait_changed([key_prefix], first.revision), 5)


async def test_ttl_refresh_wakes_nobody_but_an_expiry_does(
    redis_server: Any, raw: Any, key_prefix: str
) -> None:
    await raw.set(f"{key_prefix}/k", "v", ex=60)
    async with backend(redis_server.node) as b:
        first = await b.get_values([key_prefix])
        waiter = asyncio.ensure_future(b.wait_changed([key_prefix], first.revision))
        await asyncio.sleep(0.3)
        await raw.expire(f"{key_prefix}/k", 60)
        await asyncio.sleep(0.3)
        assert not waiter.done(), "an EXPIRE refresh woke the watch"
        await raw.pexpire(f"{key_prefix}/k", 1)
        await asyncio.wait_for(waiter, 5)
        assert dict((await b.get_values([key_prefix])).values) == {}


async def test_watch_survives_a_restart_and_reports_the_outage(
    redis_server_factory: Callable[..., Any], key_prefix: str
) -> None:
    import redis.asyncio

    server = redis_server_factory(appendonly=True)
    async with backend(server.node) as b:
        first = await b.get_values([key_prefix])
        waiter = asyncio.ensure_future(b.wait_changed([key_prefix], first.revision))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(0.5)
        assert b.outage() is not None and b.outage() > 0  # type: ignore[operator]
        assert not waiter.done()
        await asyncio.to_thread(server.start)
        back = time.monotonic()
        client = redis.asyncio.Redis(host="127.0.0.1", port=server.port)
        try:
            await client.set(f"{key_prefix}/k", "after")
            await asyncio.wait_for(waiter, 5)
        finally:
            await client.aclose()
        assert time.monotonic() - back < 1.0
        assert dict((await b.get_values([key_prefix])).values) == {f"{key_prefix}/k": "after"}
        assert b.outage() is None


# -- registration ----------------------------------------------------------------------------


async def _wait_for(check: Callable[[], Any], timeout: float) -> float:
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout:
            pytest.fail(f"not true after {timeout}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_register_keeps_restores_and_deregisters(
    redis_server: Any, raw: Any, spawn: SpawnAgent, key_prefix: str
) -> None:
    agent = spawn(redis_server.node, "redis", key_prefix, ttl=TTL)
    key = agent.key

    async def present() -> bool:
        return bool(await raw.exists(key))

    await _wait_for(present, 15)
    value = await raw.get(key)
    assert b'"port": 8080' in value or b'"port":8080' in value
    assert 0 < await raw.ttl(key) <= TTL
    await asyncio.sleep(TTL * 1.5)  # kept alive past its TTL
    assert await present() and 0 < await raw.ttl(key) <= TTL

    await raw.delete(key)
    took = await _wait_for(present, TTL / 3 + 2)
    assert await raw.get(key) == value and 0 < await raw.ttl(key) <= TTL
    agent.wait_output("registration.key.restored")
    print(f"\nredis registration restored {took:.2f}s after the delete (refresh every {TTL / 3:.1f}s)")

    await raw.persist(key)  # a copy without a TTL would outlive the agent: it gets one back
    await _wait_for(lambda: _has_ttl(raw, key), TTL / 3 + 2)

    assert await asyncio.to_thread(agent.signal, signal.SIGTERM) == 0
    assert not await present(), "the key outlived the agent's SIGTERM"


async def _has_ttl(raw: Any, key: str) -> bool:
    return bool(await raw.ttl(key) > 0)


async def test_tls_with_the_client_flags_or_a_rediss_url(
    redis_server_factory: Callable[..., Any], tmp_path: Any, key_prefix: str
) -> None:
    from muster.stack.etcd import free_port, make_certs

    certs = make_certs(tmp_path / "certs")
    tls_port = free_port()
    redis_server_factory(
        extra_args=[
            "--tls-port",
            str(tls_port),
            "--tls-cert-file",
            str(certs.server_cert),
            "--tls-key-file",
            str(certs.server_key),
            "--tls-ca-cert-file",
            str(certs.ca),
            "--tls-auth-clients",
            "optional",
        ]  # fmt: skip
    )
    ca = str(certs.ca)
    for node in (f"127.0.0.1:{tls_port}", f"rediss://127.0.0.1:{tls_port}"):
        async with backend(node, client_ca_keys=ca) as b:
            assert dict((await b.get_values([key_prefix])).values) == {}
    async with backend(f"rediss://127.0.0.1:{tls_port}") as b:  # no CA: the server is not trusted
        with pytest.raises(BackendUnavailable, match="certificate verify failed"):
            await b.get_values([key_prefix])


async def test_register_with_a_separator_writes_what_the_daemon_reads(
    redis_server: Any, raw: Any, spawn: SpawnAgent, key_prefix: str
) -> None:
    agent = spawn(redis_server.node, "redis", key_prefix, "--separator", ":", ttl=TTL)
    name = agent.key.lstrip("/").replace("/", ":")

    async def present() -> bool:
        return bool(await raw.exists(name))

    await _wait_for(present, 15)
    async with backend(redis_server.node, separator=":") as b:
        assert list((await b.get_values([key_prefix])).values) == [agent.key]
    assert await asyncio.to_thread(agent.signal, signal.SIGTERM) == 0
    assert not await present()
