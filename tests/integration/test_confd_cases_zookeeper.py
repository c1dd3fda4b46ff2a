"""The confd corpus against ZooKeeper: the same keys as znodes give the same bytes as the file backend.

Each ``confd-*`` case's ``keys.yaml`` is flattened as confd's file backend does, written as
znodes (parents made on the way) to the session's ZooKeeper, and rendered with
``muster confd -onetime -backend zookeeper``. Cases that cannot be expressed as znodes under
confd's reading (a key that is also the parent of another: confd reads only leaf znodes)
are skipped with the reason, as are those the etcd corpus skips for the string-prefix match.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from muster.backends.file import load_key_files
from muster.cli import main
from muster.errors import Error

CASES = Path(__file__).parent.parent / "conformance" / "gotemplate" / "cases"
CONFD_CASES = sorted(p for p in CASES.iterdir() if p.name.startswith("confd-"))
STRING_PREFIX_CASES = {"confd-keys-filter"}


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


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    logger = logging.getLogger("muster")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def _replace_tree(client: Any, keys: dict[str, str]) -> None:
    """An empty tree (but /zookeeper), then every key as a znode."""
    for child in client.get_children("/"):
        if child != "zookeeper":
            client.delete("/" + child, recursive=True)
    for key, value in keys.items():
        client.create(key, value.encode(), makepath=True)


@pytest.mark.parametrize("case", CONFD_CASES, ids=[p.name for p in CONFD_CASES])
async def test_confd_case_on_zookeeper(case: Path, zookeeper: Any, writer: Any, tmp_path: Path) -> None:
    if case.name in STRING_PREFIX_CASES:
        pytest.skip("the file backend's string-prefix key match differs from ZooKeeper's by design")
    try:
        keys = load_key_files([str(case / "keys.yaml")], "*")
    except Error as exc:
        pytest.skip(f"keys.yaml cannot be expressed as znodes: {exc}")
    parents = sorted(k for k in keys if any(o.startswith(k.rstrip("/") + "/") for o in keys))
    if parents:
        pytest.skip(f"{parents[0]} has both a value and children: confd reads only leaf znodes")
    if any(not k.startswith("/") or "//" in k or k.endswith("/") or k == "/zookeeper" for k in keys):
        pytest.skip("a key that is not a valid znode path")
    await asyncio.to_thread(_replace_tree, writer, keys)
    work = tmp_path / "dir"
    for sub in ("conf.d", "templates", "out"):
        (work / sub).mkdir(parents=True)
    shutil.copyfile(case / "template.tmpl", work / "templates" / "template.tmpl")
    result_path = work / "out" / "result"
    resource = (case / "resource.toml").read_bytes().rstrip(b"\n") + b"\n"
    (work / "conf.d" / "case.toml").write_bytes(
        resource + f'src = "template.tmpl"\ndest = "{result_path}"\n'.encode()
    )
    args = ["confd", "-onetime", "-backend", "zookeeper", "-node", zookeeper.node, "-confdir", str(work),
            "-config-file", str(work / "none.toml"), "-log-level", "error"]  # fmt: skip
    if (case / "args.json").exists():
        args += json.loads((case / "args.json").read_text(encoding="utf-8"))
    env: dict[str, str | None] = {"MUSTER_CONF_UNSET": None}
    if (case / "env.json").exists():
        env.update(json.loads((case / "env.json").read_text(encoding="utf-8")))
    result = await asyncio.to_thread(CliRunner().invoke, main, args, env=env)
    if (case / "expected.err").exists():
        assert result.exit_code != 0, result.output
        assert not result_path.exists()
    else:
        assert result.exit_code == 0, result.output
        assert result_path.read_bytes() == (case / "expected.out").read_bytes()
