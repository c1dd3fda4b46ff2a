"""The etcd process controller behind the fixtures and ``muster up``."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

from muster.stack.etcd import EtcdCluster, EtcdProcess


def _get(url: str, proc: EtcdProcess) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5, context=proc.ssl_context()) as resp:
        body: dict[str, object] = json.loads(resp.read())
        return body


def test_member_restarts_on_same_ports_with_its_data(etcd_server_factory: Callable[..., EtcdProcess]) -> None:
    proc = etcd_server_factory()
    url = proc.client_url
    req = urllib.request.Request(f"{url}/v2/keys/kept", data=b"value=1", method="PUT")
    urllib.request.urlopen(req, timeout=5).close()
    proc.restart()
    assert proc.client_url == url
    node = _get(f"{url}/v2/keys/kept", proc)["node"]
    assert isinstance(node, dict) and node["value"] == "1"


def test_stop_reaps_and_is_idempotent(etcd_server_factory: Callable[..., EtcdProcess]) -> None:
    proc = etcd_server_factory()
    pid = proc.pid
    proc.pause()  # a stopped (SIGSTOP) member must still be terminated
    proc.stop()
    assert not proc.running and proc.pid is None and pid is not None
    proc.stop()
    assert not proc.health()


def test_kill_is_a_crash(etcd_server_factory: Callable[..., EtcdProcess]) -> None:
    proc = etcd_server_factory()
    proc.kill()
    assert not proc.health()
    proc.start()
    assert proc.health()


def test_cluster_members_agree(etcd_cluster: EtcdCluster) -> None:
    ids = set()
    for member in etcd_cluster:
        req = urllib.request.Request(f"{member.client_url}/v3/maintenance/status", data=b"{}")
        with urllib.request.urlopen(req, timeout=5) as resp:
            ids.add(json.loads(resp.read())["leader"])
    assert len(ids) == 1


def test_tls_member_requires_client_cert(etcd_tls: EtcdProcess) -> None:
    import ssl

    assert etcd_tls.client_url.startswith("https://")
    assert etcd_tls.health()
    assert etcd_tls.tls is not None
    bare = ssl.create_default_context(cafile=str(etcd_tls.tls.ca))
    try:
        urllib.request.urlopen(f"{etcd_tls.client_url}/v2/keys/", timeout=5, context=bare).close()
    except OSError:
        pass
    else:
        raise AssertionError("etcd accepted a client without a certificate")
