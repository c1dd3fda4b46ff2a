"""``muster up --backend zookeeper``: the local stack on a private ZooKeeper serves the demo, a server
registered by hand routes, and Ctrl-C leaves nothing behind (the JVM included)."""

from __future__ import annotations

import re
import signal
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
from muster.stack.zookeeper import zookeeper_available

pytestmark = pytest.mark.skipif(
    not (nginx_available() and zookeeper_available()), reason="needs nginx and Debian's zookeeper package"
)


def test_up_on_zookeeper_serves_the_demo_and_sigint_stops_every_process(tmp_path: Path) -> None:
    pytest.importorskip("kazoo", reason="kazoo is not installed (pip install 'muster[zookeeper]')")
    state = tmp_path / "state"
    port = free_port()
    cmd = [sys.executable, "-m", "muster", "up", "--port", str(port), "--state-dir", str(state),
           "--demo", "2", "--backend", "zookeeper"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = read_until(proc, "Ctrl-C stops everything", timeout=90)
        assert "starting zookeeper, nginx and muster" in banner
        found = re.search(r"zookeeper on (127\.0\.0\.1:\d+) \(zookeeper\)", banner)
        assert found is not None, banner
        assert "--backend zookeeper" in banner and "all routed" in banner
        assert_demo_routed(port, banner)

        # A server registered with the command the banner shows routes too.
        backend_port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(backend_port), "--bind", "127.0.0.1",
             "--directory", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        (tmp_path / "by-hand").write_text("by-hand")
        agent = subprocess.Popen(
            [sys.executable, "-m", "muster", "register", "--service", "api", "--host", "127.0.0.1",
             "--port", str(backend_port), "--node", found.group(1), "--backend", "zookeeper", "--no-check"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert get_body(f"http://127.0.0.1:{port}/api/by-hand", "by-hand", timeout=15) == "by-hand"
        finally:
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=15) == 0
            server.kill()
            server.wait()

        assert processes_mentioning(str(state / "zookeeper")), "no ZooKeeper process under the state dir"
        assert_sigint_leaves_nothing(proc, state)
    finally:
        end(proc)
