"""The etcd password reaches etcd and nothing else: not ps, not the log, not /status, not the commands.

Two real daemons: one against an etcd with auth on, given its password by file or by
``CONFD_PASSWORD`` (with ``-log-level debug``, so every line that could leak it is written);
one whose node URLs carry userinfo (``http://user:secret@host``), including a dead node
whose failover is logged with its URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from daemon_it_helpers import ConfDir, Writer, read

from muster.backends.etcd.v3 import EtcdV3Backend
from muster.backends.options import BackendOptions
from muster.stack.etcd import EtcdProcess, free_port

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def daemon(args: list[str], log: Path, env: Mapping[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "muster", "confd", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**env},
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]


async def wait_until(condition: Any, what: str, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; daemon log:\n{log.read_text()[-3000:]}")
        await asyncio.sleep(0.05)


async def served(port: int) -> str:
    """Every status endpoint's body, concatenated."""
    bodies = []
    async with aiohttp.ClientSession() as session:
        for path in ("/status", "/readyz", "/metrics", "/healthz"):
            async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                bodies.append(await resp.text())
    return "\n".join(bodies)


@pytest.mark.parametrize("given_by", ["file", "env"])
async def test_password_from_file_or_env_stays_out_of_sight(
    etcd_auth: Any, key_prefix: str, tmp_path: Path, given_by: str
) -> None:
    confdir = ConfDir(tmp_path)
    env_dump = tmp_path / "reload-env.txt"
    dest = confdir.add(
        "app", '{{getv "/app/port"}}\n', prefix=key_prefix, keys='["/app"]', reload_cmd=f"env > {env_dump}"
    )
    writer = EtcdV3Backend(
        options=BackendOptions(
            nodes=(etcd_auth.client_url,), username=etcd_auth.user, password=etcd_auth.password
        )
    )
    try:
        await writer.client.put(f"{key_prefix}/app/port".encode(), b"8080")
    finally:
        await writer.aclose()
    port = free_port()
    args = ["-watch", "-backend", "etcdv3", "-node", etcd_auth.client_url, "-username", etcd_auth.user,
            "-confdir", str(tmp_path), "-config-file", str(tmp_path / "none.toml"), "-log-level", "debug",
            "-status-addr", f"127.0.0.1:{port}"]  # fmt: skip
    env = dict(os.environ)
    if given_by == "file":
        pw_file = tmp_path / "etcd-password"
        pw_file.write_text(etcd_auth.password + "\n")
        pw_file.chmod(0o600)
        args += ["-password-file", str(pw_file)]
    else:
        env["CONFD_PASSWORD"] = etcd_auth.password
    log = tmp_path / "daemon.log"
    with daemon(args, log, env) as proc:
        await wait_until(lambda: read(dest) == "8080\n" and env_dump.exists(), "the first render", log)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert "-username muster" in cmdline and etcd_auth.password not in cmdline
        # The file (and the reload) come a moment before the batch is recorded as complete.
        deadline = time.monotonic() + 10
        while '"ready": true' not in (body := await served(port)):
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)
        assert etcd_auth.password not in body
        assert etcd_auth.password not in env_dump.read_text(), "reload_cmd inherited the password"
    text = log.read_text()
    assert "etcd.auth.complete" in text, "debug logging was on, authentication was logged"
    assert etcd_auth.password not in text and "config.password.argv" not in text


async def test_node_userinfo_is_masked_in_the_log_and_status(
    etcd: EtcdProcess, key_prefix: str, tmp_path: Path
) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("app", '{{getv "/app/port"}}\n', prefix=key_prefix, keys='["/app"]', reload_cmd="")
    async with Writer("etcd", etcd.client_url) as writer:
        await writer.put(f"{key_prefix}/app/port", "8080")
    host_port = etcd.client_url.removeprefix("http://")
    dead = f"http://someone:dead-node-secret@127.0.0.1:{free_port()}"
    live = f"http://someone:live-node-secret@{host_port}"
    port = free_port()
    args = ["-watch", "-backend", "etcd", "-node", dead, "-node", live, "-confdir", str(tmp_path),
            "-config-file", str(tmp_path / "none.toml"), "-log-level", "debug",
            "-status-addr", f"127.0.0.1:{port}"]  # fmt: skip
    log = tmp_path / "daemon.log"
    with daemon(args, log, os.environ):
        await wait_until(lambda: read(dest) == "8080\n", "the first render", log)
        body = await served(port)
        assert "secret" not in body
    text = log.read_text()
    assert "http://***@127.0.0.1:" in text, "the failover from the dead node names it, masked"
    assert "dead-node-secret" not in text and "live-node-secret" not in text
