"""EtcdV3Backend against real etcd: snapshots, prefixes, watches, outages, TLS, auth, leases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from muster.backends import create
from muster.backends.etcd.v3 import EtcdV3Backend
from muster.backends.keys import prefix_end
from muster.backends.options import BackendOptions
from muster.errors import BackendError, BackendUnavailable, LeaseLost, RevisionCompacted
from muster.stack.etcd import EtcdCluster, EtcdProcess, enable_auth


def backend_for(*urls: str, **options: object) -> EtcdV3Backend:
    return EtcdV3Backend(options=BackendOptions(nodes=urls, **options))  # type: ignore[arg-type]


@pytest.fixture
async def v3(etcd: EtcdProcess) -> AsyncIterator[EtcdV3Backend]:
    backend = backend_for(etcd.client_url)
    yield backend
    await backend.aclose()


async def put(backend: EtcdV3Backend, key: str, value: str) -> int:
    return await backend.client.put(key.encode(), value.encode())


async def test_registry_builds_v3_backend(etcd: EtcdProcess, key_prefix: str) -> None:
    backend = create("etcdv3", BackendOptions(nodes=(etcd.client_url,)))
    try:
        assert isinstance(backend, EtcdV3Backend)
        await put(backend, f"{key_prefix}/k", "v")
        snap = await backend.get_values([key_prefix])
        assert snap.values == {f"{key_prefix}/k": "v"}
    finally:
        await backend.aclose()


async def test_snapshot_is_read_at_one_revision(v3: EtcdV3Backend, key_prefix: str) -> None:
    a, b = f"{key_prefix}/a", f"{key_prefix}/b"
    await put(v3, f"{a}/x", "1")
    rev = await put(v3, f"{b}/y", "1")
    snap = await v3.get_values([a, b])
    assert snap.revision == rev
    # A write landing between the reads of the two prefixes must not show up.
    original = v3.client.range
    writes: list[int] = []

    async def range_then_write(*args: object, **kwargs: object) -> object:
        result = await original(*args, **kwargs)  # type: ignore[arg-type]
        if not writes:  # a concurrent writer sneaks in right after the first read
            writes.append(await put(v3, f"{b}/y", "2"))
        return result

    v3.client.range = range_then_write  # type: ignore[method-assign]
    try:
        snap2 = await v3.get_values([a, b])
    finally:
        v3.client.range = original  # type: ignore[method-assign]
    assert writes and writes[0] > rev
    assert snap2.revision == rev
    assert snap2.values[f"{b}/y"] == "1"
    assert (await v3.get_values([b])).values[f"{b}/y"] == "2"


async def test_prefix_matches_key_and_subtree_only(v3: EtcdV3Backend, key_prefix: str) -> None:
    p = f"{key_prefix}/app"
    for key in (p, f"{p}/x", f"{p}/x/y", f"{p}b", f"{p}-1", f"{p}.x", key_prefix):
        await put(v3, key, key[-3:])
    snap = await v3.get_values([p])
    assert sorted(snap.values) == [p, f"{p}/x", f"{p}/x/y"]
    assert sorted((await v3.get_values([p + "/"])).values) == [p, f"{p}/x", f"{p}/x/y"]
    unicode_key = f"{key_prefix}/ünï/ключ"
    await put(v3, unicode_key, "värde")
    assert (await v3.get_values([f"{key_prefix}/ünï"])).values == {unicode_key: "värde"}


async def test_get_values_pages_large_ranges(v3: EtcdV3Backend, key_prefix: str) -> None:
    for i in range(25):
        await put(v3, f"{key_prefix}/k{i:03d}", str(i))
    values, _ = await v3.client.range_all([(f"{key_prefix}/".encode(), f"{key_prefix}0".encode())], page=7)
    assert len(values) == 25


async def test_watch_returns_revision_of_change(v3: EtcdV3Backend, key_prefix: str) -> None:
    snap = await v3.get_values([key_prefix])
    waiter = asyncio.create_task(v3.wait_changed([key_prefix], snap.revision))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await put(v3, f"{key_prefix}-sibling", "not under the prefix")
    await asyncio.sleep(0.1)
    assert not waiter.done()
    rev = await put(v3, f"{key_prefix}/svc", "1")
    assert await asyncio.wait_for(waiter, 2) == rev


async def test_watch_resumes_from_since(v3: EtcdV3Backend, key_prefix: str) -> None:
    snap = await v3.get_values([key_prefix])
    rev = await put(v3, f"{key_prefix}/early", "written before the watch started")
    last = await put(v3, f"{key_prefix}/later", "x")
    # Both writes predate the watch: it reports them (the newest revision of the first batch).
    assert rev <= await asyncio.wait_for(v3.wait_changed([key_prefix], snap.revision), 2) <= last
    assert await asyncio.wait_for(v3.wait_changed([key_prefix], rev), 2) == last


async def test_watch_sees_deletes_and_several_prefixes(v3: EtcdV3Backend, key_prefix: str) -> None:
    await put(v3, f"{key_prefix}/b/k", "1")
    snap = await v3.get_values([f"{key_prefix}/a", f"{key_prefix}/b"])
    waiter = asyncio.create_task(v3.wait_changed([f"{key_prefix}/a", f"{key_prefix}/b"], snap.revision))
    await asyncio.sleep(0.05)
    await v3.client.delete_range(f"{key_prefix}/b/k".encode())
    rev = await v3.get_values([key_prefix])
    assert await asyncio.wait_for(waiter, 2) == rev.revision


async def test_compaction_raises_revision_compacted(etcd_server_factory: Callable[..., EtcdProcess]) -> None:
    proc = etcd_server_factory()
    async with backend_for(proc.client_url) as backend:
        first = await put(backend, "/c/k", "1")
        await put(backend, "/c/k", "2")
        last = await put(backend, "/c/k", "3")
        await backend.client.compact(last)
        with pytest.raises(RevisionCompacted) as info:
            await asyncio.wait_for(backend.wait_changed(["/c"], first), 2)
        assert info.value.compact_revision in (None, last)  # known when the watch (not the read) saw it
        # A fresh snapshot works and the watch continues from it.
        snap = await backend.get_values(["/c"])
        assert snap.values == {"/c/k": "3"}


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
            t0 = time.monotonic()
            rev = await put(writer, "/svc/after-restart", "1")
            assert await asyncio.wait_for(waiter, 1.0) == rev
            latency = time.monotonic() - t0
        assert latency < 1.0, f"change after restart seen after {latency:.3f}s"


async def test_unreachable_endpoint_is_backend_unavailable() -> None:
    from muster.stack.etcd import free_port

    async with backend_for(f"http://127.0.0.1:{free_port()}", request_timeout=1.0) as backend:
        with pytest.raises(BackendUnavailable):
            await backend.get_values(["/x"])


async def test_lease_register_keepalive_revoke(v3: EtcdV3Backend, key_prefix: str) -> None:
    key = f"{key_prefix}/servers/h1"
    lease = await v3.register(key, '{"host":"1.2.3.4","port":80}', ttl=5)
    assert lease.ttl == 5
    assert (await v3.get_values([key_prefix])).values == {key: '{"host":"1.2.3.4","port":80}'}
    assert 0 < await lease.keepalive() <= 5
    await lease.revoke()
    assert (await v3.get_values([key_prefix])).values == {}
    with pytest.raises(LeaseLost):
        await lease.keepalive()
    await lease.revoke()  # already gone: not an error


async def test_lease_expires_without_keepalive(v3: EtcdV3Backend, key_prefix: str) -> None:
    key = f"{key_prefix}/servers/h2"
    lease = await v3.register(key, "v", ttl=1)
    snap = await v3.get_values([key_prefix])
    assert key in snap.values
    # The expiry is a change the watch reports.
    await asyncio.wait_for(v3.wait_changed([key_prefix], snap.revision), 5)
    assert (await v3.get_values([key_prefix])).values == {}
    with pytest.raises(LeaseLost):
        await lease.keepalive()


async def test_bad_request_is_a_backend_error(v3: EtcdV3Backend) -> None:
    with pytest.raises(BackendError):
        await v3.client.request("/v3/kv/range", {"key": "not base64!"})


async def test_failover_when_member_in_use_dies(etcd_cluster: EtcdCluster) -> None:
    async with backend_for(*etcd_cluster.client_urls) as backend:
        snap = await backend.get_values(["/svc"])
        assert backend.client.endpoints.current == etcd_cluster[0].client_url
        waiter = asyncio.create_task(backend.wait_changed(["/svc"], snap.revision))
        await asyncio.sleep(0.2)
        etcd_cluster[0].kill()
        async with backend_for(etcd_cluster[1].client_url, etcd_cluster[2].client_url) as writer:
            rev = await put(writer, "/svc/a", "1")
        assert await asyncio.wait_for(waiter, 5) == rev
        assert backend.client.endpoints.current != etcd_cluster[0].client_url
        assert (await backend.get_values(["/svc"])).values == {"/svc/a": "1"}


async def test_silent_member_is_abandoned(etcd_cluster: EtcdCluster) -> None:
    """A member that stops answering (SIGSTOP) keeps its TCP stream open: the probe must notice."""
    async with backend_for(
        *etcd_cluster.client_urls, watch_probe_interval=0.5, request_timeout=0.5
    ) as backend:
        snap = await backend.get_values(["/svc"])
        waiter = asyncio.create_task(backend.wait_changed(["/svc"], snap.revision))
        await asyncio.sleep(0.2)
        etcd_cluster[0].pause()
        try:
            async with backend_for(etcd_cluster[1].client_url, etcd_cluster[2].client_url) as writer:
                rev = await put(writer, "/svc/a", "1")  # waits for a new leader if m0 led
            assert await asyncio.wait_for(waiter, 5) == rev
        finally:
            etcd_cluster[0].resume()


async def test_quorum_loss_and_recovery(etcd_cluster: EtcdCluster) -> None:
    async with backend_for(*etcd_cluster.client_urls, request_timeout=2.0) as backend:
        snap = await backend.get_values(["/svc"])
        waiter = asyncio.create_task(backend.wait_changed(["/svc"], snap.revision))
        await asyncio.sleep(0.2)
        etcd_cluster[1].kill()
        etcd_cluster[2].kill()
        # Without quorum, reads fail fast instead of hanging (the member knows it has no leader).
        await asyncio.sleep(3)
        async with backend_for(*etcd_cluster.client_urls, request_timeout=2.0) as fresh:
            t0 = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await fresh.get_values(["/svc"])
            assert time.monotonic() - t0 < 2.5
        assert not waiter.done()
        await asyncio.to_thread(etcd_cluster[1].start, wait=False)
        await asyncio.to_thread(etcd_cluster[1].wait_healthy)
        await asyncio.to_thread(etcd_cluster[0].wait_healthy)
        async with backend_for(etcd_cluster[0].client_url, etcd_cluster[1].client_url) as writer:
            t0 = time.monotonic()
            rev = await put(writer, "/svc/back", "1")
            t_write = time.monotonic()
        assert await asyncio.wait_for(waiter, 5) == rev
        latency = time.monotonic() - t_write
        assert latency < 1.0, (
            f"change after quorum returned seen after {latency:.3f}s (put took {t_write - t0:.3f}s)"
        )


async def test_tls_client_certificates(etcd_tls: EtcdProcess, key_prefix: str) -> None:
    certs = etcd_tls.tls
    assert certs is not None
    options = {"client_ca_keys": str(certs.ca), "client_cert": str(certs.client_cert),
               "client_key": str(certs.client_key)}  # fmt: skip
    async with backend_for(etcd_tls.client_url, **options) as backend:
        snap = await backend.get_values([key_prefix])
        waiter = asyncio.create_task(backend.wait_changed([key_prefix], snap.revision))
        await asyncio.sleep(0.05)
        rev = await put(backend, f"{key_prefix}/k", "v")
        assert await asyncio.wait_for(waiter, 2) == rev
        lease = await backend.register(f"{key_prefix}/reg", "x", ttl=5)
        assert await lease.keepalive() > 0
        await lease.revoke()
    # Without a client certificate the server refuses us; a clear error, not a hang.
    async with backend_for(etcd_tls.client_url, client_ca_keys=str(certs.ca), request_timeout=2.0) as bare:
        with pytest.raises(BackendError):
            await bare.get_values([key_prefix])
    # Without the CA we refuse the server.
    async with backend_for(etcd_tls.client_url, request_timeout=2.0) as untrusting:
        with pytest.raises(BackendError):
            await untrusting.get_values([key_prefix])


async def test_username_password_auth(etcd_auth: Any, key_prefix: str) -> None:
    async with backend_for(
        etcd_auth.client_url, username=etcd_auth.user, password=etcd_auth.password
    ) as backend:
        snap = await backend.get_values([key_prefix])
        waiter = asyncio.create_task(backend.wait_changed([key_prefix], snap.revision))
        await asyncio.sleep(0.05)
        rev = await put(backend, f"{key_prefix}/k", "v")
        assert await asyncio.wait_for(waiter, 2) == rev
        lease = await backend.register(f"{key_prefix}/reg", "x", ttl=5)
        assert await lease.keepalive() > 0
        await lease.revoke()
    async with backend_for(etcd_auth.client_url) as anonymous:
        with pytest.raises(BackendError) as info:
            await anonymous.get_values([key_prefix])
        assert not isinstance(info.value, BackendUnavailable)
    async with backend_for(etcd_auth.client_url, username=etcd_auth.user, password="wrong") as wrong:
        with pytest.raises(BackendError, match="authentication failed"):
            await wrong.get_values([key_prefix])


async def test_expired_auth_token_is_refreshed(etcd_server_factory: Callable[..., EtcdProcess]) -> None:
    proc = etcd_server_factory(extra_args=["--auth-token-ttl", "1"])
    enable_auth(proc.client_url, root_password="r", users={"u": "p"})
    async with backend_for(proc.client_url, username="u", password="p") as backend:
        await put(backend, "/k", "1")
        token = backend.client._token
        await asyncio.sleep(2.5)
        assert (await backend.get_values(["/k"])).values == {"/k": "1"}
        assert backend.client._token != token


async def test_mirror_snapshot_matches_a_real_read(
    v3: EtcdV3Backend, etcd: EtcdProcess, key_prefix: str
) -> None:
    a, c = f"{key_prefix}/a", f"{key_prefix}/c"
    await put(v3, f"{a}/seed", "0")
    snap = await v3.get_values([a, c])
    since = snap.revision
    assert since is not None
    waiter = asyncio.create_task(v3.wait_changed([a, c], since))
    await asyncio.sleep(0.05)
    # Inside the covering range [a, c0) but outside the prefixes: neither a change nor a value.
    await put(v3, f"{key_prefix}/b/noise", "x")
    await asyncio.sleep(0.2)
    assert not waiter.done()
    async with backend_for(etcd.client_url) as writer:
        for i in range(200):
            await put(writer, f"{a if i % 2 else c}/k{i % 37}", str(i))
            if i % 5 == 0:
                await writer.client.delete_range(f"{a}/k{i % 37}".encode())
        last = await put(writer, f"{c}/last", "done")
    assert await asyncio.wait_for(waiter, 2) > since
    while (since := await asyncio.wait_for(v3.wait_changed([a, c], since), 2)) < last:
        pass
    mirrored = await v3.get_values([a, c])
    assert mirrored.revision is not None and mirrored.revision >= last
    async with backend_for(etcd.client_url) as reader:
        real = await reader.get_values([a, c])
        assert mirrored.values == real.values
        assert f"{key_prefix}/b/noise" not in mirrored.values
        # A subset of the watched prefixes is served from the same replica.
        assert (await v3.get_values([c])).values == (await reader.get_values([c])).values


async def test_a_held_watch_stream_reads_what_came_meanwhile_in_one_go(
    v3: EtcdV3Backend, etcd: EtcdProcess, key_prefix: str
) -> None:
    # Under churn the mirror leaves its stream unread for a moment (COALESCE), so a burst
    # costs the daemon one wakeup rather than one per message: the socket must stay unread.
    key = f"{key_prefix}/k"
    start = await put(v3, key, "0")
    async with v3.client.watch(
        etcd.client_url, (key.encode(), prefix_end(key.encode())), start + 1
    ) as stream:
        created = await stream.receive(idle_timeout=2)
        assert created is not None and created.created
        content = stream._response.content  # aiohttp's buffer, fed from the socket
        before = content.total_bytes
        held = asyncio.create_task(stream.hold(1.0))
        async with backend_for(etcd.client_url) as writer:
            last = [await put(writer, key, str(i)) for i in range(20)][-1]
        await asyncio.sleep(0.2)  # etcd has sent them: nothing was read meanwhile
        assert content.total_bytes == before and not held.done()
        await held
        revisions = []
        while not revisions or revisions[-1] < last:
            msg = await stream.receive(idle_timeout=2)
            assert msg is not None
            revisions += [ev.mod_revision for ev in msg.events]
            assert stream.pending or revisions[-1] == last  # every message came in one read
        assert revisions == list(range(start + 1, last + 1))
