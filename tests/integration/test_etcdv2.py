"""EtcdV2Backend against real etcd (``--enable-v2``): the seed post's curl workflow, watches, TTLs."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable

import pytest

from muster.backends import create
from muster.backends.etcd.v2 import EtcdV2Backend
from muster.backends.options import BackendOptions
from muster.errors import LeaseLost, RevisionCompacted
from muster.stack.etcd import EtcdCluster, EtcdProcess


def backend_for(*urls: str, **options: object) -> EtcdV2Backend:
    return EtcdV2Backend(options=BackendOptions(nodes=urls, **options))  # type: ignore[arg-type]


@pytest.fixture
async def v2(etcd: EtcdProcess) -> AsyncIterator[EtcdV2Backend]:
    backend = backend_for(etcd.client_url)
    yield backend
    await backend.aclose()


async def put(backend: EtcdV2Backend, key: str, value: str, ttl: int | None = None) -> int:
    reply = await backend.client.put(key, value, ttl=ttl)
    return int(reply["node"]["modifiedIndex"])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_seed_post_curl_workflow_is_visible(etcd: EtcdProcess, key_prefix: str) -> None:
    key = f"{key_prefix}/services/web/servers/host1"
    value = '{"host":"1.2.3.4","port":80}'
    cmd = ["curl", "-sS", "--fail", f"{etcd.client_url}/v2/keys{key}", "-d", f"value={value}", "-d", "ttl=60",
           "-X", "PUT"]  # fmt: skip
    reply = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    assert reply["node"]["ttl"] == 60
    backend = create("etcd", BackendOptions(nodes=(etcd.client_url,)))
    try:
        snap = await backend.get_values([f"{key_prefix}/services/web"])
        assert snap.values == {key: value}
        assert snap.revision is not None and snap.revision >= reply["node"]["modifiedIndex"]
    finally:
        await backend.aclose()


async def test_recursive_get_flattens_to_leaves(v2: EtcdV2Backend, key_prefix: str) -> None:
    await put(v2, f"{key_prefix}/app/a", "1")
    await put(v2, f"{key_prefix}/app/sub/b", "2")
    await put(v2, f"{key_prefix}/app/sub/deeper/c", "3")
    await put(v2, f"{key_prefix}/appx", "not under /app")
    snap = await v2.get_values([f"{key_prefix}/app/"])
    assert snap.values == {f"{key_prefix}/app/a": "1", f"{key_prefix}/app/sub/b": "2",
                           f"{key_prefix}/app/sub/deeper/c": "3"}  # fmt: skip
    # A leaf prefix is the key itself; a missing prefix is empty, still with an index.
    assert (await v2.get_values([f"{key_prefix}/appx"])).values == {f"{key_prefix}/appx": "not under /app"}
    missing = await v2.get_values([f"{key_prefix}/nothing"])
    assert missing.values == {} and missing.revision is not None and missing.revision >= snap.revision


async def test_watch_resumes_from_index_and_returns_change(v2: EtcdV2Backend, key_prefix: str) -> None:
    snap = await v2.get_values([key_prefix])
    assert snap.revision is not None
    first = await put(v2, f"{key_prefix}/a", "1")
    assert await asyncio.wait_for(v2.wait_changed([key_prefix], snap.revision), 2) == first
    waiter = asyncio.create_task(v2.wait_changed([key_prefix, f"{key_prefix}-other"], first))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    second = await put(v2, f"{key_prefix}-other/b", "2")
    assert await asyncio.wait_for(waiter, 2) == second


async def test_burst_of_200_puts_misses_none(v2: EtcdV2Backend, key_prefix: str) -> None:
    prefix = f"{key_prefix}/services/web/servers"
    snap = await v2.get_values([prefix])
    assert snap.revision is not None

    async def writer() -> list[int]:
        async with backend_for(*v2.client.endpoints.urls) as w:
            return [await put(w, f"{prefix}/h{i:03d}", f'{{"port":{i}}}') for i in range(200)]

    # Every single change is reported, in order, by chained wait_changed calls.
    writing = asyncio.create_task(writer())
    seen: list[int] = []
    since = snap.revision
    while len(seen) < 200:
        since = await asyncio.wait_for(v2.wait_changed([prefix], since), 5)
        seen.append(since)
    assert seen == await writing
    # And a daemon-style loop (read, then watch from the read's index) ends complete: any
    # write missing from a read comes after its index, so the watch must report it.
    await v2.client.request("DELETE", f"/v2/keys{prefix}", params={"recursive": "true"})
    async with backend_for(*v2.client.endpoints.urls) as daemon:
        snap = await daemon.get_values([prefix])
        assert snap.values == {}
        writing = asyncio.create_task(writer())
        rounds = 0
        while len(snap.values) < 200:
            assert snap.revision is not None
            await asyncio.wait_for(daemon.wait_changed([prefix], snap.revision), 5)
            snap = await daemon.get_values([prefix])
            rounds += 1
        assert len(await writing) == 200 and rounds >= 1
        real = await v2.client.get_tree(prefix)
        assert snap.values == real[0]


async def test_ttl_refresh_is_not_a_change(v2: EtcdV2Backend, key_prefix: str) -> None:
    key = f"{key_prefix}/servers/h1"
    lease = await v2.register(key, '{"port":80}', ttl=30)
    snap = await v2.get_values([key_prefix])
    assert snap.revision is not None
    waiter = asyncio.create_task(v2.wait_changed([key_prefix], snap.revision))
    for _ in range(3):
        assert 0 < await lease.keepalive() <= 30
        await put(v2, key, '{"port":80}', ttl=30)  # the seed loop re-PUTs the same value
    await asyncio.sleep(0.3)
    assert not waiter.done(), "a TTL refresh was reported as a change"
    rev = await put(v2, key, '{"port":81}', ttl=30)
    assert await asyncio.wait_for(waiter, 2) == rev


async def test_index_cleared_raises_revision_compacted(
    etcd_server_factory: Callable[..., EtcdProcess],
) -> None:
    proc = etcd_server_factory()
    async with backend_for(proc.client_url) as backend:
        await put(backend, "/watched/a", "1")
        snap = await backend.get_values(["/watched"])
        assert snap.revision is not None
        for i in range(1010):  # etcd v2 keeps the last 1000 events
            await put(backend, "/busy/k", str(i))
        with pytest.raises(RevisionCompacted):
            await asyncio.wait_for(backend.wait_changed(["/watched"], snap.revision), 2)
        fresh = await backend.get_values(["/watched"])
        waiter = asyncio.create_task(backend.wait_changed(["/watched"], fresh.revision))
        await asyncio.sleep(0.05)
        rev = await put(backend, "/watched/b", "2")
        assert await asyncio.wait_for(waiter, 2) == rev


async def test_watch_survives_restart(etcd_server_factory: Callable[..., EtcdProcess]) -> None:
    proc = etcd_server_factory()
    async with backend_for(proc.client_url) as backend:
        snap = await backend.get_values(["/svc"])
        waiter = asyncio.create_task(backend.wait_changed(["/svc"], snap.revision))
        await asyncio.sleep(0.1)
        await asyncio.to_thread(proc.stop)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(proc.start)
        async with backend_for(proc.client_url) as writer:
            rev = await put(writer, "/svc/after-restart", "1")
            t0 = time.monotonic()
            assert await asyncio.wait_for(waiter, 1.0) == rev
        assert time.monotonic() - t0 < 1.0


async def test_failover_when_member_in_use_dies(etcd_cluster: EtcdCluster) -> None:
    async with backend_for(*etcd_cluster.client_urls) as backend:
        snap = await backend.get_values(["/svc"])
        waiter = asyncio.create_task(backend.wait_changed(["/svc"], snap.revision))
        await asyncio.sleep(0.2)
        etcd_cluster[0].kill()
        async with backend_for(etcd_cluster[1].client_url, etcd_cluster[2].client_url) as writer:
            rev = await put(writer, "/svc/a", "1")
        assert await asyncio.wait_for(waiter, 5) == rev


async def test_register_keepalive_revoke_and_expiry(v2: EtcdV2Backend, key_prefix: str) -> None:
    key = f"{key_prefix}/servers/h1"
    lease = await v2.register(key, "v", ttl=10)
    assert (await v2.get_values([key_prefix])).values == {key: "v"}
    assert 0 < await lease.keepalive() <= 10
    await lease.revoke()
    assert (await v2.get_values([key_prefix])).values == {}
    with pytest.raises(LeaseLost):
        await lease.keepalive()
    await lease.revoke()  # already gone: fine
    short = await v2.register(f"{key_prefix}/servers/h2", "v", ttl=1)
    snap = await v2.get_values([key_prefix])
    assert snap.revision is not None
    # The expiry is a change the watch reports.
    await asyncio.wait_for(v2.wait_changed([key_prefix], snap.revision), 5)
    assert (await v2.get_values([key_prefix])).values == {}
    with pytest.raises(LeaseLost):
        await short.keepalive()


async def test_tls_client_certificates(etcd_tls: EtcdProcess, key_prefix: str) -> None:
    certs = etcd_tls.tls
    assert certs is not None
    async with backend_for(
        etcd_tls.client_url, client_ca_keys=str(certs.ca), client_cert=str(certs.client_cert),
        client_key=str(certs.client_key), watch_probe_interval=0.2,
    ) as backend:  # fmt: skip
        snap = await backend.get_values([key_prefix])
        assert snap.revision is not None
        waiter = asyncio.create_task(backend.wait_changed([key_prefix], snap.revision))
        await asyncio.sleep(0.5)  # a few /health probes over TLS while the poll waits
        assert not waiter.done()
        rev = await put(backend, f"{key_prefix}/k", "v")
        assert await asyncio.wait_for(waiter, 2) == rev
        lease = await backend.register(f"{key_prefix}/reg", "x", ttl=5)
        assert await lease.keepalive() > 0
        await lease.revoke()


async def test_silent_member_is_abandoned(etcd_cluster: EtcdCluster) -> None:
    """A stopped (SIGSTOP) member keeps the long poll open but fails its /health probe."""
    async with backend_for(
        *etcd_cluster.client_urls, watch_probe_interval=0.5, request_timeout=0.5
    ) as backend:
        snap = await backend.get_values(["/svc"])
        waiter = asyncio.create_task(backend.wait_changed(["/svc"], snap.revision))
        await asyncio.sleep(0.2)
        etcd_cluster[0].pause()
        try:
            async with backend_for(etcd_cluster[1].client_url, etcd_cluster[2].client_url) as writer:
                rev = await put(writer, "/svc/a", "1")
            assert await asyncio.wait_for(waiter, 5) == rev
        finally:
            etcd_cluster[0].resume()


async def test_replica_matches_a_real_read(v2: EtcdV2Backend, key_prefix: str) -> None:
    a, c = f"{key_prefix}/a", f"{key_prefix}/c"
    await put(v2, f"{a}/dir/seed", "0")
    async with backend_for(*v2.client.endpoints.urls) as daemon:
        snap = await daemon.get_values([a, c])
        assert snap.revision is not None
        waiter = asyncio.create_task(daemon.wait_changed([a, c], snap.revision))
        await asyncio.sleep(0.05)
        for i in range(60):
            await put(v2, f"{a if i % 2 else c}/dir/k{i % 7}", str(i))
            if i % 9 == 0:
                await v2.client.delete(f"{a}/dir/k{i % 7}")
        await v2.client.request("DELETE", f"/v2/keys{c}/dir", params={"recursive": "true"})
        await put(v2, f"{c}/after", "x", ttl=1)  # expires: a change the replica must apply
        assert await asyncio.wait_for(waiter, 2) > snap.revision
        await asyncio.sleep(2.5)
        mirrored = await daemon.get_values([a, c])
        real = {**(await v2.client.get_tree(a))[0], **(await v2.client.get_tree(c))[0]}
        assert mirrored.values == real
        assert f"{c}/after" not in real
