"""The data and functions of the executor goldens, mirroring scripts/exec_golden/main.go.

``T`` is a subset of the fixture of Go's own ``exec_test.go``; every value here has the
Go type the generator gives it, so outputs and error messages must agree byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

from muster.golang import fmt as gofmt
from muster.golang.values import (
    GoFunc,
    GoInt,
    GoMap,
    GoSlice,
    GoStruct,
    Int8,
    Int32,
    Int64,
    Uint,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    go_method,
)
from muster.gotemplate.funcs import GoError


class U(GoStruct):
    go_type = "main.U"
    go_fields = ("V",)
    go_pointer = True

    def __init__(self, v: str) -> None:
        self.V = v

    @go_method("bool")
    def TrueFalse(self, b: bool) -> str:
        return "true" if b else ""


class KV(GoStruct):
    go_type = "main.KV"
    go_fields = ("Key", "Value")

    def __init__(self, key: str, value: str) -> None:
        self.Key = key
        self.Value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KV) and (self.Key, self.Value) == (other.Key, other.Value)

    __hash__ = None  # type: ignore[assignment]


class KVPtr(KV):
    go_pointer = True


class Temp(GoStruct):
    go_type = "main.Temp"
    go_fields = ("Deg",)

    def __init__(self, deg: int) -> None:
        self.Deg = deg

    @go_method()
    def String(self) -> str:
        return f"{self.Deg}C"


class TempPtr(Temp):
    go_pointer = True


class Amp(GoStruct):
    go_type = "main.Amp"
    go_fields = ("N",)
    go_pointer = True

    def __init__(self, n: int) -> None:
        self.N = n

    @go_method()
    def String(self) -> str:
        return f"&amp{self.N}"


class Mon(GoInt):
    go_type = "main.Mon"

    @go_method()
    def Name(self) -> str:
        return ["", "Jan", "Feb", "Mar", "Apr"][self]

    @go_method()
    def Next(self) -> Mon:
        return Mon(self + 1)

    @go_method("int")
    def Plus(self, n: int) -> Mon:
        return Mon(self + n)


class Sl(GoSlice):
    @go_method()
    def Count(self) -> int:
        return len(self)

    @go_method("string")
    def Join(self, sep: str) -> str:
        return sep.join(self)


_FIELDS = (
    "True I U16 X S FloatZero ComplexZero U SI SIEmpty SB SS MSI MSIone MSIEmpty MII MI32S MI64S "
    "MUI32S MUI64S MI8S MUI8S SMSI Empty0 Empty1 Empty2 Empty3 Empty4 BinaryFunc VariadicFunc "
    "VariadicFuncInt ErrFunc KV SKV Temp Uthree Ufour NegOne Three Map NonNilMap NKV"
).split()


class T(GoStruct):
    go_type = "main.T"
    go_fields = tuple(_FIELDS)
    go_field_types = {f"Empty{i}": "interface {}" for i in range(5)}
    go_pointer = True

    def __init__(self) -> None:
        setattr(self, "True", True)  # a Python keyword
        self.I = 17
        self.U16 = Uint16(16)
        self.X = "x"
        self.S = "xyz"
        self.FloatZero = 0.0
        self.ComplexZero = 0j
        self.U = U("v")
        self.SI = GoSlice([3, 4, 5], "int")
        self.SIEmpty = GoSlice([], "int", nil=True)
        self.SB = GoSlice([True, False], "bool")
        self.SS = GoSlice(["a", "b"], "string")
        self.MSI = GoMap({"one": 1, "two": 2, "three": 3}, "string", "int")
        self.MSIone = GoMap({"one": 1}, "string", "int")
        self.MSIEmpty = GoMap({}, "string", "int")
        self.MII = GoMap({1: 1}, "int", "int")
        self.MI32S = GoMap({Int32(1): "one", Int32(2): "two"}, "int32", "string")
        self.MI64S = GoMap({Int64(2): "i642", Int64(3): "i643"}, "int64", "string")
        self.MUI32S = GoMap({Uint32(2): "u322", Uint32(3): "u323"}, "uint32", "string")
        self.MUI64S = GoMap({Uint64(2): "ui642", Uint64(3): "ui643"}, "uint64", "string")
        self.MI8S = GoMap({Int8(2): "i82", Int8(3): "i83"}, "int8", "string")
        self.MUI8S = GoMap({Uint8(2): "u82", Uint8(3): "u83"}, "uint8", "string")
        self.SMSI = GoSlice(
            [
                GoMap({"one": 1, "two": 2}, "string", "int"),
                GoMap({"eleven": 11, "twelve": 12}, "string", "int"),
            ],
            "map[string]int",
        )
        self.Empty0 = None
        self.Empty1 = 3
        self.Empty2 = "empty2"
        self.Empty3 = GoSlice([7, 8], "int")
        self.Empty4 = U("UinEmpty")
        self.BinaryFunc = GoFunc(lambda a, b: f"[{a}={b}]", ("string", "string"), result="string")
        self.VariadicFunc = GoFunc(lambda *s: gofmt.sprint("<", "+".join(s), ">"), variadic="string")
        self.VariadicFuncInt = GoFunc(
            lambda a, *s: gofmt.sprint(a, "=<", "+".join(s), ">"), ("int",), variadic="string"
        )
        self.ErrFunc = GoFunc(lambda: "bla")
        self.KV = KV("k", "v")
        self.SKV = GoSlice([KV("a", "1"), KV("b", "2")], "main.KV")
        self.Temp = Temp(21)
        self.Uthree = Uint(3)
        self.Ufour = Uint(4)
        self.NegOne = -1
        self.Three = 3
        self.Map = GoMap({}, "int", "int", nil=True)
        self.NonNilMap = GoMap({}, "int", "int")
        self.NKV = GoSlice([KV("a", "1"), KV("b", "2")], "main.KV", name="main.KVs")

    @go_method()
    def Method0(self) -> str:
        return "M0"

    @go_method("int")
    def Method1(self, a: int) -> int:
        return a

    @go_method("uint16", "string")
    def Method2(self, a: int, b: str) -> str:
        return gofmt.sprintf("Method2: %d %s", a, b)

    @go_method("interface {}")
    def Method3(self, v: Any) -> str:
        return gofmt.sprintf("Method3: %v", v)

    @go_method("int", "[]int")
    def MAdd(self, a: int, b: list[int]) -> GoSlice:
        return GoSlice([x + a for x in b], "int")

    @go_method("bool")
    def MyError(self, error: bool) -> bool:
        if error:
            raise GoError("my error")
        return False

    @go_method()
    def GetU(self) -> U:
        return self.U

    @go_method(results=2)
    def Zone(self) -> tuple[str, int]:
        return "UTC", 0

    @go_method(results=3)
    def Date(self) -> tuple[int, int, int]:
        return 2006, 1, 2

    @go_method(results=0)
    def Nothing(self) -> None:
        return None


def _die() -> bool:
    raise GoError("die")


def _makemap(*arg: str) -> GoMap:
    if len(arg) % 2:
        raise GoError("bad makemap")
    return GoMap(dict(zip(arg[::2], arg[1::2], strict=True)), "string", "string")


def _boom() -> str:
    raise GoError("boom")


FUNCS: dict[str, GoFunc] = {
    "add": GoFunc(lambda *a: sum(a), variadic="int"),
    "dddArg": GoFunc(lambda a, *b: gofmt.sprintln(a, GoSlice(b, "string")), ("int",), variadic="string"),
    "die": GoFunc(_die),
    "echo": GoFunc(lambda a: a, ("interface {}",)),
    "makemap": GoFunc(_makemap, variadic="string"),
    "mapOfThree": GoFunc(lambda: GoMap({"three": 3}, "string", "int")),
    "oneArg": GoFunc(lambda a: "oneArg=" + a, ("string",)),
    "returnInt": GoFunc(lambda: 7),
    "twoArgs": GoFunc(lambda a, b: "twoArgs=" + a + b, ("string", "string")),
    "typeOf": GoFunc(lambda a: gofmt.sprintf("%T", a), ("interface {}",)),
    "valueString": GoFunc(lambda v: "value is ignored", ("string",)),
    "zeroArgs": GoFunc(lambda: "zeroArgs"),
    "boom": GoFunc(_boom),
    "nilf": GoFunc(lambda: None),
    "u8": GoFunc(lambda x: x, ("uint8",)),
    "i8": GoFunc(lambda x: x, ("int8",)),
    "i64": GoFunc(lambda x: x, ("int64",)),
    "f64": GoFunc(lambda x: x, ("float64",)),
    "cplx": GoFunc(lambda x: x, ("complex128",)),
    "bf": GoFunc(lambda b: not b, ("bool",)),
    "join": GoFunc(lambda elems, sep: sep.join(elems), ("[]string", "string")),
    "ss": GoFunc(lambda: GoSlice(["a", "b"], "string")),
    "mss": GoFunc(lambda: GoMap({"k": "v"}, "string", "string")),
    "kv": GoFunc(lambda: KV("k", "v")),
    "kvp": GoFunc(lambda: KVPtr("k", "v")),
    "adder": GoFunc(lambda: GoFunc(lambda a, b: a + b, ("int", "int"))),
    "addf": GoFunc(lambda a, b: a + b, ("int", "int")),
    "kvKey": GoFunc(lambda kv: kv.Key, ("main.KV",)),
    "tempp": GoFunc(lambda: TempPtr(5)),
    "amp": GoFunc(lambda: Amp(1)),
    "mon": GoFunc(lambda: Mon(2)),
    "sl": GoFunc(lambda: Sl(["a", "b"], "string", name="main.Sl")),
    "kvsLen": GoFunc(len, ("[]main.KV",)),
    "kvsFn": GoFunc(lambda: GoFunc(len, ("[]main.KV",))),
}


def load_data(spec: str) -> Any:
    """A golden case's data: the ``T`` fixture, nil, or JSON decoded as Go does."""
    if spec == "T":
        return T()
    if spec == "nil":
        return None
    return json.loads(spec, parse_int=float)
