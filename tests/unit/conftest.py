"""Fixtures for every unit test: Go's golden answers, and the ``muster`` logger put back."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

GOLDEN_FILE = Path(__file__).parent / "confd" / "data" / "go_golden.json"


@pytest.fixture(scope="session")
def go_golden() -> dict[str, Any]:
    """Go 1.19's answers for path.Match, time formatting and confd's functions."""
    golden: dict[str, Any] = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
    return golden


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures the ``muster`` logger for the process; give later tests theirs back."""
    logger = logging.getLogger("muster")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
