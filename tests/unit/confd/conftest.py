"""Shared fixtures for the confd function tests: Go 1.19 goldens (see scripts/confd_golden)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

GOLDEN_FILE = Path(__file__).parent / "data" / "go_golden.json"


@pytest.fixture(scope="session")
def go_golden() -> dict[str, Any]:
    golden: dict[str, Any] = json.loads(GOLDEN_FILE.read_text(encoding="utf-8"))
    return golden
