"""A key deleted while its lease lives comes back within one refresh interval (issue 14), v3 and v2.

The agent runs as a real ``muster register`` subprocess (or through the Python API); keys are
deleted behind its back with etcd's own ``etcdctl`` or plain HTTP, and read back through
``registry_probe``, a client independent of muster's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from register_helpers import SpawnAgent, spawn_fixture  # noqa: F401  (the ``spawn`` fixture)
from registry_probe import Entry, RegistryProbe

from muster.backends.etcd.v2 import EtcdV2Backend
from muster.backends.etcd.v3 import EtcdV3Backend
from muster.backends.options import BackendOptions
from muster.errors import LeaseLost
from muster.registration import registration
from muster.stack.etcd import EtcdProcess

APIS = ["etcdv3", "etcd"]
TTL = 3
INTERVAL = TTL / 3  # the agent refreshes (and checks its key) this often
# A restore is one keepalive, one read and one write after the refresh is due; on a loaded
# CI machine the agent process may also be scheduled late.
SLACK = 0.5


def _post(url: str, path: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        reply: dict[str, object] = json.loads(response.read())
        return reply


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def delete_key(url: str, api: str, key: str) -> None:
    """Delete the key only: in v3 its lease lives on (unlike ``RegistryProbe.delete``)."""
    if api == "etcdv3":
        reply = _post(url, "/v3/kv/deleterange", {"key": _b64(key)})
        assert reply.get("deleted") == "1", reply
    else:
        request = urllib.request.Request(f"{url}/v2/keys{key}", method="DELETE")
        urllib.request.urlopen(request, timeout=5).close()


def etcdctl_delete_tree(url: str, api: str, root: str) -> None:
    """``etcdctl del --prefix ROOT`` (v3) or ``etcdctl rm --recursive ROOT`` (v2), the real tool."""
    etcdctl = shutil.which("etcdctl")
    if etcdctl is None:
        pytest.skip("etcdctl is not installed (Debian package etcd-client)")
    if api == "etcdv3":
        env = {**os.environ, "ETCDCTL_API": "3"}
        argv = [etcdctl, "--endpoints", url, "del", "--prefix", root]
    else:
        env = {**os.environ, "ETCDCTL_API": "2"}
        argv = [etcdctl, "--endpoints", url, "rm", "--recursive", root]
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=10)


def assert_same_registration(api: str, before: Entry, after: Entry | None) -> None:
    assert after is not None
    assert after.value == before.value
    if api == "etcdv3":
        assert after.lease == before.lease, "restored on a new lease: the agent lost its own"
    assert after.ttl is not None and 0 < after.ttl <= TTL, after


@pytest.mark.parametrize("api", APIS)
def test_deleted_key_is_back_within_one_refresh_interval(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, api: str
) -> None:
    probe = RegistryProbe(etcd.client_url, api)
    agent = spawn(etcd.client_url, api, key_prefix, ttl=TTL)
    probe.wait_for(agent.key, True, timeout=10)
    before = probe.get(agent.key)
    assert before is not None
    for _ in range(2):  # and again: restoring once does not end the checks
        delete_key(etcd.client_url, api, agent.key)
        took = probe.wait_for(agent.key, True, timeout=5)
        print(f"{api}: key back {took:.3f}s after its deletion (refresh interval {INTERVAL:.1f}s)")
        assert took < INTERVAL + SLACK, f"{took:.2f}s\n{agent.output()}"
        assert_same_registration(api, before, probe.get(agent.key))
    restored = f"registration.key.restored key={agent.key}"
    assert agent.output().count(restored) == 2, agent.output()
    # v3 puts it back on the lease it holds; v2 keeps no lease apart from the key itself.
    assert f"{restored} lease={'same' if api == 'etcdv3' else 'new'}" in agent.output()
    assert agent.signal(signal.SIGTERM) == 0
    assert probe.get(agent.key) is None


@pytest.mark.parametrize("api", APIS)
def test_etcdctl_deleting_the_whole_root_brings_every_agent_back(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent, api: str
) -> None:
    probe = RegistryProbe(etcd.client_url, api)
    agents = [
        spawn(etcd.client_url, api, key_prefix, ttl=TTL, server_id="a"),
        spawn(etcd.client_url, api, key_prefix, ttl=TTL, server_id="b", service="api"),
    ]
    for agent in agents:
        probe.wait_for(agent.key, True, timeout=10)
    before = {agent.key: probe.get(agent.key) for agent in agents}
    etcdctl_delete_tree(etcd.client_url, api, key_prefix)
    assert all(probe.get(agent.key) is None for agent in agents)
    for agent in agents:
        took = probe.wait_for(agent.key, True, timeout=5)
        assert took < INTERVAL + SLACK, f"{took:.2f}s\n{agent.output()}"
        entry = before[agent.key]
        assert entry is not None
        assert_same_registration(api, entry, probe.get(agent.key))
        assert f"registration.key.restored key={agent.key}" in agent.output()
    for agent in agents:
        assert agent.signal(signal.SIGTERM) == 0
        assert probe.get(agent.key) is None


def test_a_leaseless_copy_from_a_backup_is_bound_to_the_lease_again(
    etcd: EtcdProcess, key_prefix: str, spawn: SpawnAgent
) -> None:
    """A dump put back with ``etcdctl put`` has no lease, so it would outlive the agent."""
    probe = RegistryProbe(etcd.client_url, "etcdv3")
    agent = spawn(etcd.client_url, "etcdv3", key_prefix, ttl=TTL)
    probe.wait_for(agent.key, True, timeout=10)
    before = probe.get(agent.key)
    assert before is not None and before.lease
    _post(etcd.client_url, "/v3/kv/put", {"key": _b64(agent.key), "value": _b64(before.value)})
    leaseless = probe.get(agent.key)
    assert leaseless is not None and leaseless.lease is None
    put_back = time.monotonic()
    while (entry := probe.get(agent.key)) is None or entry.lease != before.lease:
        took = time.monotonic() - put_back
        assert took < INTERVAL + SLACK, f"still without its lease after {took:.2f}s\n{agent.output()}"
        time.sleep(0.02)
    assert_same_registration("etcdv3", before, entry)
    # The lease now carries the key away again: SIGTERM (a revoke) leaves nothing behind.
    assert agent.signal(signal.SIGTERM) == 0
    assert probe.get(agent.key) is None


@pytest.mark.parametrize("api", APIS)
async def test_python_api_puts_the_key_back_too(etcd: EtcdProcess, key_prefix: str, api: str) -> None:
    probe = RegistryProbe(etcd.client_url, api)
    key = f"{key_prefix}/api/servers/one"
    reg = registration(
        "api",
        "10.1.2.3",
        9000,
        server_id="one",
        ttl=TTL,
        prefix=key_prefix,
        backend=api,
        nodes=[etcd.client_url],
    )
    async with reg:
        await asyncio.wait_for(reg.wait_registered(), 5)
        before = await asyncio.to_thread(probe.get, key)
        assert before is not None
        await asyncio.to_thread(delete_key, etcd.client_url, api, key)
        took = await asyncio.to_thread(probe.wait_for, key, True, 5)
        assert took < INTERVAL + SLACK, took
        assert_same_registration(api, before, await asyncio.to_thread(probe.get, key))
        await asyncio.wait_for(reg.wait_registered(), INTERVAL)
        assert reg.registered
    assert reg.clean is True
    assert await asyncio.to_thread(probe.get, key) is None


# -- the backends' verify/restore, step by step ---------------------------------------------


async def test_v3_lease_verify_and_restore(etcd: EtcdProcess, key_prefix: str) -> None:
    key, value = f"{key_prefix}/api/servers/x", '{"host":"10.0.0.1","port":80}'
    url = etcd.client_url
    async with EtcdV3Backend(options=BackendOptions(nodes=(url,))) as backend:
        lease = await backend.register(key, value, TTL)
        assert await lease.verify() is True
        await asyncio.to_thread(delete_key, url, "etcdv3", key)
        assert await lease.verify() is False
        assert await lease.restore() is True
        assert await lease.verify() is True
        # Someone writes between our check and our restore: the restore leaves it alone.
        await asyncio.to_thread(delete_key, url, "etcdv3", key)
        assert await lease.verify() is False
        await asyncio.to_thread(_post, url, "/v3/kv/put", {"key": _b64(key), "value": _b64("theirs")})
        assert await lease.restore() is False
        assert (await asyncio.to_thread(RegistryProbe(url, "etcdv3").get, key)) == Entry("theirs", None)
        # A value other than ours without a lease is ours to overwrite; under a live lease it is not.
        assert await lease.verify() is False
        assert await lease.restore() is True
        other = await backend.register(key, "another agent", 30)
        assert await lease.verify() is True
        await other.revoke()
        await lease.revoke()
        assert await lease.verify() is False
        with pytest.raises(LeaseLost):
            await lease.restore()


async def test_v2_lease_verify_and_restore(etcd: EtcdProcess, key_prefix: str) -> None:
    key, value = f"{key_prefix}/api/servers/x", '{"host":"10.0.0.1","port":80}'
    url = etcd.client_url
    probe = RegistryProbe(url, "etcd")
    async with EtcdV2Backend(options=BackendOptions(nodes=(url,))) as backend:
        lease = await backend.register(key, value, TTL)
        assert await lease.keepalive() > 0 and await lease.verify() is True
        # A value changed behind our back: the refresh keeps it, verify notices, restore fixes it.
        form = urllib.parse.urlencode({"value": "theirs"}).encode()
        request = urllib.request.Request(f"{url}/v2/keys{key}", data=form, method="PUT")
        await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=5).close())
        assert await lease.keepalive() > 0 and await lease.verify() is False
        assert await lease.restore() is True
        entry = await asyncio.to_thread(probe.get, key)
        assert entry is not None and entry.value == value and entry.ttl is not None
        # Changed again after our refresh: the compare-and-swap on modifiedIndex refuses.
        await lease.keepalive()
        await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=5).close())
        assert await lease.restore() is False
        # Deleted: the TTL went with the key, so it is a lost lease (the agent registers afresh).
        await asyncio.to_thread(delete_key, url, "etcd", key)
        with pytest.raises(LeaseLost):
            await lease.keepalive()
        with pytest.raises(LeaseLost):
            await lease.restore()
