"""The value model's helpers: Go kinds, zero values, int conversion, map key order."""

from __future__ import annotations

import pytest

from muster.golang.types import can_be_nil, go_kind, make_int, sorted_keys, zero_value
from muster.golang.values import (
    NO_VALUE,
    GoFunc,
    GoMap,
    GoSlice,
    Int8,
    Int32,
    NoValue,
    Uint8,
    Uint16,
    append_cap,
    appended,
    from_bytes,
    go_backing,
    go_cap,
    go_type_name,
    json_array_cap,
)


def test_no_value_is_a_falsy_singleton() -> None:
    assert NoValue() is NO_VALUE
    assert repr(NO_VALUE) == "NO_VALUE"
    assert not NO_VALUE


def test_gofunc_signature_and_repr() -> None:
    f = GoFunc(len, ("string",), variadic="int", name="f", result="(int, error)")
    assert f.signature == "func(string, ...int) (int, error)"
    assert repr(f) == "GoFunc(f, func(string, ...int) (int, error))"
    assert GoFunc(len).name == "len"
    assert go_type_name(GoFunc(len)) == "func()"


@pytest.mark.parametrize(
    ("type_name", "kind"),
    [
        ("bool", "bool"),
        ("string", "string"),
        ("int", "int"),
        ("int8", "int"),
        ("rune", "int"),
        ("uint8", "uint"),
        ("byte", "uint"),
        ("uintptr", "uint"),
        ("float32", "float"),
        ("complex128", "complex"),
        ("interface {}", "interface"),
        ("reflect.Value", "reflect.Value"),
        ("[]string", "slice"),
        ("map[string]int", "map"),
        ("func(int) string", "func"),
        ("*main.KV", "pointer"),
        ("chan int", "chan"),
        ("main.KV", "struct"),
    ],
)
def test_go_kind(type_name: str, kind: str) -> None:
    assert go_kind(type_name) == kind


def test_can_be_nil() -> None:
    assert can_be_nil("[]int") and can_be_nil("*main.T") and can_be_nil("interface {}")
    assert not can_be_nil("int") and not can_be_nil("string") and not can_be_nil("main.T")


def test_make_int_wraps_like_a_go_conversion() -> None:
    assert make_int("int8", 200) == -56 and type(make_int("int8", 200)) is Int8
    assert make_int("uint8", 300) == 44 and type(make_int("uint8", 300)) is Uint8
    assert make_int("uint16", -1) == 65535 and type(make_int("uint16", -1)) is Uint16
    assert make_int("int32", 2**31) == -(2**31) and type(make_int("int32", 1)) is Int32
    assert make_int("int", 2**63) == -(2**63) and type(make_int("int", 1)) is int


def test_zero_values() -> None:
    assert zero_value("string") == ""
    assert zero_value("bool") is False
    assert zero_value("int") == 0 and type(zero_value("uint8")) is Uint8
    assert zero_value("float64") == 0.0 and zero_value("complex128") == 0j
    assert zero_value("reflect.Value") is NO_VALUE
    s = zero_value("[]string")
    assert isinstance(s, GoSlice) and s == [] and go_type_name(s) == "[]string"
    m = zero_value("map[[2]int]map[string]int")
    assert isinstance(m, GoMap) and go_type_name(m) == "map[[2]int]map[string]int"
    assert (
        zero_value("*main.T") is None and zero_value("interface {}") is None and zero_value("main.T") is None
    )


def test_malformed_map_type() -> None:
    with pytest.raises(ValueError, match="malformed map type"):
        zero_value("map[string")


def test_sorted_keys_orders_as_go() -> None:
    raw = from_bytes(b"\xff")
    assert sorted_keys({"é": 1, "a": 2, "Z": 3, "10": 4, "9": 5, raw: 6, "\uffff": 7}) == [
        "10",
        "9",
        "Z",
        "a",
        "é",
        "\uffff",
        raw,
    ]
    assert sorted_keys(GoMap({10: 1, 9: 2, -1: 3}, "int", "int")) == [-1, 9, 10]
    nan = float("nan")
    floats = sorted_keys(GoMap({2.5: 1, nan: 2, -1.0: 3}, "float64", "int"))
    assert floats[0] != floats[0] and floats[1:] == [-1.0, 2.5]
    assert sorted_keys(GoMap({True: 1, False: 2}, "bool", "int")) == [False, True]
    mixed = sorted_keys(GoMap({"b": 1, 2: 2, (1,): 3, True: 4}, "interface {}", "int"))
    assert mixed == [True, 2, "b", (1,)]


# cap() of []interface {} decoded by encoding/json, printed by Go 1.19 itself.
_GO_JSON_CAPS = [
    (0, 0), (1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (6, 8), (9, 16), (17, 32), (100, 128),
    (256, 256), (257, 512), (300, 512), (512, 512), (513, 848), (849, 1280), (1000, 1280),
    (2000, 2560), (5000, 5120), (100000, 117760), (1000000, 1109504),
]  # fmt: skip


@pytest.mark.parametrize(("n", "cap"), _GO_JSON_CAPS)
def test_json_array_cap_matches_go(n: int, cap: int) -> None:
    assert json_array_cap(n) == cap


def test_cap_and_backing_of_slices() -> None:
    assert go_cap([1, 2, 3]) == 4
    assert go_backing([1, 2, 3]) == [1, 2, 3, None]
    s = GoSlice(["a"], "string", tail=("b", "c"))
    assert go_cap(s) == 3 and len(s) == 1
    assert go_backing(s) == ["a", "b", "c"]
    assert go_cap(GoSlice([1, 2], "int")) == 2


# (n, cap) after n appends from nil, printed by Go 1.19: []byte, []int, []string, []struct{K, V string}.
_GO_APPEND_CAPS = [
    (1, 8, 1, 1, 1), (2, 8, 2, 2, 2), (3, 8, 4, 4, 4), (4, 8, 4, 4, 4), (5, 8, 8, 8, 8),
    (9, 16, 16, 16, 16), (17, 32, 32, 32, 32), (100, 128, 128, 128, 128), (256, 256, 256, 256, 256),
    (257, 512, 512, 512, 512), (513, 896, 848, 848, 852), (849, 896, 1280, 1280, 852),
    (1000, 1408, 1280, 1280, 1280), (2000, 2048, 2560, 2560, 2560), (5000, 5376, 5120, 5120, 6400),
    (100000, 131072, 110592, 117760, 107264),
]  # fmt: skip


@pytest.mark.parametrize("row", _GO_APPEND_CAPS)
def test_append_cap_matches_go(row: tuple[int, int, int, int, int]) -> None:
    n, *caps = row
    assert [append_cap(n, size) for size in (1, 8, 16, 32)] == caps


def test_appended_builds_go_slices() -> None:
    s = appended(["a", "b", "c"], "string", 16, "")
    assert s == ["a", "b", "c"] and go_cap(s) == 4 and go_backing(s) == ["a", "b", "c", ""]
    empty = appended([], "string", 16, "")
    assert empty == [] and empty.nil and go_type_name(empty) == "[]string"


def test_slices_cut_from_one_another_show_in_place_writes() -> None:
    from muster.golang.values import written
    from muster.gotemplate.funcs import BUILTINS

    cut = BUILTINS["slice"].fn
    a = GoSlice(["a", "b", "c", "d"], "string", tail=["z"])
    b = cut(a, 1, 3)
    c = cut(b, 1, 4)  # a[2:5]: reaches into a's tail
    assert (list(b), b.tail, list(c), c.tail) == (["b", "c"], ("d", "z"), ["c", "d", "z"], ())
    b.reverse()
    written(b)
    assert (list(a), list(c), b.tail) == (["a", "c", "b", "d"], ["b", "d", "z"], ("d", "z"))
    c.sort(reverse=True)
    written(c)
    assert (list(a), a.tail, list(b), b.tail) == (["a", "c", "z", "d"], ("b",), ["c", "z"], ("d", "b"))
    written(GoSlice(["x"], "string"))  # a slice nothing was cut from: nothing to do
