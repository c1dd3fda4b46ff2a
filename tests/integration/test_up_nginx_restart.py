"""``muster up`` brings nginx back when its master is killed: the orphaned workers go, a new
master serves on the same port, and the daemon pushes the Lua plane to it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from test_nginx_up import end, process_group, processes_mentioning, read_until

from muster.dataplane.nginx.conf import lua_available
from muster.stack.etcd import etcd_available, free_port
from muster.stack.nginx import nginx_available
from muster.stack.process import stat_fields

pytestmark = [
    pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd"),
    pytest.mark.skipif(not lua_available(), reason="libnginx-mod-http-lua is not installed"),
]

DEMO = {"hello-1", "hello-2"}
DEADLINE = 5.0  # seconds from the kill to a demo server answering through the new nginx


def answer(url: str) -> str:
    """``200 BODY``, another status, or the connection error, for one GET."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return f"{resp.status} {resp.read().decode().strip()}"
    except urllib.error.HTTPError as exc:
        with exc:
            return str(exc.code)
    except OSError as exc:
        return type(getattr(exc, "reason", exc)).__name__


def test_a_killed_master_is_restarted_and_the_lua_plane_pushed_again(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    state = tmp_path / "state"
    port = free_port()
    url = f"http://127.0.0.1:{port}/hello/"
    cmd = [sys.executable, "-m", "muster", "up", "--port", str(port), "--etcd-port", str(free_port()),
           "--state-dir", str(state), "--demo", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        read_until(proc, "Ctrl-C stops everything", timeout=90)
        assert {answer(url) for _ in range(10)} >= {f"200 {d}" for d in DEMO}
        old_master = int((state / "nginx" / "nginx.pid").read_text())
        old_workers = [p for p in process_group(old_master) if p != old_master]
        assert old_workers

        os.kill(old_master, signal.SIGKILL)
        killed = time.monotonic()
        # Until muster up notices, the orphaned workers serve on with the old shared dict:
        # a 200 counts only for a request sent once none of them is left, so only the new
        # master's workers can have answered it.
        timeline: list[tuple[float, str]] = []
        workers_gone_at: float | None = None
        served_at: float | None = None
        while served_at is None and time.monotonic() - killed < DEADLINE:
            if workers_gone_at is None and not process_group(old_master):
                workers_gone_at = time.monotonic() - killed
            sent_after_gone = workers_gone_at is not None
            got = answer(url)
            now = time.monotonic() - killed
            kind = got.split()[0]  # 200, 404, ConnectionRefusedError...
            if not timeline or timeline[-1][1] != kind:
                timeline.append((now, kind))
            if sent_after_gone and got.startswith("200 ") and got[4:] in DEMO:
                served_at = now
            else:
                time.sleep(0.02)
        story = ", ".join(f"{t:.2f}s {what}" for t, what in timeline)
        assert served_at is not None, f"not serving {DEADLINE}s after the kill: {story}"
        record_property("kill_to_serving_s", round(served_at, 3))
        record_property("timeline", story)
        print(f"\nkill to serving again: {served_at:.2f}s: {story}")

        out = read_until(proc, "nginx exited (killed); restarted", timeout=5)
        assert "stopping everything" not in out
        new_master = int((state / "nginx" / "nginx.pid").read_text())
        assert new_master != old_master and new_master in processes_mentioning(str(state))
        assert process_group(old_master) == []
        assert all(stat_fields(p)[:1] in ([], ["Z"]) for p in old_workers)  # gone (or unreaped by init)
        assert {answer(url) for _ in range(10)} == {f"200 {d}" for d in DEMO}
        log = (state / "logs" / "muster.log").read_text()
        assert "dataplane.nginx_state_lost" in log  # the verify loop found a foreign generation

        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert processes_mentioning(str(state)) == []
        assert process_group(new_master) == []
    finally:
        if proc.poll() is None:  # a failed assertion: stop the stack as Ctrl-C would, not kill -9
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        end(proc)
