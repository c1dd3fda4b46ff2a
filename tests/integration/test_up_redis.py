"""``muster up --backend redis``: the local stack on a private redis-server serves the demo, and
Ctrl-C leaves nothing behind (the redis-server included)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_nginx_up import (
    assert_demo_routed,
    assert_sigint_leaves_nothing,
    end,
    get_body,
    processes_mentioning,
    read_until,
)

from muster.stack.etcd import free_port
from muster.stack.nginx import nginx_available
from muster.stack.redis import redis_available

pytestmark = pytest.mark.skipif(
    not (nginx_available() and redis_available()), reason="needs nginx and redis-server"
)


def test_up_on_redis_serves_the_demo_and_sigint_stops_every_process(tmp_path: Path) -> None:
    pytest.importorskip("redis", reason="redis-py is not installed (pip install 'muster[redis]')")
    state = tmp_path / "state"
    port = free_port()
    cmd = [sys.executable, "-m", "muster", "up", "--port", str(port), "--state-dir", str(state),
           "--demo", "2", "--backend", "redis"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = read_until(proc, "Ctrl-C stops everything", timeout=90)
        assert "starting redis-server, nginx and muster" in banner
        assert re.search(r"redis on 127\.0\.0\.1:\d+ \(redis\)", banner), banner
        assert "--backend redis" in banner and "redis-cli -p" in banner
        assert "all routed" in banner
        assert_demo_routed(port, banner)

        # A server registered by hand with redis-cli's command, as the banner shows, routes too.
        redis_port = int(re.search(r"redis-cli -p (\d+)", banner).group(1))  # type: ignore[union-attr]
        from muster.stack.redis import RedisProcess

        writer = RedisProcess(tmp_path / "unused", port=redis_port)
        backend_port = free_port()
        with _DemoServer(backend_port, "by-hand"):
            writer.call("SET", "/services/api/servers/one", f'{{"host":"127.0.0.1","port":{backend_port}}}')
            assert get_body(f"http://127.0.0.1:{port}/api/", "by-hand", timeout=10) == "by-hand"

        # redis-server retitles itself ("redis-server 127.0.0.1:PORT"): found by its address.
        redis_pids = processes_mentioning(f"redis-server 127.0.0.1:{redis_port}")
        assert redis_pids, "no redis-server process"
        # Its title names its directory too, so a killed run's is found.
        assert set(redis_pids) <= set(processes_mentioning(str(state)))
        assert_sigint_leaves_nothing(proc, state)
        assert processes_mentioning(f"redis-server 127.0.0.1:{redis_port}") == []
    finally:
        end(proc)


class _DemoServer:
    """A one-line HTTP server answering ``body``, in a child process (stopped on exit)."""

    def __init__(self, port: int, body: str) -> None:
        self.port, self.body = port, body
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _DemoServer:
        code = (
            "import http.server as h\n"
            "class H(h.BaseHTTPRequestHandler):\n"
            "    def do_GET(self):\n"
            f"        b = {self.body!r}.encode()\n"
            "        self.send_response(200); self.send_header('Content-Length', str(len(b)))\n"
            "        self.end_headers(); self.wfile.write(b)\n"
            "    def log_message(self, *a): pass\n"
            f"h.HTTPServer(('127.0.0.1', {self.port}), H).serve_forever()\n"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


def test_a_redis_server_left_by_a_killed_run_is_found_in_its_state_dir(tmp_path: Path) -> None:
    from muster.stack.local import leftover_processes
    from muster.stack.redis import RedisProcess

    with RedisProcess(tmp_path / "state" / "redis" / "data") as server:
        assert server.pid in leftover_processes(tmp_path / "state")
    assert leftover_processes(tmp_path / "state") == []
