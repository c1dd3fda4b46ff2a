"""A hostile registry value costs only its own entry, in both data planes, before and after a
daemon restart: the other servers of the same batch still route."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from muster.dataplane.nginx.conf import lua_available
from muster.stack.demo import DemoServer
from muster.stack.etcd import etcd_available, free_port
from muster.stack.local import Stack, UpOptions
from muster.stack.nginx import nginx_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd"),
]

HOSTILE = [
    "[" * 2000 + "]" * 2000,
    '{"host": "127.0.0.1", "port": ' + "9" * 5000 + "}",
    '{"host": "127.0.0.1\\n}", "port": 80}',
    '{"host": "255.255.255.255", "port": 80}',
    "\x00\x1b[31m\n",
]


@contextmanager
def text_backend_process(text: str) -> Iterator[int]:
    """muster up's demo server answering ``text``, on its own event loop thread; its port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = DemoServer(text)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server.port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def body(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode().strip())
    except (urllib.error.URLError, OSError) as exc:
        return f"error {exc}"


def wait_body(url: str, want: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        last = body(url)
        if last == want:
            return
        time.sleep(0.05)
    pytest.fail(f"{url} never answered {want!r}; last: {last!r}")


@pytest.fixture(params=["lua", "reload"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    if request.param == "lua" and not lua_available():
        pytest.skip("libnginx-mod-http-lua is not installed")
    opts = UpOptions(port=free_port(), etcd_port=free_port(), state_dir=tmp_path / "state", workers=1,
                     dataplane=request.param, demo=0)  # fmt: skip
    running = Stack(opts)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_hostile_values_cost_only_their_entry_across_a_restart(stack: Stack) -> None:
    assert stack.nginx is not None and stack.daemon is not None
    url = f"http://127.0.0.1:{stack.nginx.port}/web/"
    with text_backend_process("good") as good_port, text_backend_process("later") as later_port:
        for i, value in enumerate(HOSTILE):
            stack.put(f"/services/web/servers/h{i}", value)
        stack.put("/services/web/servers/good", json.dumps({"host": "127.0.0.1", "port": good_port}))
        wait_body(url, "good")
        log = stack.state / "logs" / "muster.log"
        assert "value is nested too deeply" in log.read_text()

        stack.daemon.stop()
        stack.daemon.start()
        stack.delete("/services/web/servers/good")
        stack.put("/services/web/servers/later", json.dumps({"host": "127.0.0.1", "port": later_port}))
        wait_body(url, "later")
        text = log.read_text()
        assert "batch.crashed" not in text and "Traceback" not in text
        assert "\x1b" not in text and "\x00" not in text, "control characters are escaped"
