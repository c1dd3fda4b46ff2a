"""Steady load through nginx while a server joins and leaves every 500 ms: no request fails.

Debian's ``wrk`` drives the load. With the reload data plane each change goes through the
daemon, the whole-config check and a confirmed reload; reloads close idle keep-alive
connections, so wrk may see socket errors, which are reported, not asserted. With the Lua
data plane no change reloads nginx: there, socket errors must be zero too and nginx's
workers must be the same processes at the end.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

from muster.dataplane.nginx.conf import lua_available
from muster.stack.demo import DemoServer
from muster.stack.etcd import etcd_available, free_port
from muster.stack.local import Stack, UpOptions
from muster.stack.nginx import nginx_available

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd"),
    pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (Debian package wrk)"),
]

DURATION = 20
PERIOD = 0.5


def parse_wrk(output: str) -> dict[str, int]:
    """Requests, non-2xx answers and socket errors from wrk's summary."""
    figures = {"requests": int(re.search(r"(\d+) requests in", output).group(1))}  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["non2xx"] = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    names = ("connect", "read", "write", "timeout")
    for name, value in zip(names, errors.groups() if errors else "0000", strict=True):
        figures[f"socket_{name}"] = int(value)
    return figures


LUA = pytest.mark.skipif(not lua_available(), reason="needs libnginx-mod-http-lua")


@pytest.mark.parametrize("dataplane", ["reload", pytest.param("lua", marks=LUA)])
async def test_churn_under_load_costs_no_failed_request(tmp_path: Path, dataplane: str) -> None:
    opts = UpOptions(
        port=free_port(), etcd_port=free_port(), state_dir=tmp_path / "state", workers=2, dataplane=dataplane
    )
    stack = Stack(opts)
    await asyncio.to_thread(stack.start)
    try:
        assert stack.nginx is not None
        async with (
            DemoServer("s1") as s1,
            DemoServer("s2") as s2,
            DemoServer("s3") as s3,
            DemoServer("churner") as churner,
        ):
            for server in (s1, s2, s3):
                await asyncio.to_thread(stack.put, f"/services/churn/servers/{server.server_id}",
                                        json.dumps({"host": "127.0.0.1", "port": server.port}))  # fmt: skip
            url = f"{stack.nginx.url}/churn/"
            while s1.hits + s2.hits + s3.hits < 3:
                await asyncio.sleep(0.05)
                await asyncio.to_thread(_get, url)
            workers = stack.nginx.worker_pids()
            wrk = await asyncio.create_subprocess_exec(
                "wrk", "-t2", "-c20", f"-d{DURATION}s", url,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                key = "/services/churn/servers/churner"
                value = json.dumps({"host": "127.0.0.1", "port": churner.port})
                changes = 0
                while wrk.returncode is None:
                    try:
                        await asyncio.wait_for(asyncio.shield(wrk.wait()), PERIOD)
                    except TimeoutError:
                        pass
                    else:
                        break
                    if changes % 2 == 0:
                        await asyncio.to_thread(stack.put, key, value)
                    else:
                        await asyncio.to_thread(stack.delete, key)
                    changes += 1
                output = (await wrk.stdout.read()).decode() if wrk.stdout else ""
            finally:
                if wrk.returncode is None:  # the loop failed: never leave wrk running, unreaped
                    wrk.kill()
                await wrk.wait()
            figures = parse_wrk(output)
            print(f"\nchurn: {changes} changes in {DURATION}s, churner served {churner.hits}; wrk: {figures}")
            assert changes >= DURATION / PERIOD - 4
            assert churner.hits > 0  # it really took part
            assert figures["requests"] > 1000
            assert figures["non2xx"] == 0, output
            if dataplane == "lua":
                assert sum(v for k, v in figures.items() if k.startswith("socket_")) == 0, output
                assert stack.nginx.worker_pids() == workers, "no change may reload nginx"
    finally:
        await asyncio.to_thread(stack.stop)


def _get(url: str) -> None:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            resp.read()
    except OSError:
        pass
