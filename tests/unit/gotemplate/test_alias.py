"""Element references (alias mode): when they are on, and that they never leak.

What the references print is checked against Go by the confd conformance cases
(tests/conformance/confd_funcs/alias-*); these tests cover the switch itself,
functions outside confd's map and error messages (the corpus checks only that
an error happens). Expected outputs marked "Go:" were printed by Go
1.19's text/template with the same function (``swap`` exchanges the first two
elements of a ``[]string`` in place) and data.
"""

from __future__ import annotations

from typing import Any

import pytest

from muster.confd.funcs import func_map
from muster.confd.store import KVStore
from muster.errors import TemplateExecError
from muster.golang.values import GoFunc, GoSlice
from muster.gotemplate import Template
from muster.gotemplate.alias import uses_mutators


def _swap(s: list[str]) -> list[str]:
    s[0], s[1] = s[1], s[0]
    return s


def _funcs(seen: list[Any] | None = None, *, mutates: bool = True) -> dict[str, GoFunc]:
    def record(v: Any) -> str:
        if seen is not None:
            seen.append(v)
        return ""

    return {
        "swap": GoFunc(_swap, ("[]string",), name="swap", mutates=mutates),
        "record": GoFunc(record, ("interface {}",), name="record"),
    }


def _data() -> dict[str, Any]:
    return {"l": GoSlice(["a", "b", "c"], "string")}


def _trees(src: str, funcs: dict[str, GoFunc]) -> Any:
    tmpl = Template("t", funcs=funcs).parse(src)
    return {t.name: t.tree for t in tmpl.templates}


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("{{swap .l}}", True),
        ("{{.l}}", False),
        ('{{define "d"}}{{swap .}}{{end}}{{.l}}', True),  # in another template of the set
        ('{{block "b" .}}{{swap .l}}{{end}}', True),
        ("{{call .f}}", True),  # a function value could be swap
        ("{{record .l}}", False),
    ],
)
def test_alias_mode_is_on_only_where_a_mutator_is_called(src: str, expected: bool) -> None:
    funcs = _funcs()
    assert uses_mutators(_trees(src, funcs), funcs) is expected


def test_no_mutating_function_means_no_alias_mode() -> None:
    funcs = _funcs(mutates=False)
    assert uses_mutators(_trees("{{swap .l}}{{call .f}}", funcs), funcs) is False


def test_a_mutating_user_function_shows_through_range_and_index_variables() -> None:
    src = "{{$e := index .l 0}}{{range $i, $v := .l}}{{if eq $i 0}}{{swap $.l}}{{end}}{{$v}}{{end}} {{$e}}"
    # Go: [b a c]bac b
    assert Template("t", funcs=_funcs()).parse(src).execute(_data()) == "[b a c]bac b"


def test_a_mutation_inside_a_called_template_shows_through_the_caller() -> None:
    src = '{{define "d"}}{{swap .}}{{end}}'
    src += '{{$e := index .l 2}}{{range .l}}{{template "d" $.l}}{{.}}{{end}} {{$e}}'
    # Go: [b a c]b[a b c]b[b a c]c c
    assert Template("t", funcs=_funcs()).parse(src).execute(_data()) == "[b a c]b[a b c]b[b a c]c c"


@pytest.mark.parametrize("mutates", [True, False])
def test_functions_never_receive_references(mutates: bool) -> None:
    seen: list[Any] = []
    src = (
        "{{$e := index .l 0}}{{record $e}}{{record (index .l 1)}}{{range .l}}{{record .}}{{end}}"
        "{{with index .l 2}}{{record .}}{{end}}{{record $e | printf `%s%v` (swap .l)}}"
    )
    Template("t", funcs=_funcs(seen, mutates=mutates)).parse(src).execute(_data())
    assert seen and all(type(v) is str for v in seen), seen


_KEYS = {"/kv/aaa": "x", "/kv/b": "yy", "/kv/cc": "zzz"}


# Go: each message is what Go 1.19's text/template with confd's function map printed
# for the template over _KEYS (scripts/template_golden), as column, node and text.
@pytest.mark.parametrize(
    ("src", "col", "node", "message"),
    [
        (
            '{{$l := split "a,b" ","}}{{reverse $l}}{{$e := index $l 0}}{{$e.Key}}',
            63,
            "$e.Key",
            "can't evaluate field Key in type string",
        ),
        (
            '{{$l := split "a,b" ","}}{{reverse $l}}{{range $l}}{{.Key}}{{end}}',
            53,
            ".Key",
            "can't evaluate field Key in type string",
        ),
        (
            '{{$l := split "a,b" ","}}{{reverse $l}}{{$e := index $l 0}}{{add $e 1}}',
            65,
            "$e",
            "wrong type for value; expected int; got string",
        ),
        (
            '{{$l := split "a,b" ","}}{{reverse $l}}{{$e := index $l 0}}{{index $l $e}}',
            61,
            "index $l $e",
            "error calling index: cannot index slice/array with type string",
        ),
        (
            '{{$l := gets "/kv/*"}}{{reverse $l}}{{$e := index $l 0}}{{$e.Key 1}}',
            60,
            "$e.Key",
            "Key has arguments but cannot be invoked as function",
        ),
        (
            '{{$l := gets "/kv/*"}}{{sortKVByLength $l}}{{with index $l 0}}{{.Key.X}}{{end}}',
            68,
            ".Key.X",
            "can't evaluate field X in type string",
        ),
    ],
)
def test_errors_through_references_are_go_s(src: str, col: int, node: str, message: str) -> None:
    template = Template("template.tmpl", funcs=func_map(KVStore(_KEYS))).parse(src)
    with pytest.raises(TemplateExecError) as info:
        template.execute(None)
    expected = f'template: template.tmpl:1:{col}: executing "template.tmpl" at <{node}>: {message}'
    assert str(info.value) == expected
