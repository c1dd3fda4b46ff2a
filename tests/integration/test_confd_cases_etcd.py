"""The confd corpus against etcd v3 and v2: the same keys in etcd give the same bytes.

Each ``confd-*`` case's ``keys.yaml`` is flattened exactly as confd's file backend does (muster's
file backend, itself checked against confd by tests/conformance), written to a private etcd
member, and rendered with ``muster confd -onetime -backend etcdv3`` (and ``etcd`` for v2),
following the README's procedure otherwise. Where confd's etcd and file backends differ by
design, the case is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from daemon_it_helpers import Writer

from muster.backends.file import load_key_files
from muster.cli import main
from muster.errors import Error
from muster.stack.etcd import EtcdProcess

CASES = Path(__file__).parent.parent / "conformance" / "gotemplate" / "cases"
CONFD_CASES = sorted(p for p in CASES.iterdir() if p.name.startswith("confd-"))

# The file backend matches `keys` as plain string prefixes; etcd (in confd too) matches the key
# and its subtree only, so /app does not pull in /application there.
STRING_PREFIX_CASES = {"confd-keys-filter"}


@pytest.fixture(scope="module")
def etcd_member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    from muster.stack.etcd import ETCD_BINARY, etcd_available

    if not etcd_available():
        pytest.skip(f"etcd is not installed at {ETCD_BINARY}")
    with EtcdProcess(tmp_path_factory.mktemp("etcd-corpus") / "data") as proc:
        yield proc


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    logger = logging.getLogger("muster")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


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
@pytest.mark.parametrize("case", CONFD_CASES, ids=[p.name for p in CONFD_CASES])
async def test_confd_case_on_etcd(case: Path, backend: str, fresh_keys: EtcdProcess, tmp_path: Path) -> None:
    if case.name in STRING_PREFIX_CASES:
        pytest.skip("the file backend's string-prefix key match differs from etcd's by design")
    try:
        keys = load_key_files([str(case / "keys.yaml")], "*")
    except Error as exc:
        pytest.skip(f"keys.yaml cannot be expressed as etcd keys: {exc}")
    async with Writer(backend, fresh_keys.client_url) as w:
        for key, value in keys.items():
            await w.put(key, value)
    work = tmp_path / "dir"
    for sub in ("conf.d", "templates", "out"):
        (work / sub).mkdir(parents=True)
    shutil.copyfile(case / "template.tmpl", work / "templates" / "template.tmpl")
    result_path = work / "out" / "result"
    resource = (case / "resource.toml").read_bytes().rstrip(b"\n") + b"\n"
    (work / "conf.d" / "case.toml").write_bytes(
        resource + f'src = "template.tmpl"\ndest = "{result_path}"\n'.encode()
    )
    args = [
        "confd",
        "-onetime",
        "-backend",
        backend,
        "-node",
        fresh_keys.client_url,
        "-confdir",
        str(work),
        "-config-file",
        str(work / "none.toml"),
        "-log-level",
        "error",
    ]
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
