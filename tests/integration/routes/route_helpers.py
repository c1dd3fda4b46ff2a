"""Backends and a client for the route tests: each backend says who it is and what it got."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from muster.stack.local import Stack, UpOptions


@dataclass
class Echo:
    """An HTTP backend answering ``{"id", "path", "headers"}`` as JSON (or echoing a websocket).

    ``delay`` makes it slow; a request's ``X-Status`` header is the status it answers (so
    probes do not trip nginx's passive health checks); ``hits`` counts requests.
    """

    ident: str
    status: int = 200
    delay: float = 0.0
    hits: int = 0
    port: int = 0
    _runner: web.AppRunner | None = field(default=None, repr=False)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                await ws.send_str(f"{self.ident}:{msg.data}")
            return ws
        if self.delay:
            await asyncio.sleep(self.delay)
        body = {"id": self.ident, "path": request.raw_path, "headers": dict(request.headers)}
        status = int(request.headers.get("X-Status", self.status))
        return web.json_response(body, status=status, headers={"X-Upstream": self.ident})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def server_value(self) -> str:
        return json.dumps({"host": "127.0.0.1", "port": self.port})


class Backends:
    """Echo backends on an event loop of their own thread, so tests may block (the stack is sync)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.started: list[Echo] = []

    def add(self, ident: str, **kw: float | int) -> Echo:
        echo = Echo(ident, **kw)  # type: ignore[arg-type]
        asyncio.run_coroutine_threadsafe(echo.start(), self.loop).result(10)
        self.started.append(echo)
        return echo

    def close(self) -> None:
        for echo in self.started:
            asyncio.run_coroutine_threadsafe(echo.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@contextmanager
def route_stack(tmp_path, plane: str) -> Iterator[Stack]:  # type: ignore[no-untyped-def]
    """``muster up`` with no demo servers, one nginx worker, in ``plane``."""
    from muster.stack.etcd import free_port

    opts = UpOptions(port=free_port(), etcd_port=free_port(), state_dir=tmp_path / "state", workers=1,
                     dataplane=plane, demo=0)  # fmt: skip
    stack = Stack(opts)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def _started_at(pid: int) -> float:
    """When process ``pid`` started, in seconds since the epoch (10 ms resolution)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME) + int(fields[19]) / os.sysconf("SC_CLK_TCK")


async def settle(stack: Stack, timeout: float = 15.0) -> None:
    """Wait until every nginx worker started after the rendered file was last written.

    With the reload plane, one answer from a new worker does not mean the old workers stopped
    taking connections; after this, every new connection meets the rendered config. With the
    Lua plane (no render per change) it returns at once.
    """
    assert stack.nginx is not None
    deadline = time.monotonic() + timeout
    while True:
        written = stack.dest.stat().st_mtime
        workers = stack.nginx.worker_pids()
        if workers and all(_started_at(pid) > written for pid in workers):
            return
        assert time.monotonic() < deadline, "nginx did not load the rendered config"
        await asyncio.sleep(0.02)


@dataclass
class Answer:
    status: int
    ident: str
    path: str
    headers: dict[str, str]
    response_headers: dict[str, str]


async def fetch(session: aiohttp.ClientSession, base: str, host: str, path: str, **kw: object) -> Answer:
    method = str(kw.pop("method", "GET"))
    headers = {"Host": host, **kw.pop("headers", {})}  # type: ignore[dict-item]
    async with session.request(method, base + path, headers=headers, **kw) as resp:  # type: ignore[arg-type]
        text = await resp.text()
        try:
            data = json.loads(text)
        except ValueError:
            data = {"id": "", "path": "", "headers": {}}
        return Answer(resp.status, data.get("id", ""), data.get("path", ""), data.get("headers", {}),
                      dict(resp.headers))  # fmt: skip


async def wait_for(base: str, host: str, path: str, ident: str, timeout: float = 20.0) -> Answer:
    """Poll until ``host`` + ``path`` is served by ``ident`` (``""``: by no backend)."""
    deadline = time.monotonic() + timeout
    last: Answer | None = None
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                last = await fetch(session, base, host, path)
                if last.ident == ident:
                    return last
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{host}{path} never answered by {ident!r}; last {last}")


async def spread(
    base: str, host: str, path: str, n: int, *, concurrency: int = 8, **kw: object
) -> Counter[str]:
    """Which backend answered each of ``n`` requests (``"STATUS"`` when none did)."""
    seen: Counter[str] = Counter()
    queue = iter(range(n))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            answer = await fetch(session, base, host, path, **kw)
            seen[answer.ident or str(answer.status)] += 1

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return seen


def base(stack: Stack) -> str:
    """The URL of the stack's nginx."""
    assert stack.nginx is not None
    return f"http://127.0.0.1:{stack.nginx.port}"
