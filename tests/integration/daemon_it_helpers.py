"""Helpers for the daemon's integration tests: confdirs, writers for v2/v3, an in-process daemon,
and a TCP proxy that can cut the daemon off from etcd while others keep writing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from muster.backends.etcd.v2 import EtcdV2Backend
from muster.backends.etcd.v3 import EtcdV3Backend
from muster.backends.options import BackendOptions
from muster.config import Config
from muster.daemon import Daemon
from muster.daemon.backend import close_backend, create_backend

UPSTREAMS = (
    '{{range $dir := lsdir "/services"}}upstream {{$dir}} {\n'
    '{{range gets (printf "/services/%s/servers/*" $dir)}}  server {{.Value}};\n{{end}}}\n{{end}}'
)


class ConfDir:
    """``<root>/conf.d`` + ``templates`` + ``out``; each ``add()`` is one resource."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("conf.d", "templates", "out"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.reloads = root / "reloads.log"

    def add(
        self,
        name: str,
        template: str = UPSTREAMS,
        *,
        prefix: str = "",
        keys: str = '["/services"]',
        reload_cmd: str | None = None,
        extra: str = "",
    ) -> Path:
        (self.root / "templates" / f"{name}.tmpl").write_text(template)
        dest = self.root / "out" / name
        if reload_cmd is None:
            reload_cmd = f"echo {name} >> {self.reloads}"
        lines = [f'src = "{name}.tmpl"', f'dest = "{dest}"', f"keys = {keys}", f'prefix = "{prefix}"']
        if reload_cmd:
            lines.append(f"reload_cmd = {json.dumps(reload_cmd)}")  # a JSON string is a TOML basic string
        (self.root / "conf.d" / f"{name}.toml").write_text("[template]\n" + "\n".join(lines) + "\n" + extra)
        return dest

    def reload_count(self) -> int:
        return len(self.reloads.read_text().split()) if self.reloads.exists() else 0


class Writer:
    """Writes keys the way another client would: etcd v3 put, or v2 PUT (optionally with a TTL)."""

    def __init__(self, backend_name: str, *urls: str) -> None:
        options = BackendOptions(nodes=urls)
        self.v3 = EtcdV3Backend(options=options) if backend_name == "etcdv3" else None
        self.v2 = EtcdV2Backend(options=options) if backend_name == "etcd" else None

    async def put(self, key: str, value: str, ttl: int | None = None) -> int:
        if self.v3 is not None:
            return await self.v3.client.put(key.encode(), value.encode())
        assert self.v2 is not None
        reply: dict[str, Any] = await self.v2.client.put(key, value, ttl=ttl)
        return int(reply["node"]["modifiedIndex"])

    async def refresh(self, key: str, ttl: int) -> None:
        """v2 TTL refresh (``refresh=true``, no value): must not count as a change."""
        assert self.v2 is not None
        await self.v2.client.put(key, ttl=ttl, refresh=True, prev_exist=True)

    async def delete(self, key: str) -> None:
        if self.v3 is not None:
            await self.v3.client.delete_range(key.encode())
        else:
            assert self.v2 is not None
            await self.v2.client.delete(key)

    async def aclose(self) -> None:
        for backend in (self.v3, self.v2):
            if backend is not None:
                await backend.aclose()

    async def __aenter__(self) -> Writer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def daemon_config(confdir: ConfDir, backend: str, *urls: str, **kw: Any) -> Config:
    return replace(Config(), confdir=str(confdir.root), backend=backend, nodes=tuple(urls), watch=True, **kw)


@contextlib.asynccontextmanager
async def running(config: Config, mode: str = "watch") -> AsyncIterator[Daemon]:
    """The daemon in-process, with the real backend named by ``config``; stopped on exit."""
    backend = create_backend(config)
    daemon = Daemon(config, backend)
    task = asyncio.create_task(daemon.run_watch() if mode == "watch" else daemon.run_interval())
    try:
        yield daemon
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await close_backend(backend)
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


async def eventually(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> float:
    """Poll (1 ms) until ``condition()``; return how long it took; fail after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.001)
    return time.monotonic() - start


def read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


@dataclass
class TcpProxy:
    """A loopback TCP forwarder; ``cut()`` drops every connection and refuses new ones."""

    target_host: str
    target_port: int
    port: int = 0
    _server: asyncio.Server | None = None
    _open: bool = True

    async def start(self) -> None:
        self._conns: set[asyncio.StreamWriter] = set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self._conns.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._conns.difference_update((writer, up_writer))

    def cut(self) -> None:
        self._open = False
        for conn in list(self._conns):
            conn.close()

    def restore(self) -> None:
        self._open = True

    async def aclose(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
