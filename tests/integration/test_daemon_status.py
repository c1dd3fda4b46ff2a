"""``muster confd -watch -status-addr``: readiness and metrics follow what the daemon applies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from daemon_it_helpers import ConfDir, Writer

from muster.stack.etcd import EtcdProcess, free_port

pytestmark = pytest.mark.integration


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with session.get(url) as resp:
        return resp.status, await resp.text()


async def wait_for(session: aiohttp.ClientSession, url: str, status: int, timeout: float = 30) -> str:
    """Poll ``url`` until it answers ``status``; its body."""
    deadline = time.monotonic() + timeout
    last: tuple[int, str] | str = "no answer"
    while time.monotonic() < deadline:
        try:
            last = await get(session, url)
            if last[0] == status:
                return last[1]
        except aiohttp.ClientError as exc:
            last = str(exc)
        await asyncio.sleep(0.05)
    pytest.fail(f"{url} never answered {status}; last: {last}")


async def test_readiness_and_metrics_follow_the_batches(
    etcd: EtcdProcess, key_prefix: str, tmp_path: Path
) -> None:
    confdir = ConfDir(tmp_path)
    # getv of a missing key fails the render: the resource fails while the key is absent.
    dest = confdir.add("app", '{{getv "/app/port"}}\n', prefix=key_prefix, keys='["/app"]')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with Writer("etcdv3", etcd.client_url) as writer:
        await writer.put(f"{key_prefix}/app/port", "8080")
        proc = subprocess.Popen(
            [sys.executable, "-m", "muster", "confd", "-watch", "-confdir", str(tmp_path),
             "-backend", "etcdv3", "-node", etcd.client_url, "-status-addr", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ},
        )  # fmt: skip
        try:
            async with aiohttp.ClientSession() as session:
                await wait_for(session, f"{base}/readyz", 200)
                assert dest.read_text() == "8080\n"
                assert (await get(session, f"{base}/healthz"))[0] == 200
                _, metrics = await get(session, f"{base}/metrics")
                assert "muster_ready 1.0\n" in metrics and "muster_files_changed_total 1.0\n" in metrics

                await writer.delete(f"{key_prefix}/app/port")
                reason = await wait_for(session, f"{base}/readyz", 503)
                assert "the last batch failed for: app.toml" in reason
                assert dest.read_text() == "8080\n", "the last good file stays"
                status, body = await get(session, f"{base}/status")
                assert status == 200 and '"app.toml": "template: app.tmpl:1:2: executing' in body

                await writer.put(f"{key_prefix}/app/port", "9090")
                await wait_for(session, f"{base}/readyz", 200)
                _, metrics = await get(session, f"{base}/metrics")
                assert "muster_batch_failures_total 1.0\n" in metrics
                assert "muster_resources_failing 0.0\n" in metrics
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    assert dest.read_text() == "9090\n"
