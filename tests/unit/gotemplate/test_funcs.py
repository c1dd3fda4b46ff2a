"""The builtins called directly: paths a template cannot reach, and the escapers.

Everything reachable from a template is checked against Go in
``test_exec_golden.py``; here are the builtins' own contracts.
"""

from __future__ import annotations

from typing import Any

import pytest

from muster.golang.values import NO_VALUE, GoFunc, GoStruct, Uint64, from_bytes
from muster.gotemplate import Template
from muster.gotemplate.funcs import BUILTINS, GoError, html_escape, js_escape, truth, urlquery_escape


def _fn(name: str) -> Any:
    return BUILTINS[name].fn


def test_builtins_are_exactly_gos() -> None:
    names = "and or not len index slice eq ne lt le gt ge print printf println html js urlquery call"
    assert set(BUILTINS) == set(names.split())
    assert all(f.name == name for name, f in BUILTINS.items())


def test_and_or_called_as_functions() -> None:
    # The executor short-circuits and/or itself; the functions serve `call` and Python.
    assert _fn("and")(1, 0, 2) == 0
    assert _fn("and")(1, 2) == 2
    assert _fn("or")(0, "", "x", 0) == "x"
    assert _fn("or")(0, "") == ""


def test_truth_of_structs_and_nils() -> None:
    class Empty(GoStruct):
        go_type = "main.Empty"

    assert truth(Empty()) is True
    assert truth(None) is False
    assert truth(NO_VALUE) is False
    assert truth(float("nan")) is True  # NaN != 0


def test_index_with_huge_unsigned_wraps_negative() -> None:
    with pytest.raises(GoError, match="index out of range: -1"):
        _fn("index")([1], Uint64(2**64 - 1))


def test_call_converts_for_reflect_value_and_interface_parameters() -> None:
    got: list[Any] = []

    def record(v: Any) -> str:
        got.append(v)
        return "ok"

    takes_value = GoFunc(record, ("reflect.Value",))
    assert _fn("call")(takes_value, NO_VALUE) == "ok"
    assert got == [NO_VALUE]
    with pytest.raises(GoError, match="arg 0: value has type string; should be reflect.Value"):
        _fn("call")(takes_value, "x")
    takes_any = GoFunc(lambda v: v, ("interface {}",))
    assert _fn("call")(takes_any, 3) == 3


def test_call_passes_a_typed_zero_for_nil() -> None:
    fn = GoFunc(lambda s: (type(s).__name__, list(s), s.elem), ("[]string",))
    assert _fn("call")(fn, NO_VALUE) == ("GoSlice", [], "string")


def test_call_with_variadic_too_few() -> None:
    fn = GoFunc(lambda a, *b: a, ("int",), variadic="string")
    with pytest.raises(GoError, match="wrong number of args: got 0 want at least 1"):
        _fn("call")(fn)


def test_eq_of_values_go_cannot_compare() -> None:
    fn = GoFunc(lambda: 1)
    with pytest.raises(
        GoError, match=r"non-comparable types \[%!s\(int=1\)\]: \[\]interface \{\}, func\(\): 0x"
    ):
        _fn("eq")([1], fn)
    with pytest.raises(GoError, match="non-comparable types"):
        _fn("eq")((1,), [1])


def test_lt_compares_strings_bytewise() -> None:
    raw = from_bytes(b"\xff")
    assert _fn("lt")("\uffff", raw) is True  # EF BF BF < FF
    assert _fn("lt")("a", "b") is True


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("plain", "plain"),
        ("<a href='x'>&\"\0", "&lt;a href=&#39;x&#39;&gt;&amp;&#34;\ufffd"),
        ("é", "é"),
    ],
)
def test_html_escape(text: str, want: str) -> None:
    assert html_escape(text) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("plain `x`", "plain `x`"),  # Go 1.19 leaves backticks alone
        ("a'b\"c\\", "a\\'b\\\"c\\\\"),
        ("<>&=", "\\u003C\\u003E\\u0026\\u003D"),
        ("\x01\x1f\x7f", "\\u0001\\u001F\x7f"),
        ("é\u2028\u00a0\U0001f600", "é\\u2028\\u00A0\U0001f600"),
        (from_bytes(b"h\xc3"), from_bytes(b"h\xc3")),
    ],
)
def test_js_escape(text: str, want: str) -> None:
    assert js_escape(text) == want


def test_urlquery_escape() -> None:
    assert urlquery_escape("a b&c=d/é?x~_.-+") == "a+b%26c%3Dd%2F%C3%A9%3Fx~_.-%2B"
    assert urlquery_escape(from_bytes(b"\xff")) == "%FF"


def test_escapers_in_templates_print_nil_as_no_value() -> None:
    assert Template("t").parse("{{html .x}}|{{js nil}}|{{urlquery .x 1}}").execute({}) == (
        "&lt;no value&gt;|\\u003Cno value\\u003E|%3Cno+value%3E1"
    )
