"""The layer contracts in pyproject.toml (``[tool.importlinter]``) hold: an upward import
fails the build instead of waiting for a review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"


def test_the_layer_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(PYPROJECT), no_cache=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 broken" in out and "kept" in out.lower()


# Imports inside functions hide dependencies from the contracts above; the only ones allowed
# defer an optional dependency (an extra), so muster runs without it until it is used.
OPTIONAL = {"redis", "kazoo"}
SRC = Path(__file__).parents[2] / "src" / "muster"


def _function_imports(path: Path, root: Path = SRC) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            if not roots <= OPTIONAL:
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_import_hides_inside_a_function() -> None:
    hidden = [where for path in sorted(SRC.rglob("*.py")) for where in _function_imports(path)]
    assert hidden == []


def test_the_function_import_check_sees_one(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import json\n    from redis import Redis\n")
    assert _function_imports(module, tmp_path) == ["m.py:2"]
