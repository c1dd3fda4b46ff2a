"""confd's functions through the template engine, against Go's text/template.

``data/funcs_golden.json`` is what Go 1.19 renders for ``data/funcs_cases.json`` with a
restatement of confd's function map (scripts/confd_golden/funcs): printing of the
returned types (KVPair, []string, []int, maps from json), errors in Go's words,
argument type checks. Outputs and error messages must match exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from muster.confd.funcs import func_map
from muster.confd.store import KVStore
from muster.errors import TemplateError
from muster.gotemplate import Template

DATA = Path(__file__).parent / "data"
CASES = json.loads((DATA / "funcs_cases.json").read_text(encoding="utf-8"))
GOLDEN = json.loads((DATA / "funcs_golden.json").read_text(encoding="utf-8"))
STORE = KVStore(CASES["keys"])

PARAMS = sorted(CASES["templates"])


@pytest.mark.parametrize("name", PARAMS)
def test_matches_go(name: str) -> None:
    source = CASES["templates"][name]
    try:
        out, err = Template("t.tmpl", funcs=func_map(STORE)).parse(source).execute(None), ""
    except TemplateError as exc:
        out, err = "", str(exc)
    want = GOLDEN[name]
    assert (out, err) == (want["out"], want.get("err", ""))


def test_golden_covers_every_case() -> None:
    assert sorted(GOLDEN) == sorted(CASES["templates"])
    assert sum(1 for v in GOLDEN.values() if v.get("err")) >= 15
