"""Differential tests of gofmt against Go 1.19's own fmt output (gofmt_goldens.json).

The goldens come from scripts/gofmt_golden/main.go (regenerate with
scripts/gen-gofmt-goldens); each case records its arguments in a small JSON encoding
that ``decode`` turns into muster's value model.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any, ClassVar

import pytest

from muster.golang import fmt as gofmt, strconv as gostrconv
from muster.golang.fmt import format_value, sprint, sprintf, sprintln
from muster.golang.values import NO_VALUE, GoFunc, GoInt, GoMap, GoSlice, GoStruct, go_method

GOLDENS = json.loads((Path(__file__).parent / "gofmt_goldens.json").read_text())


def _int_type(name: str, bits: int, signed: bool) -> type[GoInt]:
    return type(name.title(), (GoInt,), {"go_type": name, "bits": bits, "signed": signed})


INT_TYPES: dict[str, type[GoInt]] = {
    name: _int_type(name, bits, signed)
    for name, bits, signed in [
        ("int8", 8, True),
        ("int16", 16, True),
        ("int32", 32, True),
        ("int64", 64, True),
        ("uint", 64, False),
        ("uint8", 8, False),
        ("uint16", 16, False),
        ("uint32", 32, False),
        ("uint64", 64, False),
    ]
}


class KV(GoStruct):
    go_type = "main.KV"
    go_fields = ("Key", "Value")

    def __init__(self, key: str, value: str) -> None:
        self.Key = key
        self.Value = value


class KVPtr(KV):
    go_pointer = True


class Temp(GoStruct):
    go_type = "main.Temp"
    go_fields = ("Deg",)

    def __init__(self, deg: float) -> None:
        self.Deg = deg

    @go_method()
    def String(self) -> str:  # noqa: N802 - Go method name
        return sprintf("%.1fC", self.Deg)


class Ver(GoStruct):
    go_type = "main.Ver"
    go_fields = ("Major", "Minor")

    def __init__(self, major: int, minor: int) -> None:
        self.Major = major
        self.Minor = minor

    @go_method()
    def String(self) -> str:  # noqa: N802 - Go method name
        return sprintf("v%d.%d", self.Major, self.Minor)

    @go_method()
    def GoString(self) -> str:  # noqa: N802 - Go method name
        return sprintf("Ver(%d, %d)", self.Major, self.Minor)


class Oops(GoStruct):
    go_type = "main.Oops"
    go_fields = ("Code",)

    def __init__(self, code: int) -> None:
        self.Code = code

    @go_method()
    def Error(self) -> str:  # noqa: N802 - Go method name
        return sprintf("oops %d", self.Code)

    @go_method()
    def String(self) -> str:  # noqa: N802 - Go method name
        return "not used"


class Pair(GoStruct):
    go_type = "main.Pair"
    go_fields = ("Name", "Any", "N")

    def __init__(self, name: str, any_: Any, n: int) -> None:
        self.Name = name
        self.Any = any_
        self.N = n


def _float(bits: str) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", int(bits, 16)))[0]
    return value


def _str(enc: dict[str, Any]) -> str:
    return bytes.fromhex(enc["hex"]).decode("utf-8", "surrogateescape")


def decode(enc: dict[str, Any]) -> Any:
    """The value-model value of an argument encoded by main.go."""
    t = enc["t"]
    if t == "nil":
        return None
    if t == "novalue":
        return NO_VALUE
    if t == "bool":
        return enc["v"]
    if t == "int":
        return int(enc["v"])
    if t in INT_TYPES:
        return INT_TYPES[t](int(enc["v"]))
    if t == "float64":
        return _float(enc["v"])
    if t == "complex128":
        return complex(_float(enc["re"]), _float(enc["im"]))
    if t == "string":
        return _str(enc)
    if t == "bytes":
        return bytes.fromhex(enc["hex"])
    if t == "list":
        return [decode(item) for item in enc["v"]]
    if t == "map":
        return {bytes.fromhex(k).decode("utf-8", "surrogateescape"): decode(v) for k, v in enc["v"] or []}
    if t == "slice":
        return GoSlice([decode(item) for item in enc["v"] or []], enc["elem"])
    if t == "gomap":
        return GoMap({decode(k): decode(v) for k, v in enc["v"]}, enc["key"], enc["elem"])
    if t == "KV":
        return KV(decode(enc["key"]), decode(enc["value"]))
    if t == "*KV":
        return KVPtr(decode(enc["key"]), decode(enc["value"]))
    if t == "Temp":
        return Temp(decode(enc["deg"]))
    if t == "Ver":
        return Ver(decode(enc["major"]), decode(enc["minor"]))
    if t == "Oops":
        return Oops(decode(enc["code"]))
    if t == "Pair":
        return Pair(decode(enc["name"]), decode(enc["any"]), decode(enc["n"]))
    raise AssertionError(f"unknown encoding {t}")


def expected(result: str | dict[str, str]) -> str:
    if isinstance(result, dict):
        return bytes.fromhex(result["hex"]).decode("utf-8", "surrogateescape")
    return result


def run(fn: str, fmt: str, args: list[Any]) -> str:
    if fn == "sprintf":
        return sprintf(fmt, *args)
    if fn == "sprint":
        return sprint(*args)
    if fn == "sprintln":
        return sprintln(*args)
    if fn == "format_float":
        verb, prec, bits = fmt.split(",")
        return gofmt.format_float(args[0], verb, int(prec), int(bits))
    assert fn == "quote"
    return gofmt.quote(args[0])


def test_goldens_come_from_go_1_19() -> None:
    assert GOLDENS["go"].startswith("go1.19")
    assert sum(len(group["runs"]) for group in GOLDENS["groups"]) > 10_000


def test_every_golden_case() -> None:
    # One test over all cases keeps the run fast; failures list every mismatch.
    failures = []
    for group in GOLDENS["groups"]:
        for fmt, result in group["runs"]:
            args = [decode(a) for a in group["args"]]
            got = run(group["fn"], expected(fmt), args)
            want = expected(result)
            if got != want:
                where = f"{group['fn']}({fmt!r}, {json.dumps(group['args'])[:100]})"
                failures.append(f"{where}\n    go:     {want!r}\n    muster: {got!r}")
    assert not failures, f"{len(failures)} mismatches:\n" + "\n".join(failures[:80])


def test_is_print_matches_go_over_all_of_unicode() -> None:
    printable = set()
    for lo, hi in GOLDENS["isprint_ranges"]:
        printable.update(range(lo, hi + 1))
    wrong = [r for r in range(0x110000) if gostrconv.is_print(r) != (r in printable)]
    assert wrong == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        (True, "true"),
        (False, "false"),
        (8080, "8080"),
        (1 << 63, "-9223372036854775808"),
        (INT_TYPES["uint64"]((1 << 64) - 1), "18446744073709551615"),
        (INT_TYPES["uint8"](200), "200"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (-0.0, "-0"),
        (float("inf"), "+Inf"),
        (None, "<nil>"),
        (NO_VALUE, "<invalid reflect.Value>"),
        ({"b": 1.0, "a": [None, "x"]}, "map[a:[<nil> x] b:1]"),
        (Temp(20.0), "20.0C"),
        (KVPtr("k", "v"), "&{k v}"),
    ],
)
def test_format_value_is_sprint_of_one_value(value: Any, text: str) -> None:
    assert format_value(value) == text
    assert sprint(value) == text


class Broken(GoStruct):
    go_type = "main.Broken"

    @go_method()
    def String(self) -> str:  # noqa: N802 - Go method name
        raise ValueError("boom")


class NotAMethod(GoStruct):
    go_type = "main.NotAMethod"
    go_fields = ("String",)
    String: ClassVar[str] = "field"


def test_panicking_stringer_prints_go_panic_form() -> None:
    assert sprintf("%v|%s", Broken(), Broken()) == (
        "%!v(PANIC=String method: boom)|%!s(PANIC=String method: boom)"
    )


def test_field_named_string_is_not_a_stringer() -> None:
    assert sprint(NotAMethod()) == "{field}"


# Addresses differ on every Go run, so pointers are checked by shape only.
ADDR = r"0xc[0-9a-f]{9,}"


@pytest.mark.parametrize(
    ("fmt", "arg", "pattern"),
    [
        ("%p", [1], ADDR),
        ("%p", {"a": 1}, ADDR),
        ("%#p", [1], r"c[0-9a-f]{9,}"),
        ("%v", GoFunc(len, ("string",)), ADDR),
        ("%#v", GoFunc(len, ("string",)), r"\(func\(string\)\)\(" + ADDR + r"\)"),
        ("%d", GoFunc(len), r"\d{12,}"),
        ("%x", GoFunc(len), r"c[0-9a-f]{9,}"),
        ("%s", GoFunc(len), r"%!s\(func\(\)=" + ADDR + r"\)"),
        ("%T", GoFunc(len, ("string",), variadic="int"), r"func\(string, \.\.\.int\)"),
        ("%v", [KVPtr("k", "v")], r"\[" + ADDR + r"\]"),
        ("%#v", [KVPtr("k", "v")], r"\[\]interface \{\}\{\(\*main\.KV\)\(" + ADDR + r"\)\}"),
        ("%v", Pair("p", KVPtr("k", "v"), 1), r"\{p " + ADDR + r" 1\}"),
        ("%p", KVPtr("k", "v"), ADDR),
    ],
)
def test_pointers_print_as_addresses(fmt: str, arg: Any, pattern: str) -> None:
    assert re.fullmatch(pattern, sprintf(fmt, arg))


def test_nested_invalid_value_prints_like_go_printvalue() -> None:
    # fmt's printValue on an invalid reflect.Value below the top level.
    assert sprint([NO_VALUE]) == "[<nil>]"
    assert sprintf("%d", [NO_VALUE]) == "[%!d(<nil>)]"


def test_unknown_python_type_prints_like_go_unknown_type() -> None:
    assert sprint(object()) == "?object?"


def test_quote_of_lone_surrogate_is_replacement_char() -> None:
    # Not a Go string at all (only \udc80-\udcff stand for bytes); quote stays total.
    assert gostrconv.quote("\ud800") == '"\\ufffd"'


def test_nil_key_sorts_first_in_interface_keyed_map() -> None:
    # internal/fmtsort: nil compares low.
    value = GoMap({"a": 2, None: 1}, key="interface {}", elem="int")
    assert sprint(value) == "map[<nil>:1 a:2]"
    assert sprintf("%#v", value) == 'map[interface {}]int{interface {}(nil):1, "a":2}'


def test_public_names_are_exported() -> None:
    for name in gofmt.__all__:
        assert callable(getattr(gofmt, name)), name
    assert gofmt.type_string(NO_VALUE) == "reflect.Value"
    assert gofmt.format_float(0.1, "f", 3) == "0.100"
