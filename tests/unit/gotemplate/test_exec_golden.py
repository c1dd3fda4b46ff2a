"""Differential tests: the executor against outputs and error messages from Go 1.19.

``exec_goldens.json`` is produced by ``scripts/gen-exec-goldens`` running real Go over
the rows of Go's own ``exec_test.go`` table plus muster's ``scripts/exec_golden/cases.json``;
``exec_fixture`` rebuilds the generator's data and functions in the value model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from exec_fixture import FUNCS, load_data

from muster.errors import TemplateError
from muster.gotemplate import Template

GOLDENS = json.loads((Path(__file__).parent / "exec_goldens.json").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = GOLDENS["cases"]


def test_goldens_come_from_go_1_19() -> None:
    assert GOLDENS["go"].startswith("go1.19")
    assert len(CASES) > 200


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden(case: dict[str, Any]) -> None:
    tmpl = Template(case["name"], funcs=FUNCS).parse(case["input"])
    data = load_data(case["data"])
    if "err" in case:
        with pytest.raises(TemplateError) as info:
            tmpl.execute(data)
        assert str(info.value) == case["err"]
    elif "out_hex" in case:
        assert tmpl.execute(data).encode("utf-8", "surrogateescape") == bytes.fromhex(case["out_hex"])
    else:
        assert tmpl.execute(data) == case["out"]
