"""Tiny HTTP backends for the data plane tests, and whether this host has an IPv6 loopback."""

from __future__ import annotations

import socket

from aiohttp import web


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


async def text_backend(text: str, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    """An aiohttp server on ``host`` answering ``text`` to GET of any path; its runner and port."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=text)

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, 0).start()
    return runner, int(runner.addresses[0][1])
