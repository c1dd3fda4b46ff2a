"""The Python API against real etcd: async and threaded context managers, auth and TLS options."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import urllib.request
from typing import Any

from register_helpers import SpawnAgent, spawn_fixture  # noqa: F401  (the ``spawn`` fixture)
from registry_probe import RegistryProbe

from muster.backends.options import BackendOptions
from muster.registration import registration, sync_registration
from muster.stack.etcd import CertBundle, EtcdProcess


async def test_async_registration_writes_then_revokes(etcd: EtcdProcess, key_prefix: str) -> None:
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    key = f"{key_prefix}/api/servers/one"
    reg = registration(
        "api",
        "10.1.2.3",
        9000,
        server_id="one",
        ttl=20,
        prefix=key_prefix,
        nodes=[etcd.client_url],
        meta={"version": "1.2"},
    )
    async with reg:
        await asyncio.wait_for(reg.wait_registered(), 5)
        entry = await asyncio.to_thread(probe.get, key)
        assert entry is not None and json.loads(entry.value) == {
            "host": "10.1.2.3",
            "port": 9000,
            "version": "1.2",
        }
        assert entry.ttl is not None and 15 <= entry.ttl <= 20
    assert reg.clean is True
    assert await asyncio.to_thread(probe.get, key) is None


async def test_async_registration_with_health_function(etcd: EtcdProcess, key_prefix: str) -> None:
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    key = f"{key_prefix}/api/servers/one"
    ready = asyncio.Event()

    async def healthy() -> bool:
        return ready.is_set()

    async with registration(
        "api",
        "10.1.2.3",
        9000,
        server_id="one",
        prefix=key_prefix,
        nodes=[etcd.client_url],
        check=healthy,
        check_interval=0.05,
        rise=1,
        fall=1,
    ) as reg:
        await asyncio.sleep(0.3)
        assert await asyncio.to_thread(probe.get, key) is None  # not ready: not announced
        ready.set()
        await asyncio.wait_for(reg.wait_registered(), 5)
        assert await asyncio.to_thread(probe.get, key) is not None
        ready.clear()
        await asyncio.wait_for(reg.wait_deregistered(), 5)
        assert await asyncio.to_thread(probe.get, key) is None


def test_sync_registration_in_a_threaded_program(etcd: EtcdProcess, key_prefix: str) -> None:
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    key = f"{key_prefix}/api/servers/one"
    with sync_registration(
        "api", "10.1.2.3", 9000, server_id="one", prefix=key_prefix, nodes=[etcd.client_url]
    ) as reg:
        assert reg.wait_registered(timeout=5)
        assert probe.get(key) is not None
    assert probe.get(key) is None


def _v3_token(url: str, user: str, password: str) -> str:
    """A v3 gateway auth token, so the probe can read on an etcd with auth on."""
    body = json.dumps({"name": user, "password": password}).encode()
    with urllib.request.urlopen(url + "/v3/auth/authenticate", body, timeout=5) as response:
        token: str = json.loads(response.read())["token"]
    return token


def test_cli_with_username_and_password(etcd_auth: Any, key_prefix: str, spawn: SpawnAgent) -> None:
    token = _v3_token(etcd_auth.client_url, etcd_auth.user, etcd_auth.password)
    probe = RegistryProbe(etcd_auth.client_url, "etcdv3", headers={"Authorization": token})
    agent = spawn(
        etcd_auth.client_url,
        "etcdv3",
        key_prefix,
        "--username",
        etcd_auth.user,
        "--password",
        etcd_auth.password,
        ttl=10,
    )
    probe.wait_for(agent.key, True, timeout=10)
    assert agent.signal(signal.SIGTERM) == 0
    assert probe.get(agent.key) is None


def test_cli_with_a_wrong_password_keeps_trying_and_says_why(
    etcd_auth: Any, key_prefix: str, spawn: SpawnAgent
) -> None:
    agent = spawn(
        etcd_auth.client_url,
        "etcdv3",
        key_prefix,
        "--username",
        etcd_auth.user,
        "--password",
        "wrong",
        ttl=10,
    )
    # It says why and keeps running, as it should: auth may be fixed on the server side.
    agent.wait_output("registration.register.failed")
    assert agent.proc.poll() is None, agent.output()
    assert agent.signal(signal.SIGTERM) == 0


def test_cli_with_tls_client_certificates(
    etcd_tls: EtcdProcess, etcd_certs: CertBundle, key_prefix: str, spawn: SpawnAgent
) -> None:
    context = ssl.create_default_context(cafile=str(etcd_certs.ca))
    context.load_cert_chain(str(etcd_certs.client_cert), str(etcd_certs.client_key))
    probe = RegistryProbe(etcd_tls.client_url, "etcdv3", context=context)
    agent = spawn(
        etcd_tls.client_url,
        "etcdv3",
        key_prefix,
        "--client-cert",
        str(etcd_certs.client_cert),
        "--client-key",
        str(etcd_certs.client_key),
        "--client-ca-keys",
        str(etcd_certs.ca),
        ttl=10,
    )
    probe.wait_for(agent.key, True, timeout=10)
    assert agent.signal(signal.SIGTERM) == 0
    assert probe.get(agent.key) is None


def test_options_object_carries_auth(etcd_auth: Any, key_prefix: str) -> None:
    token = _v3_token(etcd_auth.client_url, etcd_auth.user, etcd_auth.password)
    probe = RegistryProbe(etcd_auth.client_url, "etcdv3", headers={"Authorization": token})
    options = BackendOptions(
        nodes=(etcd_auth.client_url,), username=etcd_auth.user, password=etcd_auth.password
    )
    key = f"{key_prefix}/api/servers/one"
    with sync_registration(
        "api", "10.1.2.3", 9000, server_id="one", prefix=key_prefix, options=options
    ) as reg:
        assert reg.wait_registered(timeout=5)
        found = probe.get(key)
        assert found is not None
    assert probe.get(key) is None
