"""The conformance corpus with memoisation on: every case renders its golden bytes when
executed with a ``Memo`` (twice: the second execution reuses what the first stored) and,
for confd cases, through an ``IncrementalRenderer`` that arrives at the case's keys from
an empty store and then renders them again unchanged.

The plain corpus tests (test_gotemplate_lang.py, test_realistic.py, test_confd_render.py)
run the same cases without memoisation, so both modes are checked against one golden.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from test_confd_render import RENDER_CASES
from test_gotemplate_lang import LANG_CASES
from test_realistic import FUZZ, KNOWN_MISMATCHES, REALISTIC, readme_data

from muster.backends.file import load_key_files
from muster.errors import Error, TemplateError
from muster.gotemplate import Template
from muster.gotemplate.memo import Memo
from muster.resources.incremental import IncrementalRenderer
from muster.resources.spec import go_join

LANG = [p for p in LANG_CASES + REALISTIC + FUZZ if p.name not in KNOWN_MISMATCHES]


def _data(case: Path) -> Any:
    data_file = case / "data.json"
    return readme_data(data_file.read_bytes() if data_file.exists() else None)


@pytest.mark.parametrize("case", LANG, ids=[f"{p.parent.name}/{p.name}" for p in LANG])
def test_lang_case_memoised(case: Path) -> None:
    source = (case / "template.tmpl").read_bytes().decode("utf-8", "surrogateescape")
    memo = Memo()

    def render() -> bytes:
        template = Template("template.tmpl").parse(source)
        return template.execute(_data(case), memo=memo).encode("utf-8", "surrogateescape")

    for _ in range(2):
        if (case / "expected.err").exists():
            with pytest.raises(TemplateError):
                render()
        else:
            assert render() == (case / "expected.out").read_bytes()


def _case_values(case: Path) -> tuple[str, dict[str, str]]:
    # As `muster render --keys keys.yaml --prefix P --key K...` selects them (render_cmd.load_keys).
    table = tomllib.loads((case / "resource.toml").read_text(encoding="utf-8"))["template"]
    prefix = table.get("prefix", "/")
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    wanted = [go_join(prefix, key) for key in table.get("keys", ["/"])]
    loaded = load_key_files((str(case / "keys.yaml"),), "*")
    return prefix, {k: v for k, v in loaded.items() if any(k.startswith(w) for w in wanted)}


@pytest.mark.parametrize("case", RENDER_CASES, ids=[p.name for p in RENDER_CASES])
def test_confd_case_incremental(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = case / "env.json"
    if env_file.exists():
        for name, value in json.loads(env_file.read_text(encoding="utf-8")).items():
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("MUSTER_CONF_UNSET", raising=False)
    source = (case / "template.tmpl").read_bytes()
    if (case / "expected.err").exists():
        try:
            prefix, values = _case_values(case)
            IncrementalRenderer("template.tmpl", source, prefix)
        except Error:
            return  # bad keys or a syntax error: nothing to execute
    prefix, values = _case_values(case)
    renderer = IncrementalRenderer("template.tmpl", source, prefix)
    try:
        renderer.render({})
    except TemplateError:
        pass  # over no keys the template may fail; what follows must not depend on it
    for changed in (list(values), None, []):
        if (case / "expected.err").exists():
            with pytest.raises(TemplateError):
                renderer.render(values, changed)
        else:
            assert renderer.render(values, changed) == (case / "expected.out").read_bytes()
