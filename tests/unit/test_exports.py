"""Every name these modules export exists, ``__all__`` is sorted, and each has a docstring."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "muster.store",
    "muster.confdfuncs",
    "muster.gojson",
    "muster.gomatch",
    "muster.gosort",
    "muster.dnslookup",
    "muster.gotemplate.gotime",
    "muster.backends.file",
    "muster.backends.filewatch",
    "muster.backends.env",
    "muster.backends.yamlkeys",
    "muster.render_cmd",
    "muster.daemon",
    "muster.daemon.core",
    "muster.daemon.main",
    "muster.daemon.report",
    "muster.daemon.signals",
    "muster.backends.factory",
    "muster.backends.changefeed",
    "muster.dataplane.membership",
    "muster.dataplane.pusher",
    "muster.dataplane.resolve",
    "muster.status",
    "muster.threads",
    "muster.listener",
    "muster.registry.schema",
    "muster.registry.resolve",
    "muster.guard",
    "muster.redact",
    "muster.log",
    "muster.services",
    "muster.dataplane.sink",
    "muster.dataplane.admin",
]


@pytest.mark.parametrize("name", MODULES)
def test_exports_exist_and_are_sorted(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported), "keep __all__ sorted"
    missing = [attr for attr in exported if not hasattr(module, attr)]
    assert missing == []
    assert module.__doc__ and module.__doc__.strip(), "every module opens with a docstring"
