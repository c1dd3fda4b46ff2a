"""Every name the executor modules export exists (httpx-style exports test)."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", ["exec", "calls", "fields", "plan", "funcs", "values", "gotypes"])
def test_all_names_exist(module: str) -> None:
    mod = importlib.import_module(f"muster.gotemplate.{module}")
    assert mod.__all__
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"
