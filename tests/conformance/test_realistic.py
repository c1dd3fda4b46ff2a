"""Go text/template conformance on templates users write: realistic configs and the
minimised mismatches the random differential fuzzer found.

Each directory under ``realistic/`` and ``fuzz/`` is a language case in the corpus
layout (``template.tmpl``, optional ``data.json``, ``expected.out`` or
``expected.err``) whose golden comes from Go 1.19 itself
(``scripts/gen-template-goldens``, following the conformance README's procedure).
Cases listed in ``KNOWN_MISMATCHES`` are engine bugs not fixed yet: they are strict
xfails, so fixing one makes the suite say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from muster.errors import TemplateError
from muster.golang.json import unmarshal_any
from muster.gotemplate import Template

HERE = Path(__file__).parent
REALISTIC = sorted(p for p in (HERE / "realistic").iterdir() if (p / "template.tmpl").exists())
FUZZ = sorted(p for p in (HERE / "fuzz").iterdir() if (p / "template.tmpl").exists())

# case name -> diagnosis, for mismatches with Go that the engine still has.
KNOWN_MISMATCHES: dict[str, str] = {}


def readme_data(raw: bytes | None) -> Any:
    """Dot as the README's procedure makes it: ``json.Unmarshal(data, &v)`` with its
    error ignored (nil without a data.json)."""
    return None if raw is None else unmarshal_any(raw)[0]


def _load_data(case: Path) -> Any:
    data_file = case / "data.json"
    return readme_data(data_file.read_bytes() if data_file.exists() else None)


def _render(case: Path) -> bytes:
    source = (case / "template.tmpl").read_bytes().decode("utf-8", "surrogateescape")
    out = Template("template.tmpl").parse(source).execute(_load_data(case))
    return out.encode("utf-8", "surrogateescape")


def _param(case: Path) -> Any:
    reason = KNOWN_MISMATCHES.get(case.name)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(case, id=f"{case.parent.name}/{case.name}", marks=marks)


def test_cases_are_present() -> None:
    assert len(REALISTIC) >= 20
    for case in REALISTIC + FUZZ:
        goldens = [(case / name).exists() for name in ("expected.out", "expected.err")]
        assert sum(goldens) == 1, f"{case.name}: exactly one of expected.out/expected.err"


@pytest.mark.parametrize("case", [_param(p) for p in REALISTIC + FUZZ])
def test_case(case: Path) -> None:
    if (case / "expected.err").exists():
        with pytest.raises(TemplateError):
            _render(case)
    else:
        assert _render(case) == (case / "expected.out").read_bytes()
