"""Every module of the package: ``__all__`` exists, is sorted, names what exists, and the
module opens with a docstring. The list walks the package, so a new module is covered."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import muster

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(muster.__path__, "muster.")
    if not info.name.endswith("__main__")
)


def test_the_walk_finds_the_package() -> None:
    assert {"muster.registry.index", "muster.registry.schema", "muster.gotemplate.exec"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_exports_exist_and_are_sorted(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, "every module says what it exports (__all__)"
    assert list(exported) == sorted(exported), "keep __all__ sorted"
    missing = [attr for attr in exported if not hasattr(module, attr)]
    assert missing == []
    assert module.__doc__ and module.__doc__.strip(), "every module opens with a docstring"
