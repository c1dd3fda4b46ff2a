"""The seed post's workflow verbatim: register with curl against etcd's v2 keys API, with a TTL."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from muster.stack.demo import DemoServer
from muster.stack.etcd import etcd_available, free_port
from muster.stack.local import Stack, UpOptions
from muster.stack.nginx import nginx_available

pytestmark = pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd")


def curl_put(etcd: str, service: str, hostname: str, value: str, ttl: int) -> None:
    """curl http://etcd/v2/keys/services/$service/servers/$hostname -d value=... -d ttl=60 -X PUT"""
    data = urllib.parse.urlencode({"value": value, "ttl": ttl}).encode()
    url = f"{etcd}/v2/keys/services/{service}/servers/{hostname}"
    req = urllib.request.Request(url, data=data, method="PUT")
    with urllib.request.urlopen(req, timeout=5) as resp:
        resp.read()


def curl_delete(etcd: str, service: str, hostname: str) -> None:
    req = urllib.request.Request(f"{etcd}/v2/keys/services/{service}/servers/{hostname}", method="DELETE")
    with urllib.request.urlopen(req, timeout=5) as resp:
        resp.read()


async def wait_answer(url: str, want: tuple[int, str], timeout: float = 5.0) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with session.get(url) as resp:
                got = (resp.status, await resp.text())
            if got == want:
                return
            assert asyncio.get_running_loop().time() < deadline, f"{url} answered {got}, not {want}"
            await asyncio.sleep(0.02)


async def test_seed_curl_registration_routes_traffic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The seed's flow without muster's panic guard, which would keep the last server of a
    # service routed for its grace (test_panic_guard.py covers that).
    monkeypatch.setenv("CONFD_PANIC_GRACE", "0")
    opts = UpOptions(port=free_port(), etcd_port=free_port(), backend="etcd", state_dir=tmp_path, workers=1)
    stack = Stack(opts)
    await asyncio.to_thread(stack.start)
    try:
        assert stack.nginx is not None
        etcd = stack.etcd_urls[0]
        async with DemoServer("web-1") as server:
            value = json.dumps({"host": "127.0.0.1", "port": server.port})
            await asyncio.to_thread(curl_put, etcd, "web", "web-1", value, 60)
            await wait_answer(f"{stack.nginx.url}/web/", (200, "web-1\n"))
            # The seed's 45-second refresh loop: the same PUT again changes nothing.
            await asyncio.to_thread(curl_put, etcd, "web", "web-1", value, 60)
            await wait_answer(f"{stack.nginx.url}/web/", (200, "web-1\n"))
            # The seed's shutdown: DELETE the key; the service is gone.
            await asyncio.to_thread(curl_delete, etcd, "web", "web-1")
            await wait_answer(f"{stack.nginx.url}/web/", (404, "muster: no such service\n"))
            # A TTL that runs out takes the server away just the same.
            await asyncio.to_thread(curl_put, etcd, "web", "web-1", value, 2)
            await wait_answer(f"{stack.nginx.url}/web/", (200, "web-1\n"))
            await wait_answer(f"{stack.nginx.url}/web/", (404, "muster: no such service\n"), timeout=8)
    finally:
        await asyncio.to_thread(stack.stop)
