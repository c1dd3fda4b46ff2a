"""The confd corpus against etcd v3 and v2: the same keys in etcd give the same bytes.

Each ``confd-*`` case's ``keys.yaml`` is flattened exactly as confd's file backend does (muster's
file backend, itself checked against confd by tests/conformance), written to a private etcd
member, and rendered with ``muster confd -onetime -backend etcdv3`` (and ``etcd`` for v2),
following the README's procedure otherwise. Where confd's etcd and file backends differ by
design, the case is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from confd_case_helpers import CASE_IDS, CONFD_CASES, case_keys, render_case
from daemon_it_helpers import Writer

from muster.stack.etcd import EtcdProcess


@pytest.fixture(scope="module")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    from muster.stack.etcd import ETCD_BINARY, etcd_available

    if not etcd_available():
        pytest.skip(f"etcd is not installed at {ETCD_BINARY}")
    with EtcdProcess(tmp_path_factory.mktemp("etcd-corpus") / "data") as proc:
        yield proc


@pytest.fixture
async def fresh_keys(etcd_member: EtcdProcess) -> AsyncIterator[EtcdProcess]:
    """An empty key space before each case (v2 and v3 keys are separate stores in etcd 3.4)."""
    async with Writer("etcdv3", etcd_member.client_url) as w:
        assert w.v3 is not None
        await w.v3.client.delete_range(b"\0", b"\0")
    async with Writer("etcd", etcd_member.client_url) as w:
        assert w.v2 is not None
        for key in ("/" + name for name in await _v2_top(w)):
            await w.v2.client.request("DELETE", "/v2/keys" + key, params={"recursive": "true"})
    yield etcd_member


async def _v2_top(w: Writer) -> list[str]:
    assert w.v2 is not None
    tree, _ = await w.v2.client.get_tree("/")
    return sorted({k.split("/")[1] for k in tree})


@pytest.mark.parametrize("backend", ["etcdv3", "etcd"])
@pytest.mark.parametrize("case", CONFD_CASES, ids=CASE_IDS)
async def test_confd_case_on_etcd(case: Path, backend: str, fresh_keys: EtcdProcess, tmp_path: Path) -> None:
    keys = case_keys(case, "etcd")
    async with Writer(backend, fresh_keys.client_url) as w:
        for key, value in keys.items():
            await w.put(key, value)
    await render_case(case, tmp_path / "dir", backend, fresh_keys.client_url)
