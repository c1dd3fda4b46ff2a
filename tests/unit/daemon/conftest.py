"""Fixtures for daemon tests (helpers live in daemon_helpers.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import ConfDir, FakeClock


@pytest.fixture
def confdir(tmp_path: Path) -> ConfDir:
    return ConfDir(tmp_path / "confd")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures the ``muster`` logger for the process; give later tests theirs back."""
    logger = logging.getLogger("muster")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
