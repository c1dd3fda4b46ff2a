"""Fixtures for daemon tests (helpers live in daemon_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_helpers import ConfDir, FakeClock


@pytest.fixture
def confdir(tmp_path: Path) -> ConfDir:
    return ConfDir(tmp_path / "confd")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
