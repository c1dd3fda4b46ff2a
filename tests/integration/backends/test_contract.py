"""One set of expectations run against every backend (confd's integration/ + expect/ idea):
what ``get_values`` returns, that a change ends ``wait_changed`` (or that the backend says it
cannot watch), that deletes show, and that ``aclose`` is safe twice.

Each store has a driver that writes keys the way another client would (etcdctl, an editor
saving the YAML file, the environment) and builds the backend under test. A new backend
adds a driver here; the expectations stay the same.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
from daemon_it_helpers import Writer

from muster.backends import Backend, BackendOptions, create
from muster.backends.env import EnvBackend
from muster.backends.memory import MemoryBackend
from muster.errors import WatchUnsupported
from muster.stack.etcd import EtcdProcess

pytestmark = pytest.mark.integration


class Store(Protocol):
    """A store as a writer sees it, and the backend under test reading it."""

    backend: Backend
    #: ``/a`` also selects ``/ab`` (confd's file and env backends), not only ``/a/...``.
    string_prefix: bool
    watches: bool

    async def put(self, key: str, value: str) -> None: ...

    async def delete(self, key: str) -> None: ...


class MemoryStore:
    string_prefix = False
    watches = True

    def __init__(self) -> None:
        self.backend = self.memory = MemoryBackend()

    async def put(self, key: str, value: str) -> None:
        self.memory.put(key, value)

    async def delete(self, key: str) -> None:
        self.memory.delete(key)


class EtcdStore:
    string_prefix = False
    watches = True

    def __init__(self, name: str, url: str) -> None:
        self.backend = create(name, BackendOptions(nodes=(url,)))
        self.writer = Writer(name, url)

    async def put(self, key: str, value: str) -> None:
        await self.writer.put(key, value)

    async def delete(self, key: str) -> None:
        await self.writer.delete(key)


class KazooWriter:
    """Znodes written by a separate kazoo client, as ``zkCli.sh`` would (parents made on the way)."""

    def __init__(self, node: str) -> None:
        from kazoo.client import KazooClient

        self.client = KazooClient(hosts=node)
        self.client.start(timeout=10)

    def _put(self, key: str, data: bytes) -> None:
        self.client.ensure_path(key)
        self.client.set(key, data)

    async def put(self, key: str, value: str) -> None:
        await asyncio.to_thread(self._put, key, value.encode())

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete, key, recursive=True)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.client.stop)
        await asyncio.to_thread(self.client.close)


class ZooKeeperStore:
    string_prefix = False
    watches = True

    def __init__(self, node: str) -> None:
        self.backend = create("zookeeper", BackendOptions(nodes=(node,)))
        self.writer = KazooWriter(node)

    async def put(self, key: str, value: str) -> None:
        await self.writer.put(key, value)

    async def delete(self, key: str) -> None:
        await self.writer.delete(key)


class RedisStore:
    """Keys written by a separate redis-py client, as ``redis-cli SET`` would."""

    string_prefix = False
    watches = True

    def __init__(self, node: str) -> None:
        import redis.asyncio

        self.backend = create("redis", BackendOptions(nodes=(node,)))
        host, port = node.rsplit(":", 1)
        self.writer = redis.asyncio.Redis(host=host, port=int(port))

    async def put(self, key: str, value: str) -> None:
        await self.writer.set(key, value)

    async def delete(self, key: str) -> None:
        await self.writer.delete(key)


class FileStore:
    """A YAML file rewritten whole, as an editor saves it (nested maps, confd's layout)."""

    string_prefix = True
    watches = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.values: dict[str, str] = {}
        self._write()
        self.backend = create("file", BackendOptions(files=(str(path),)))

    def _write(self) -> None:
        tree: dict[str, Any] = {}
        for key, value in self.values.items():
            node = tree
            *parents, leaf = key.strip("/").split("/")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(tree))  # JSON is YAML: no quoting rules to get wrong
        os.replace(tmp, self.path)

    async def put(self, key: str, value: str) -> None:
        self.values[key] = value
        self._write()

    async def delete(self, key: str) -> None:
        self.values.pop(key, None)
        self._write()


class EnvStore:
    """confd maps ``/a/b`` to ``A_B``: keys here avoid ``_`` and upper case, which it cannot map back."""

    string_prefix = True
    watches = False

    def __init__(self) -> None:
        self.environ: dict[str, str] = {}
        self.backend = EnvBackend(environ=self.environ)

    async def put(self, key: str, value: str) -> None:
        self.environ[key.strip("/").replace("/", "_").upper()] = value

    async def delete(self, key: str) -> None:
        self.environ.pop(key.strip("/").replace("/", "_").upper(), None)


BACKENDS = ["memory", "file", "env", "etcdv3", "etcd", "zookeeper", "redis"]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made: Store
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "file":
        made = FileStore(tmp_path / "keys.yaml")
    elif request.param == "env":
        made = EnvStore()
    elif request.param == "redis":
        made = RedisStore(request.getfixturevalue("redis_server").node)
    elif request.param == "zookeeper":
        made = ZooKeeperStore(request.getfixturevalue("zookeeper").node)
    else:
        etcd: EtcdProcess = request.getfixturevalue("etcd")
        made = EtcdStore(request.param, etcd.client_url)
    try:
        yield made
    finally:
        await made.backend.aclose()
        writer = getattr(made, "writer", None)
        if writer is not None:
            await writer.aclose()


@pytest.fixture
def root(request: pytest.FixtureRequest) -> str:
    """A key root unique to the test (etcd is shared), lower case, no ``_`` (env)."""
    return "/contract" + str(abs(hash(request.node.name)) % 10**8)


async def test_get_values_returns_what_is_under_the_prefix(store: Store, root: str) -> None:
    await store.put(f"{root}/app/port", "8080")
    await store.put(f"{root}/app/hosts/a", "10.0.0.1")
    await store.put(f"{root}/other/x", "1")
    await store.put(f"{root}/apple/y", "2")
    snapshot = await store.backend.get_values([f"{root}/app"])
    expected = {f"{root}/app/port": "8080", f"{root}/app/hosts/a": "10.0.0.1"}
    if store.string_prefix:
        expected[f"{root}/apple/y"] = "2"  # confd's plain string prefix, kept by design
    assert dict(snapshot.values) == expected
    both = await store.backend.get_values([f"{root}/app/port", f"{root}/other"])
    assert dict(both.values) == {f"{root}/app/port": "8080", f"{root}/other/x": "1"}
    assert dict((await store.backend.get_values([f"{root}/none"])).values) == {}


async def test_values_round_trip_unicode_and_newlines(store: Store, root: str) -> None:
    value = 'héllo wörld ✓\nsecond line\t{"json": [1, 2]}'
    await store.put(f"{root}/text/v", value)
    assert (await store.backend.get_values([f"{root}/text"])).values == {f"{root}/text/v": value}


async def test_a_delete_shows_in_the_next_read(store: Store, root: str) -> None:
    await store.put(f"{root}/d/a", "1")
    await store.put(f"{root}/d/b", "2")
    await store.delete(f"{root}/d/a")
    assert dict((await store.backend.get_values([f"{root}/d"])).values) == {f"{root}/d/b": "2"}


async def test_a_change_ends_the_wait_and_one_elsewhere_does_not(store: Store, root: str) -> None:
    await store.put(f"{root}/w/a", "1")
    first = await store.backend.get_values([f"{root}/w"])
    if not store.watches:
        with pytest.raises(WatchUnsupported):
            await store.backend.wait_changed([f"{root}/w"], first.revision)
        return
    waiter = asyncio.ensure_future(store.backend.wait_changed([f"{root}/w"], first.revision))
    try:
        await asyncio.sleep(0.3)  # the watch is established
        await store.put(f"{root}/elsewhere/x", "1")
        await asyncio.sleep(0.5)
        assert not waiter.done(), "a change outside the prefix ended the wait"
        await store.put(f"{root}/w/a", "2")
        revision = await asyncio.wait_for(waiter, timeout=5)
    finally:
        waiter.cancel()
    after = await store.backend.get_values([f"{root}/w"])
    assert after.values == {f"{root}/w/a": "2"}
    if first.revision is not None:
        assert revision is not None and revision > first.revision and after.revision is not None
        assert after.revision >= revision


async def test_aclose_is_safe_twice(store: Store) -> None:
    await store.backend.aclose()
    await store.backend.aclose()


def test_every_registered_backend_has_a_driver() -> None:
    from muster.backends import REGISTRY

    drivers: dict[str, Callable[..., object]] = {"memory": MemoryStore, "file": FileStore, "env": EnvStore,
                                                 "etcdv3": EtcdStore, "etcd": EtcdStore,
                                                 "zookeeper": ZooKeeperStore,
                                                 "redis": RedisStore}  # fmt: skip
    missing = set(REGISTRY) - drivers.keys()
    assert not missing, f"backends without a contract driver: {sorted(missing)}"
