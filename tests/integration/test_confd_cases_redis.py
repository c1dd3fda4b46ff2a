"""The confd corpus against Redis: the same keys as Redis strings give the same bytes.

Each ``confd-*`` case's ``keys.yaml`` is flattened exactly as confd's file backend does, written
as string keys (``SET /a/b value``) to a private redis-server, and rendered with ``muster confd
-onetime -backend redis``, as ``test_confd_cases_etcd`` does for etcd. Where confd's redis and
file backends differ by design, the case is skipped with the reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from muster.backends.file import load_key_files
from muster.cli import main
from muster.errors import Error

CASES = Path(__file__).parent.parent / "conformance" / "gotemplate" / "cases"
CONFD_CASES = sorted(p for p in CASES.iterdir() if p.name.startswith("confd-"))

# The file backend matches `keys` as plain string prefixes; Redis (in confd too, via SCAN
# KEY/*) matches the key and its subtree only, so /app does not pull in /application there.
STRING_PREFIX_CASES = {"confd-keys-filter"}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    logger = logging.getLogger("muster")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
async def fresh_redis(redis_server: Any) -> AsyncIterator[Any]:
    """An empty database before each case, and a client to fill it."""
    import redis.asyncio

    client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port, db=9)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.mark.parametrize("case", CONFD_CASES, ids=[p.name for p in CONFD_CASES])
async def test_confd_case_on_redis(case: Path, redis_server: Any, fresh_redis: Any, tmp_path: Path) -> None:
    if case.name in STRING_PREFIX_CASES:
        pytest.skip("the file backend's string-prefix key match differs from Redis's by design")
    try:
        keys = load_key_files([str(case / "keys.yaml")], "*")
    except Error as exc:
        pytest.skip(f"keys.yaml cannot be expressed as Redis keys: {exc}")
    if keys:
        await fresh_redis.mset(dict(keys))
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
        "redis",
        "-node",
        f"{redis_server.node}/9",
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
