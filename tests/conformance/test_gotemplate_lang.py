"""Go text/template conformance: every ``lang-*`` case renders byte for byte as Go 1.19 does.

The corpus (``gotemplate/cases``, see its README) holds goldens produced by Go itself:
``template.tmpl``, an optional ``data.json`` and either ``expected.out`` or
``expected.err``. Data decodes like Go's ``encoding/json`` into ``interface{}``: every
number is a float64, and invalid JSON leaves dot nil (the README's program ignores the error).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from muster.errors import TemplateError
from muster.golang.json import unmarshal_any
from muster.gotemplate import Template

CASES = Path(__file__).parent / "gotemplate" / "cases"
LANG_CASES = sorted(p for p in CASES.iterdir() if p.name.startswith("lang-"))


def _load_data(case: Path) -> Any:
    data_file = case / "data.json"
    # As the README's Go program: json.Unmarshal into interface{}, its error ignored.
    return unmarshal_any(data_file.read_bytes())[0] if data_file.exists() else None


def _render(case: Path) -> bytes:
    source = (case / "template.tmpl").read_bytes().decode("utf-8", "surrogateescape")
    out = Template("template.tmpl").parse(source).execute(_load_data(case))
    return out.encode("utf-8", "surrogateescape")


def test_corpus_is_present() -> None:
    assert len(LANG_CASES) > 400


@pytest.mark.parametrize("case", LANG_CASES, ids=[p.name for p in LANG_CASES])
def test_lang_case(case: Path) -> None:
    if (case / "expected.err").exists():
        with pytest.raises(TemplateError):
            _render(case)
    else:
        assert _render(case) == (case / "expected.out").read_bytes()
