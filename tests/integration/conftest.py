"""Fixtures that run real etcd members on free loopback ports (see muster.stack.etcd).

* ``etcd``: one session-wide member (v2 enabled); pair it with ``key_prefix`` so tests
  never see each other's keys. Do not stop, compact or enable auth on it.
* ``etcd_server_factory``: build members you may stop, kill, restart or compact.
* ``etcd_cluster``: three fresh members per test.
* ``etcd_tls``: one session-wide member requiring client certificates (``.certs``).
* ``etcd_auth``: one session-wide member with auth on (``root``/``ROOT_PASSWORD`` and
  ``USER``/``USER_PASSWORD`` with read-write on every key).

Every test in tests/integration/ is marked ``integration``; each fixture skips (with the
reason) when /usr/bin/etcd is missing. Every process started is stopped at teardown.
"""

from __future__ import annotations

import re
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from muster.stack.etcd import (
    ETCD_BINARY,
    CertBundle,
    EtcdCluster,
    EtcdProcess,
    enable_auth,
    etcd_available,
    make_certs,
)

ROOT_PASSWORD = "root-secret"
USER = "muster"
USER_PASSWORD = "muster-secret"


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # `timeout` and CI runners stop pytest with SIGTERM, whose default action skips fixture
    # teardown and leaves every session etcd running; as KeyboardInterrupt, teardown runs.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt_on_sigterm)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _require_etcd() -> None:
    if not etcd_available():
        pytest.skip(f"etcd is not installed at {ETCD_BINARY} (Debian package etcd-server)")


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    """A shared single etcd member with ``--enable-v2``; use ``key_prefix`` for isolation."""
    _require_etcd()
    with EtcdProcess(tmp_path_factory.mktemp("etcd-shared") / "data") as proc:
        yield proc


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to this test, e.g. ``/t/test_watch-3f2a9c1b``."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60]
    return f"/t/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def etcd_server_factory(tmp_path: Path) -> Iterator[Callable[..., EtcdProcess]]:
    """``factory(**EtcdProcess options)`` starts a private member; all are stopped at teardown.

    Pass ``start=False`` to get the member unstarted.
    """
    _require_etcd()
    started: list[EtcdProcess] = []

    def factory(*, start: bool = True, **options: Any) -> EtcdProcess:
        proc = EtcdProcess(tmp_path / f"etcd{len(started)}", **options)
        started.append(proc)
        if start:
            proc.start()
        return proc

    try:
        yield factory
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture
def etcd_cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    """Three fresh members on loopback; tests may kill, pause and restart them."""
    _require_etcd()
    with EtcdCluster(tmp_path / "cluster", 3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def etcd_certs(tmp_path_factory: pytest.TempPathFactory) -> CertBundle:
    """A throwaway CA, server and client certificate (client CN ``root``)."""
    return make_certs(tmp_path_factory.mktemp("etcd-certs"))


@pytest.fixture(scope="session")
def etcd_tls(tmp_path_factory: pytest.TempPathFactory, etcd_certs: CertBundle) -> Iterator[EtcdProcess]:
    """A shared member serving HTTPS and requiring client certificates signed by ``.tls.ca``."""
    _require_etcd()
    data = tmp_path_factory.mktemp("etcd-tls") / "data"
    with EtcdProcess(data, tls=etcd_certs, client_cert_auth=True) as proc:
        yield proc


@dataclass(frozen=True)
class AuthEtcd:
    """A running member with auth enabled, and the credentials that work on it."""

    proc: EtcdProcess
    root_password: str = ROOT_PASSWORD
    user: str = USER
    password: str = USER_PASSWORD

    @property
    def client_url(self) -> str:
        return self.proc.client_url


@pytest.fixture(scope="session")
def etcd_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthEtcd]:
    """A shared member with v3 auth enabled: ``root`` plus a read-write ``muster`` user."""
    _require_etcd()
    with EtcdProcess(tmp_path_factory.mktemp("etcd-auth") / "data") as proc:
        enable_auth(proc.client_url, root_password=ROOT_PASSWORD, users={USER: USER_PASSWORD})
        yield AuthEtcd(proc)


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One session-wide standalone ZooKeeper (``.node``); pair it with ``key_prefix``. Do not stop it."""
    from muster.stack.zookeeper import ZooKeeperProcess, zookeeper_available

    if not zookeeper_available():
        pytest.skip("Debian's zookeeper package (/usr/share/java/zookeeper.jar) or java is not installed")
    pytest.importorskip("kazoo", reason="kazoo is not installed (pip install 'muster[zookeeper]')")
    with ZooKeeperProcess(tmp_path_factory.mktemp("zookeeper")) as server:
        yield server


def _require_redis() -> None:
    from muster.stack.redis import redis_available

    if not redis_available():
        pytest.skip("Debian's redis-server is not installed (scripts/install-deps)")
    pytest.importorskip("redis", reason="redis-py is not installed (pip install 'muster[redis]')")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One session-wide private redis-server (``.node``); pair it with ``key_prefix``. Do not stop it."""
    from muster.stack.redis import RedisProcess

    _require_redis()
    with RedisProcess(tmp_path_factory.mktemp("redis") / "data") as server:
        yield server


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Build private redis-servers you may stop, kill or restart; all stopped at teardown."""
    from muster.stack.redis import RedisProcess

    _require_redis()
    made: list[RedisProcess] = []

    def factory(**options: Any) -> RedisProcess:
        server = RedisProcess(tmp_path / f"redis{len(made)}", **options)
        made.append(server)
        server.start()
        return server

    yield factory
    for server in made:
        server.stop()
