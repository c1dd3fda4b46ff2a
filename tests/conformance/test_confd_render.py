"""confd conformance through ``muster render``: every ``confd-*`` case renders byte for byte
as confd does.

A case is a template, a key tree (``keys.yaml``, confd's file-backend layout), the
resource's ``prefix`` and ``keys``, and optionally an environment (``env.json``): that is
``muster render TEMPLATE --keys keys.yaml --prefix P --key K...``. Cases with extra confd
flags (``args.json``) need the daemon and run in test_confd_cases.py only.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from muster.cli.render import render

CASES = Path(__file__).parent / "gotemplate" / "cases"
CONFD_CASES = sorted(p for p in CASES.iterdir() if p.name.startswith("confd-"))
RENDER_CASES = [p for p in CONFD_CASES if not (p / "args.json").exists()]


def _resource_args(case: Path) -> list[str]:
    table = tomllib.loads((case / "resource.toml").read_text(encoding="utf-8"))["template"]
    args = ["--prefix", table.get("prefix", "/")]
    for key in table.get("keys", ["/"]):
        args += ["--key", key]
    return args


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
    args = [str(case / "template.tmpl"), "--keys", str(case / "keys.yaml"), *_resource_args(case)]
    result = CliRunner().invoke(render, args)
    if (case / "expected.err").exists():
        assert result.exit_code == 1, result.output
        assert result.stdout_bytes == b""
        assert result.stderr_bytes.strip(), "a failed render explains itself on stderr"
    else:
        assert result.exit_code == 0, result.stderr_bytes.decode("utf-8", "replace")
        assert result.stdout_bytes == (case / "expected.out").read_bytes()
