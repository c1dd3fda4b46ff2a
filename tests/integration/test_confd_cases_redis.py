"""The confd corpus against Redis: the same keys as Redis strings give the same bytes.

Each ``confd-*`` case's ``keys.yaml`` is flattened exactly as confd's file backend does, written
as string keys (``SET /a/b value``) to a private redis-server, and rendered with ``muster confd
-onetime -backend redis``, as ``test_confd_cases_etcd`` does for etcd. Where confd's redis and
file backends differ by design, the case is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from confd_case_helpers import CASE_IDS, CONFD_CASES, case_keys, render_case


@pytest.fixture
async def fresh_redis(redis_server: Any) -> AsyncIterator[Any]:
    """An empty database before each case, and a client to fill it."""
    import redis.asyncio

    client = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port, db=9)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.mark.parametrize("case", CONFD_CASES, ids=CASE_IDS)
async def test_confd_case_on_redis(case: Path, redis_server: Any, fresh_redis: Any, tmp_path: Path) -> None:
    keys = case_keys(case, "Redis")
    if keys:
        await fresh_redis.mset(keys)
    await render_case(case, tmp_path / "dir", "redis", f"{redis_server.node}/9")
