"""The status server under abuse: a connection cap that serves newcomers, an idle timeout, quiet logs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from muster.errors import ConfigError
from muster.status import Status, StatusServer


@contextlib.asynccontextmanager
async def serving(
    status: Status | None = None, address: str = "127.0.0.1:0", **kw: float
) -> AsyncIterator[StatusServer]:
    server = StatusServer(status or Status(), address, **kw)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """Whether the server ends the connection within ``within`` seconds (anything unread is skipped)."""
    try:
        await asyncio.wait_for(reader.read(), within)
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def wait_connections(server: StatusServer, n: int) -> None:
    async with asyncio.timeout(5):
        while server._listener is None or server._listener.connections != n:
            await asyncio.sleep(0.01)


async def healthz(port: int) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as resp:
        return resp.status


async def test_a_new_connection_closes_the_one_open_longest(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(max_connections=3, idle_timeout=30) as server:
        conns = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        await wait_connections(server, 3)
        assert await healthz(server.port) == 200, "a newcomer is served although the cap is reached"
        assert await closed_by_server(conns[0][0], 2), "the oldest made room"
        assert not await closed_by_server(conns[1][0], 0.2) and not await closed_by_server(conns[2][0], 0.01)
        more = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(20)]
        await wait_connections(server, 3)
        assert server._listener is not None and server._listener.connections == 3
        full = [r for r in caplog.records if "status.connections.full" in r.getMessage()]
        assert len(full) == 1, "evictions are logged at most once a minute"
        for _, writer in conns + more:
            writer.close()


async def test_a_silent_connection_is_closed_after_the_idle_timeout() -> None:
    async with serving(idle_timeout=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await closed_by_server(reader, 3), "a client that never sends is dropped"
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.sleep(0.1)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        assert await closed_by_server(reader, 3), "and so is a keep-alive one that goes quiet"
        writer.close()
        await wait_connections(server, 0)


async def test_closing_the_server_drops_its_connections_and_frees_the_port() -> None:
    async with serving() as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await wait_connections(server, 1)
    assert await closed_by_server(reader, 2)
    writer.close()
    with socket.create_server(("127.0.0.1", server.port)):
        pass


async def test_off_loopback_a_token_is_required_and_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "muster")
    async with serving(address="127.0.0.1:0"), serving(address="localhost:0"):
        pass
    assert "status.exposed" not in caplog.text
    with pytest.raises(ConfigError, match="0.0.0.0 is not a loopback address.*-status-token-file"):
        async with serving(address="0.0.0.0:0"):
            pass
    server = StatusServer(Status(), "0.0.0.0:0", token="s3cret")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{server.port}"
            for path in ("/healthz", "/", "/static/dashboard.js", "/static/dashboard.css"):
                async with session.get(base + path) as resp:
                    assert resp.status == 200, f"{path} holds no data: no token needed"
            for path in ("/status", "/metrics", "/api/dashboard", "/readyz"):
                async with session.get(base + path) as resp:
                    assert resp.status == 401, path
            async with session.get(f"{base}/status", headers={"Authorization": "Bearer wrong"}) as resp:
                assert resp.status == 401
            async with session.get(f"{base}/status", headers={"Authorization": "Bearer s3cret"}) as resp:
                assert resp.status == 200
            async with session.get(f"{base}/api/dashboard?token=s3cret") as resp:
                assert resp.status == 200 and (await resp.json())["services"] == []
            async with session.post(f"{base}/status?token=s3cret") as resp:
                assert resp.status == 405, "read-only"
    finally:
        await server.aclose()
    assert "status.exposed" in caplog.text and "token required" in caplog.text


async def test_status_and_readyz_mask_credentials_in_errors() -> None:
    status = Status()
    status.record(
        failures={"app.toml": "range http://root:hunter22@10.0.0.1:2379: connection refused"},
        changed=0,
        revision=None,
        backend_failed=False,
        seconds=0,
    )
    async with serving(status) as server, aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.port}/status") as resp:
            body = await resp.text()
    assert "hunter22" not in body and "http://***@10.0.0.1:2379" in body
