"""The confd corpus against ZooKeeper: the same keys as znodes give the same bytes as the file backend.

Each ``confd-*`` case's ``keys.yaml`` is flattened as confd's file backend does, written as
znodes (parents made on the way) to the session's ZooKeeper, and rendered with
``muster confd -onetime -backend zookeeper``. Cases that cannot be expressed as znodes under
confd's reading (a key that is also the parent of another: confd reads only leaf znodes)
are skipped with the reason, as are those the etcd corpus skips for the string-prefix match.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confd_case_helpers import CASE_IDS, CONFD_CASES, case_keys, render_case


@pytest.fixture(scope="module")
def writer(zookeeper: Any) -> Iterator[Any]:
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zookeeper.node)
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def _replace_tree(client: Any, keys: dict[str, str]) -> None:
    """An empty tree (but /zookeeper), then every key as a znode."""
    for child in client.get_children("/"):
        if child != "zookeeper":
            client.delete("/" + child, recursive=True)
    for key, value in keys.items():
        client.create(key, value.encode(), makepath=True)


@pytest.mark.parametrize("case", CONFD_CASES, ids=CASE_IDS)
async def test_confd_case_on_zookeeper(case: Path, zookeeper: Any, writer: Any, tmp_path: Path) -> None:
    keys = case_keys(case, "ZooKeeper")
    parents = sorted(k for k in keys if any(o.startswith(k.rstrip("/") + "/") for o in keys))
    if parents:
        pytest.skip(f"{parents[0]} has both a value and children: confd reads only leaf znodes")
    if any(not k.startswith("/") or "//" in k or k.endswith("/") or k == "/zookeeper" for k in keys):
        pytest.skip("a key that is not a valid znode path")
    await asyncio.to_thread(_replace_tree, writer, keys)
    await render_case(case, tmp_path / "dir", "zookeeper", zookeeper.node)
