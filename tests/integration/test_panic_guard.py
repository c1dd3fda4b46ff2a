"""The panic guard against real etcd and nginx, in both data planes: ``etcdctl del --prefix
/services`` under steady traffic fails no request until the grace ends or SIGUSR1 accepts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_hostile_values import text_backend_process, wait_body
from test_readyz_truth import wait_readyz

from muster.dataplane.nginx.conf import lua_available
from muster.nginxctl.procs import children
from muster.stack.etcd import etcd_available, free_port
from muster.stack.local import Stack, UpOptions
from muster.stack.nginx import nginx_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd"),
    pytest.mark.skipif(shutil.which("etcdctl") is None, reason="needs etcdctl (etcd-client)"),
]

GRACE = 4.0
WORKERS = 1


@pytest.fixture(params=["lua", "reload"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    if request.param == "lua" and not lua_available():
        pytest.skip("libnginx-mod-http-lua is not installed")
    monkeypatch.setenv("CONFD_PANIC_GRACE", f"{GRACE}s")  # the daemon reads confd's environment
    opts = UpOptions(port=free_port(), etcd_port=free_port(), state_dir=tmp_path / "state", workers=WORKERS,
                     dataplane=request.param, demo=0)  # fmt: skip
    running = Stack(opts)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, ""


def steady(stack: Stack, url: str) -> None:
    """Wait until only the current config's worker is left and it answers 200 ten times in a row.

    After a reload the old config's worker drains; until it has handled nginx's QUIT it still
    accepts new connections and answers from the config before (a 404 for a service that
    config lacked). On a busy machine it may not run for seconds, so 200s in a row alone did
    not prove it gone: 404s came right after the delete in CI, from that worker waking up.
    """
    assert stack.nginx is not None and stack.nginx.pid is not None
    deadline = time.monotonic() + 20
    while sum(c.title.startswith("nginx: worker process") for c in children(stack.nginx.pid)) != WORKERS:
        assert time.monotonic() < deadline, "an old nginx worker never went away"
        time.sleep(0.05)
    in_row = 0
    while in_row < 10:
        assert time.monotonic() < deadline, f"{url} never answered 200 ten times in a row"
        in_row = in_row + 1 if status(url)[0] == 200 else 0


def del_prefix(stack: Stack) -> float:
    """Delete every key under /services; return the time just BEFORE etcdctl ran.

    The delete, and so the guard's grace, starts somewhere inside etcdctl's run, which on a
    busy machine takes a second or more (a Go binary starting, dialing, deleting): the grace
    ends no sooner than GRACE after this time. Timing from etcdctl's return instead once
    made the grace look a second short (404s at the end of the held window in CI).
    """
    before = time.monotonic()
    subprocess.run(["etcdctl", "--endpoints", stack.etcd_urls[0], "del", "--prefix", "/services"],
                   check=True, capture_output=True, env={**os.environ, "ETCDCTL_API": "3"})  # fmt: skip
    return before


def register(stack: Stack, ports: dict[str, int]) -> str:
    for name, port in ports.items():
        stack.put(f"/services/web/servers/{name}", json.dumps({"host": "127.0.0.1", "port": port}))
    assert stack.nginx is not None
    return f"http://127.0.0.1:{stack.nginx.port}/web/"


def test_del_prefix_is_held_for_the_grace_then_applied(stack: Stack) -> None:
    with text_backend_process("a") as port_a, text_backend_process("b") as port_b:
        url = register(stack, {"a": port_a, "b": port_b})
        wait_body(url, "a")
        wait_readyz(stack, 200, 15)
        steady(stack, url)
        deleted = del_prefix(stack)
        answers: list[tuple[int, str]] = []
        while time.monotonic() - deleted < GRACE - 1:
            answers.append(status(url))
        assert answers and all(code == 200 and text in ("a", "b") for code, text in answers), answers[-5:]
        reason = wait_readyz(stack, 503, 2, "panic guard keeps 2 removed server(s) of 1 service(s)")
        assert "USR1" in reason
        # After the grace the removal applies: the service is unknown now (404).
        deadline = deleted + GRACE + 5
        while status(url)[0] != 404:
            assert time.monotonic() < deadline, "the hold never ended"
            time.sleep(0.05)
        assert time.monotonic() - deleted >= GRACE - 0.1
        wait_readyz(stack, 200, 5)
        log = (stack.state / "logs" / "muster.log").read_text()
        assert "guard.holding service=web servers=2" in log and "guard.expired service=web" in log


def test_sigusr1_accepts_the_removal_at_once(stack: Stack) -> None:
    with text_backend_process("a") as port_a:
        url = register(stack, {"a": port_a})
        wait_body(url, "a")
        del_prefix(stack)
        deleted = time.monotonic()  # etcdctl has returned: the delete is in
        time.sleep(0.5)
        assert status(url) == (200, "a"), "held"
        assert stack.daemon is not None and stack.daemon.pid is not None
        os.kill(stack.daemon.pid, signal.SIGUSR1)
        while status(url)[0] != 404:
            assert time.monotonic() - deleted < GRACE - 1, (
                "SIGUSR1 did not apply the removal before the grace"
            )
            time.sleep(0.05)
        assert "guard.accept " in (stack.state / "logs" / "muster.log").read_text()
