"""Go 1.19 ``fmt/print.go``: how each operand is printed, by its Go type and the verb.

``Printer`` is Go's ``pp``: it dispatches on the value model (see ``values.py``) the
way ``printArg``/``printValue`` dispatch on ``reflect.Kind``, handles Stringers,
containers in Go's order (maps sorted as ``internal/fmtsort`` sorts them) and writes
Go's in-band error forms such as ``%!d(string=hi)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from muster.golang.format import LDIGITS, UDIGITS, Formatter
from muster.golang.values import (
    GoFunc,
    GoInt,
    GoMap,
    GoSlice,
    GoStruct,
    NoValue,
    Uint8,
    go_type_name,
    to_bytes,
)

__all__ = ["Printer", "is_int", "is_signed", "type_string"]

_MASK64: Final = (1 << 64) - 1
_BYTE_ELEMS: Final = frozenset({"uint8", "byte"})
# Types without methods: Go's printArg prints them straight from its type switch.
# (Every GoInt subclass is a sized basic type unless it declares go-methods, and
# _go_method finds none on those, so they need not be listed.)
# NoValue is the invalid reflect.Value, which fmt prints without looking for methods.
_BASIC: Final = frozenset({bool, int, float, str, complex, bytes, type(None), NoValue})
# Go prints addresses for pointers, maps, slices and funcs (%p, and %v of a nested
# pointer); they differ on every run there too, so any plausible heap address will do.
_FAKE_HEAP: Final = 0xC000010000


class _Invalid:
    """The zero ``reflect.Value`` held in ``pp.value`` when no value is being printed."""


_INVALID: Final = _Invalid()


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_signed(v: int) -> bool:
    return not isinstance(v, GoInt) or v.signed


def _is_bytes(v: object) -> bool:
    return isinstance(v, bytes) or (isinstance(v, GoSlice) and v.elem in _BYTE_ELEMS)


def type_string(v: object) -> str:
    """``reflect.TypeOf(v).String()``: what ``%T`` and the error forms print."""
    if isinstance(v, NoValue):
        return "reflect.Value"  # fmt receives the invalid reflect.Value itself
    if isinstance(v, bytes):
        return "[]uint8"
    return go_type_name(v)


def _go_method(v: object, name: str) -> Callable[[], Any] | None:
    """The bound zero-argument go_method ``name`` of a struct, if it has one."""
    fn = getattr(type(v), name, None)
    if fn is None or getattr(fn, "__go_params__", None) != ():
        return None
    bound: Callable[[], Any] = getattr(v, name)
    return bound


def _pointer(v: object) -> int:
    return _FAKE_HEAP + (id(v) & 0xFFFFF) * 16


def _sort_key(k: object) -> tuple[Any, ...]:
    # internal/fmtsort: numbers by value (NaN first), strings bytewise, false < true.
    # Keys of differing dynamic types have no stable order in Go; group them by type.
    if isinstance(k, str):
        return ("string", to_bytes(k))
    if isinstance(k, float):
        return ("float64", 0, 0.0) if math.isnan(k) else ("float64", 1, k)
    if isinstance(k, complex):
        return ("complex128", _sort_key(k.real), _sort_key(k.imag))
    if isinstance(k, (bool, int)):
        return (type_string(k), int(k))
    if isinstance(k, GoStruct):
        return (type_string(k), tuple(_sort_key(getattr(k, name)) for name in k.go_fields))
    return (type_string(k), 0)


class Printer(Formatter):
    """Go's ``pp``: the state of one Sprint/Sprintln/Sprintf call."""

    def __init__(self) -> None:
        super().__init__()
        self.arg: Any = None
        self.value: Any = _INVALID
        self.erroring = False
        self.reordered = False
        self.good_arg_num = True

    def bad_verb(self, verb: str) -> None:
        self.erroring = True
        self.buf.append("%!" + verb + "(")
        if self.arg is not None:
            self.buf.append(type_string(self.arg) + "=")
            self.print_arg(self.arg, "v")
        elif not isinstance(self.value, (_Invalid, NoValue)):
            self.buf.append(type_string(self.value) + "=")
            self.print_value(self.value, "v", 0)
        else:
            self.buf.append("<nil>")
        self.buf.append(")")
        self.erroring = False

    def fmt_bool(self, v: bool, verb: str) -> None:
        if verb in ("t", "v"):
            self.fmt_boolean(v)
        else:
            self.bad_verb(verb)

    def fmt_0x64(self, v: int, leading0x: bool) -> None:
        sharp, self.sharp = self.sharp, leading0x
        self.fmt_integer(v, 16, False, "v", LDIGITS)
        self.sharp = sharp

    def fmt_int(self, v: int, signed: bool, verb: str) -> None:
        """Go's pp.fmtInteger; ``v`` is the value as a uint64."""
        if verb == "v":
            if self.sharp_v and not signed:
                self.fmt_0x64(v, True)
            else:
                self.fmt_integer(v, 10, signed, verb, LDIGITS)
        elif verb == "d":
            self.fmt_integer(v, 10, signed, verb, LDIGITS)
        elif verb == "b":
            self.fmt_integer(v, 2, signed, verb, LDIGITS)
        elif verb in ("o", "O"):
            self.fmt_integer(v, 8, signed, verb, LDIGITS)
        elif verb == "x":
            self.fmt_integer(v, 16, signed, verb, LDIGITS)
        elif verb == "X":
            self.fmt_integer(v, 16, signed, verb, UDIGITS)
        elif verb == "c":
            self.fmt_c(v)
        elif verb == "q":
            self.fmt_qc(v)
        elif verb == "U":
            self.fmt_unicode(v)
        else:
            self.bad_verb(verb)

    def fmt_float(self, v: float, size: int, verb: str) -> None:
        if verb == "v":
            self.fmt_float_raw(v, size, "g", -1)
        elif verb in ("b", "g", "G", "x", "X"):
            self.fmt_float_raw(v, size, verb, -1)
        elif verb in ("f", "e", "E"):
            self.fmt_float_raw(v, size, verb, 6)
        elif verb == "F":
            self.fmt_float_raw(v, size, "f", 6)
        else:
            self.bad_verb(verb)

    def fmt_complex(self, v: complex, size: int, verb: str) -> None:
        if verb not in ("v", "b", "g", "G", "x", "X", "f", "F", "e", "E"):
            self.bad_verb(verb)
            return
        old_plus = self.plus
        self.buf.append("(")
        self.fmt_float(v.real, size // 2, verb)
        self.plus = True  # the imaginary part always has a sign
        self.fmt_float(v.imag, size // 2, verb)
        self.buf.append("i)")
        self.plus = old_plus

    def fmt_string(self, v: str, verb: str) -> None:
        if verb == "v":
            if self.sharp_v:
                self.fmt_q(v)
            else:
                self.fmt_s(v)
        elif verb == "s":
            self.fmt_s(v)
        elif verb == "x":
            self.fmt_sbx(to_bytes(v), LDIGITS)
        elif verb == "X":
            self.fmt_sbx(to_bytes(v), UDIGITS)
        elif verb == "q":
            self.fmt_q(v)
        else:
            self.bad_verb(verb)

    def fmt_bytes(self, v: bytes, verb: str, type_name: str) -> None:
        if verb in ("v", "d"):
            if self.sharp_v:
                self.buf.append(type_name + "{")
                for i, c in enumerate(v):
                    if i > 0:
                        self.buf.append(", ")
                    self.fmt_0x64(c, True)
                self.buf.append("}")
            else:
                self.buf.append("[")
                for i, c in enumerate(v):
                    if i > 0:
                        self.buf.append(" ")
                    self.fmt_integer(c, 10, False, verb, LDIGITS)
                self.buf.append("]")
        elif verb == "s":
            self.fmt_s(v.decode("utf-8", "surrogateescape"))
        elif verb == "x":
            self.fmt_sbx(v, LDIGITS)
        elif verb == "X":
            self.fmt_sbx(v, UDIGITS)
        elif verb == "q":
            self.fmt_q(v.decode("utf-8", "surrogateescape"))
        else:
            self.print_value(v, verb, 0)

    def fmt_pointer(self, value: Any, verb: str) -> None:
        pointer_kind = isinstance(value, (list, dict, GoFunc, bytes)) or (
            isinstance(value, GoStruct) and value.go_pointer
        )
        if not pointer_kind:
            self.bad_verb(verb)
            return
        u = _pointer(value)
        if verb == "v":
            if self.sharp_v:
                self.buf.append("(" + type_string(value) + ")(")
                self.fmt_0x64(u, True)
                self.buf.append(")")
            else:
                self.fmt_0x64(u, not self.sharp)
        elif verb == "p":
            self.fmt_0x64(u, not self.sharp)
        elif verb in ("b", "o", "d", "x", "X"):
            self.fmt_int(u, False, verb)
        else:
            self.bad_verb(verb)

    def handle_methods(self, verb: str) -> bool:
        """Use a struct's GoString (for %#v), or Error or String (for %v %s %x %X %q)."""
        if self.erroring:
            return False
        if verb == "w":
            # %w is only valid in Errorf; Sprintf reports it for anything but basic types.
            self.bad_verb(verb)
            return True
        arg = self.arg
        if self.sharp_v:
            method, name = _go_method(arg, "GoString"), "GoString"
        elif verb in ("v", "s", "x", "X", "q"):
            # An error is checked before a Stringer, as Go's type switch does.
            method, name = _go_method(arg, "Error"), "Error"
            if method is None:
                method, name = _go_method(arg, "String"), "String"
        else:
            return False
        if method is None:
            return False
        try:
            text = method()
        except Exception as exc:
            # Go's catchPanic: a panicking method prints as an error form.
            self.buf.append(f"%!{verb}(PANIC={name} method: {exc})")
            return True
        if self.sharp_v:
            self.fmt_s(text)
        else:
            self.fmt_string(text, verb)
        return True

    def print_arg(self, arg: Any, verb: str) -> None:
        self.arg = arg
        self.value = _INVALID
        if arg is None:
            if verb in ("T", "v"):
                self.pad("<nil>")
            else:
                self.bad_verb(verb)
            return
        if verb == "T":
            self.fmt_s(type_string(arg))
            return
        if verb == "p":
            self.fmt_pointer(arg, "p")
            return
        if type(arg) not in _BASIC and self.handle_methods(verb):
            # Go's type switch matches basic types exactly: a named type such as
            # time.Month (a GoInt) reaches handleMethods and prints via its String.
            return
        if isinstance(arg, bool):
            self.fmt_bool(arg, verb)
        elif isinstance(arg, int):
            self.fmt_int(arg & _MASK64, is_signed(arg), verb)
        elif isinstance(arg, float):
            self.fmt_float(arg, 64, verb)
        elif isinstance(arg, str):
            self.fmt_string(arg, verb)
        elif isinstance(arg, complex):
            self.fmt_complex(arg, 128, verb)
        elif isinstance(arg, bytes):
            self.fmt_bytes(arg, verb, "[]byte")
        else:
            self.print_value(arg, verb, 0)  # NO_VALUE: fmt got an invalid reflect.Value

    def print_value(self, value: Any, verb: str, depth: int, nil_type: str = "interface {}") -> None:
        """Go's printValue; ``nil_type`` is the static type a nested ``None`` had."""
        if depth > 0 and (type(value) not in _BASIC or (verb == "w" and not isinstance(value, NoValue))):
            # Any valid value inside a container may have methods (a []time.Month
            # prints month names); %w is a bad verb for every one of them.
            self.arg = value
            if self.handle_methods(verb):
                return
        self.arg = None
        self.value = value
        if value is None:
            # A nil interface (or pointer) inside a container or struct.
            self.buf.append(nil_type + "(nil)" if self.sharp_v else "<nil>")
        elif isinstance(value, NoValue):
            if depth == 0:
                self.buf.append("<invalid reflect.Value>")
            elif verb == "v":
                self.buf.append("<nil>")
            else:
                self.bad_verb(verb)
        elif isinstance(value, bool):
            self.fmt_bool(value, verb)
        elif isinstance(value, int):
            self.fmt_int(value & _MASK64, is_signed(value), verb)
        elif isinstance(value, float):
            self.fmt_float(value, 64, verb)
        elif isinstance(value, str):
            self.fmt_string(value, verb)
        elif isinstance(value, complex):
            self.fmt_complex(value, 128, verb)
        elif isinstance(value, dict):
            self._print_map(value, verb, depth)
        elif isinstance(value, (list, bytes)):
            self._print_slice(value, verb, depth)
        elif isinstance(value, GoStruct):
            self._print_struct(value, verb, depth)
        elif isinstance(value, GoFunc):
            self.fmt_pointer(value, verb)
        else:
            self.buf.append("?" + type_string(value) + "?")  # Go's unknownType

    def _print_map(self, value: dict[Any, Any], verb: str, depth: int) -> None:
        elem = value.elem if isinstance(value, GoMap) else "interface {}"
        if self.sharp_v:
            self.buf.append(type_string(value))
            if isinstance(value, GoMap) and value.nil:
                self.buf.append("(nil)")
                return
            self.buf.append("{")
        else:
            self.buf.append("map[")
        for i, key in enumerate(sorted(value, key=_sort_key)):
            if i > 0:
                self.buf.append(", " if self.sharp_v else " ")
            self.print_value(key, verb, depth + 1)
            self.buf.append(":")
            self.print_value(value[key], verb, depth + 1, elem)
        self.buf.append("}" if self.sharp_v else "]")

    def _print_slice(self, value: list[Any] | bytes, verb: str, depth: int) -> None:
        if verb in ("s", "q", "x", "X") and _is_bytes(value):
            self.fmt_bytes(bytes(value), verb, type_string(value))
            return
        elem = value.elem if isinstance(value, GoSlice) else "interface {}"
        items: Any = value
        if isinstance(value, bytes):
            items = [Uint8(c) for c in value]
        if self.sharp_v:
            self.buf.append(type_string(value))
            if isinstance(value, GoSlice) and value.nil:
                self.buf.append("(nil)")
                return
            self.buf.append("{")
            for i, item in enumerate(items):
                if i > 0:
                    self.buf.append(", ")
                self.print_value(item, verb, depth + 1, elem)
            self.buf.append("}")
        else:
            self.buf.append("[")
            for i, item in enumerate(items):
                if i > 0:
                    self.buf.append(" ")
                self.print_value(item, verb, depth + 1, elem)
            self.buf.append("]")

    def _print_struct(self, value: GoStruct, verb: str, depth: int) -> None:
        if value.go_pointer:
            # A pointer to a struct prints as &{...} at top level only (avoids loops).
            if depth > 0:
                self.fmt_pointer(value, verb)
                return
            self.buf.append("&")
        if self.sharp_v:
            self.buf.append(value.go_type)
        self.buf.append("{")
        for i, name in enumerate(value.go_fields):
            if i > 0:
                self.buf.append(", " if self.sharp_v else " ")
            if self.plus_v or self.sharp_v:
                self.buf.append(name + ":")
            self.print_value(getattr(value, name), verb, depth + 1)
        self.buf.append("}")
