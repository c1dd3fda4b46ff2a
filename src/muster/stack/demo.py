"""Tiny HTTP servers that answer every request with their own server ID: ``muster up``'s demo.

The integration tests and benchmarks use them as backends too, since each counts the
requests it served: a test can tell which server nginx picked, and whether a removed one
still gets traffic.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from types import TracebackType

from aiohttp import web

__all__ = ["DemoServer"]


class DemoServer:
    """One aiohttp server on ``127.0.0.1``; ``async with`` starts and stops it.

    Every request gets ``200`` with the body ``SERVER_ID\\n``; ``hits`` counts them.
    ``port=0`` picks a free port (``.port`` tells which once started).
    """

    def __init__(self, server_id: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server_id = server_id
        self.host = host
        self.port = port
        self.hits = 0
        self._body = f"{server_id}\n"
        self._runner: web.ServerRunner | None = None

    def __repr__(self) -> str:
        return f"<DemoServer {self.server_id} {self.host}:{self.port} hits={self.hits}>"

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        self.hits += 1
        return web.Response(text=self._body)

    async def start(self) -> None:
        # aiohttp's low-level server: every method and path gets the same answer, and
        # without an Application and its router a request costs about 30% less CPU
        # (these servers share two cores with nginx and wrk in the benchmarks). No access
        # log: under load it would cost more than the answer.
        runner = web.ServerRunner(web.Server(self._handle, access_log=None), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> DemoServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def serve(servers: list[DemoServer]) -> None:
    """Run ``servers`` until SIGTERM or SIGINT."""

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for server in servers:
        await server.start()
    print(" ".join(f"{s.server_id}={s.port}" for s in servers), flush=True)
    try:
        await stop.wait()
    finally:
        for server in servers:
            await server.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m muster.stack.demo ID[:PORT] ...``: demo servers in a process of their own.

    Prints ``ID=PORT ...`` once all listen (port 0 or none: a free port).
    """

    args = sys.argv[1:] if argv is None else argv
    servers = []
    for arg in args:
        server_id, _, port = arg.partition(":")
        servers.append(DemoServer(server_id, port=int(port or 0)))
    asyncio.run(serve(servers))


if __name__ == "__main__":
    main()
