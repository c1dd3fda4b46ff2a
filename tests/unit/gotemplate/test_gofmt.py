"""Differential tests of gofmt against Go 1.19's own fmt output (gofmt_goldens.json).

The goldens come from scripts/gofmt_golden/main.go (regenerate with
scripts/gen-gofmt-goldens); each case records its arguments in a small JSON encoding
that ``decode`` turns into muster's value model.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, ClassVar

import pytest

from muster.gotemplate import gofmt, gostrconv
from muster.gotemplate.gofmt import format_value, sprint, sprintf, sprintln
from muster.gotemplate.values import NO_VALUE, GoInt, GoMap, GoSlice, GoStruct, go_method

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
            got = run(group["fn"], fmt, args)
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
