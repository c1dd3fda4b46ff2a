"""The daemon against a 3-member etcd cluster (failover, quorum loss), TLS client certs and auth."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from daemon_it_helpers import ConfDir, Writer, daemon_config, eventually, read, running

from muster.stack.etcd import EtcdCluster, EtcdProcess


def muster_confd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "muster", "confd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        check=False,
    )


@pytest.mark.slow
async def test_failover_when_the_member_in_use_dies(etcd_cluster: EtcdCluster, tmp_path: Path) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx")
    cfg = daemon_config(confdir, "etcdv3", *etcd_cluster.client_urls)
    async with running(cfg) as daemon:
        await eventually(lambda: daemon.batches >= 1)
        await asyncio.sleep(0.2)
        await asyncio.to_thread(etcd_cluster[0].kill)  # the daemon talks to the first node
        async with Writer("etcdv3", etcd_cluster[1].client_url, etcd_cluster[2].client_url) as w:
            await w.put("/services/web/servers/a", "10.0.0.1:80")
            t_write = time.monotonic()
        await eventually(lambda: "10.0.0.1:80" in read(dest), timeout=15)
        latency = time.monotonic() - t_write
    assert latency < 1.0, f"applied {latency:.3f}s after the write"


@pytest.mark.slow
async def test_quorum_loss_and_recovery(etcd_cluster: EtcdCluster, tmp_path: Path) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx")
    cfg = daemon_config(confdir, "etcdv3", *etcd_cluster.client_urls)
    async with Writer("etcdv3", *etcd_cluster.client_urls) as w:
        await w.put("/services/web/servers/a", "10.0.0.1:80")
    async with running(cfg) as daemon:
        await eventually(lambda: "10.0.0.1:80" in read(dest))
        await asyncio.to_thread(etcd_cluster[1].kill)
        await asyncio.to_thread(etcd_cluster[2].kill)
        await asyncio.sleep(3)  # no quorum for a while: the file stays as it was
        assert "10.0.0.1:80" in read(dest)
        await asyncio.to_thread(etcd_cluster[1].start, wait=False)
        await asyncio.to_thread(etcd_cluster[1].wait_healthy)
        await asyncio.to_thread(etcd_cluster[0].wait_healthy)
        async with Writer("etcdv3", etcd_cluster[0].client_url, etcd_cluster[1].client_url) as w:
            await w.put("/services/web/servers/b", "10.0.0.2:80")  # returns once etcd accepted it
            t_write = time.monotonic()
        await eventually(lambda: "10.0.0.2:80" in read(dest), timeout=15)
        latency = time.monotonic() - t_write
        assert daemon.specs
    assert latency < 1.0, f"applied {latency:.3f}s after etcd accepted the write"


def tls_flags(proc: EtcdProcess) -> list[str]:
    certs = proc.tls
    assert certs is not None
    return [
        "-client-ca-keys",
        str(certs.ca),
        "-client-cert",
        str(certs.client_cert),
        "-client-key",
        str(certs.client_key),
    ]


async def test_tls_client_certificates(etcd_tls: EtcdProcess, key_prefix: str, tmp_path: Path) -> None:
    certs = etcd_tls.tls
    assert certs is not None
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    from muster.backends.etcd.v3 import EtcdV3Backend
    from muster.backends.options import BackendOptions

    writer = EtcdV3Backend(
        options=BackendOptions(
            nodes=(etcd_tls.client_url,),
            client_ca_keys=str(certs.ca),
            client_cert=str(certs.client_cert),
            client_key=str(certs.client_key),
        )
    )
    try:
        await writer.client.put(f"{key_prefix}/services/web/servers/a".encode(), b"10.0.0.1:80")
        result = await asyncio.to_thread(
            muster_confd,
            "-onetime",
            "-node",
            etcd_tls.client_url,
            *tls_flags(etcd_tls),
            "-confdir",
            str(tmp_path),
            "-config-file",
            str(tmp_path / "none.toml"),
        )
        assert result.returncode == 0, result.stderr
        assert "10.0.0.1:80" in read(dest)
        # The same flags from confd.toml, in watch mode.
        from muster.config import load

        toml = tmp_path / "confd.toml"
        toml.write_text(
            f'client_cakeys = "{certs.ca}"\nclient_cert = "{certs.client_cert}"\n'
            f'client_key = "{certs.client_key}"\nnodes = ["{etcd_tls.client_url}"]\n'
            f'confdir = "{tmp_path}"\nwatch = true\n'
        )
        cfg = load({"config_file": str(toml)}, {})
        async with running(cfg):
            await writer.client.put(f"{key_prefix}/services/web/servers/b".encode(), b"10.0.0.2:80")
            await eventually(lambda: "10.0.0.2:80" in read(dest), timeout=5)
    finally:
        await writer.aclose()
    # Without the client certificate: a clear failure, non-zero exit, dest untouched.
    before = read(dest)
    result = await asyncio.to_thread(
        muster_confd,
        "-onetime",
        "-node",
        etcd_tls.client_url,
        "-client-ca-keys",
        str(certs.ca),
        "-confdir",
        str(tmp_path),
        "-config-file",
        str(tmp_path / "none.toml"),
    )
    assert result.returncode != 0
    assert read(dest) == before


async def test_username_password(etcd_auth: Any, key_prefix: str, tmp_path: Path) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    from muster.backends.etcd.v3 import EtcdV3Backend
    from muster.backends.options import BackendOptions

    writer = EtcdV3Backend(
        options=BackendOptions(
            nodes=(etcd_auth.client_url,), username=etcd_auth.user, password=etcd_auth.password
        )
    )
    try:
        await writer.client.put(f"{key_prefix}/services/web/servers/a".encode(), b"10.0.0.1:80")
    finally:
        await writer.aclose()
    common = [
        "-onetime",
        "-node",
        etcd_auth.client_url,
        "-confdir",
        str(tmp_path),
        "-config-file",
        str(tmp_path / "none.toml"),
    ]
    result = await asyncio.to_thread(
        muster_confd, *common, "-basic-auth", "-username", etcd_auth.user, "-password", etcd_auth.password
    )
    assert result.returncode == 0, result.stderr
    assert "10.0.0.1:80" in read(dest)
    assert etcd_auth.password not in result.stderr
    dest.unlink()
    result = await asyncio.to_thread(
        muster_confd, *common, "-basic-auth", "-username", etcd_auth.user, "-password", "wrong"
    )
    assert result.returncode != 0
    assert not dest.exists()
