"""confd conformance through ``muster render``: every ``confd-*`` case that needs no
prefix, key filter or extra flags renders byte for byte as confd does.

Those cases are exactly a template, a key tree (``keys.yaml``, confd's file-backend
layout) and optionally an environment (``env.json``), which is what ``muster render
TEMPLATE --keys keys.yaml`` takes. The remaining confd cases (``prefix``, ``keys``
filters, ``args.json``) exercise the daemon's resource handling and run in its suite.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from muster.render_cmd import render

CASES = Path(__file__).parent / "gotemplate" / "cases"


def _renderable(case: Path) -> bool:
    table = tomllib.loads((case / "resource.toml").read_text(encoding="utf-8"))["template"]
    return table.get("keys", ["/"]) == ["/"] and "prefix" not in table and not (case / "args.json").exists()


CONFD_CASES = sorted(p for p in CASES.iterdir() if p.name.startswith("confd-"))
RENDER_CASES = [p for p in CONFD_CASES if _renderable(p)]


def test_corpus_is_present() -> None:
    assert len(CONFD_CASES) >= 70
    assert len(RENDER_CASES) >= 60


@pytest.mark.parametrize("case", RENDER_CASES, ids=[p.name for p in RENDER_CASES])
def test_confd_case(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = case / "env.json"
    if env_file.exists():
        for name, value in json.loads(env_file.read_text(encoding="utf-8")).items():
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("MUSTER_CONF_UNSET", raising=False)
    result = CliRunner().invoke(render, [str(case / "template.tmpl"), "--keys", str(case / "keys.yaml")])
    if (case / "expected.err").exists():
        assert result.exit_code == 1, result.output
        assert result.stdout_bytes == b""
        assert result.stderr_bytes.strip(), "a failed render explains itself on stderr"
    else:
        assert result.exit_code == 0, result.stderr_bytes.decode("utf-8", "replace")
        assert result.stdout_bytes == (case / "expected.out").read_bytes()
