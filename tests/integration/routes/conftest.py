"""Fixtures of the route tests: each runs on both data planes, with backends it starts itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from route_helpers import Backends, route_stack

from muster.dataplane.nginx.conf import lua_available
from muster.stack.local import Stack


@pytest.fixture(params=["reload", "lua"])
def plane(request: pytest.FixtureRequest) -> str:
    if request.param == "lua" and not lua_available():
        pytest.skip("libnginx-mod-http-lua is not installed")
    return str(request.param)


@pytest.fixture
def backends() -> Iterator[Backends]:
    made = Backends()
    yield made
    made.close()


@pytest.fixture
def stack(plane: str, tmp_path: Path) -> Iterator[Stack]:
    with route_stack(tmp_path, plane) as running:
        yield running
