"""confd's template functions through ``muster render``, against Go renderings of confd's
function map (scripts/template_golden/confd.go).

confd itself is not installed here, so these goldens come from a Go program that
binds confd 0.17's function map (template_funcs.go, memkv's store functions) onto the
same Go standard-library calls confd makes, keeping their Go result types: nil
slices, append-grown capacities, the named ``memkv.KVPairs``. Only host-independent
functions are used, and the key files are nested JSON objects of strings, so that no
YAML scalar rule is involved (``scripts/gen-template-goldens`` writes the goldens).
Each case also has the corpus's confd layout: ``keys.yaml`` (the same document: JSON
is YAML) and ``resource.toml``, which is what muster renders, so the cases can join
the conformance corpus as they are.
Cases in ``KNOWN_MISMATCHES`` are bugs not fixed yet, as strict xfails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from muster.cli.render import render

CASES = sorted(p for p in (Path(__file__).parent / "confd_funcs").iterdir() if (p / "template.tmpl").exists())

KNOWN_MISMATCHES: dict[str, str] = {}


def _param(case: Path) -> Any:
    reason = KNOWN_MISMATCHES.get(case.name)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=case.name, marks=marks)


def test_cases_are_present() -> None:
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", [_param(p) for p in CASES])
def test_confd_funcs_case(case: Path) -> None:
    assert (case / "keys.yaml").read_bytes() == (case / "keys.json").read_bytes()
    result = CliRunner().invoke(render, [str(case / "template.tmpl"), "--keys", str(case / "keys.yaml")])
    if (case / "expected.err").exists():
        assert result.exit_code == 1, result.output
        assert result.stdout_bytes == b""
    else:
        assert result.exit_code == 0, result.stderr_bytes.decode("utf-8", "replace")
        assert result.stdout_bytes == (case / "expected.out").read_bytes()
