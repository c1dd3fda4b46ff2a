"""Go 1.19 ``fmt`` printing (Sprint, Sprintln, Sprintf) over the template value model.

This mirrors ``fmt/print.go`` (the ``pp`` printer: argument handling, verbs, errors)
and ``fmt/format.go`` (the ``fmt`` formatter: padding, integers, floats, strings) so
the two can be read side by side; Go's function names are kept in comments.  See
``values.py`` for how Python values stand for Go values.  Go strings are bytes: a
template string is a ``str`` decoded with ``surrogateescape``, so a width counts one
per rune and one per invalid byte, exactly as Go's ``utf8.RuneCountInString``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from muster.gotemplate.gostrconv import (
    MAX_RUNE,
    RUNE_ERROR,
    can_backquote,
    format_float,
    is_escaped_byte,
    is_print,
    quote,
    quote_rune,
    quote_rune_to_ascii,
    quote_to_ascii,
)
from muster.gotemplate.values import (
    GoFunc,
    GoInt,
    GoMap,
    GoSlice,
    GoStruct,
    NoValue,
    go_type_name,
    to_bytes,
)

__all__ = [
    "format_float",
    "format_value",
    "quote",
    "sprint",
    "sprintf",
    "sprintln",
    "type_string",
]

_MASK64: Final = (1 << 64) - 1
_LDIGITS: Final = "0123456789abcdefx"
_UDIGITS: Final = "0123456789ABCDEFX"
_BYTE_ELEMS: Final = frozenset({"uint8", "byte"})
# Go prints addresses for pointers, maps, slices and funcs (%p, and %v of a nested
# pointer); they differ on every run there too, so any plausible heap address will do.
_FAKE_HEAP: Final = 0xC000010000


class _Invalid:
    """The zero ``reflect.Value`` held in ``pp.value`` when no value is being printed."""


_INVALID: Final = _Invalid()


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_signed(v: int) -> bool:
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
    return (type_string(k), 0)


class _Printer:
    """Go's ``pp`` with its embedded ``fmt``: one Sprint/Sprintf call's state."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.arg: Any = None
        self.value: Any = _INVALID
        self.erroring = False
        self.reordered = False
        self.good_arg_num = True
        self.clearflags()

    def clearflags(self) -> None:
        self.wid_present = self.prec_present = False
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False
        self.wid = self.prec = 0

    def text(self) -> str:
        return "".join(self.buf)

    # --- format.go ---------------------------------------------------------------------

    def write_padding(self, n: int) -> None:
        if n > 0:
            self.buf.append(("0" if self.zero else " ") * n)

    def pad(self, s: str) -> None:
        """Go's pad and padString: ``s`` padded to the width, counting runes."""
        if not self.wid_present or self.wid == 0:
            self.buf.append(s)
            return
        width = self.wid - len(s)
        if not self.minus:
            self.write_padding(width)
            self.buf.append(s)
        else:
            self.buf.append(s)
            self.write_padding(width)

    def pad_nozero(self, s: str) -> None:
        old, self.zero = self.zero, False
        self.pad(s)
        self.zero = old

    def fmt_boolean(self, v: bool) -> None:
        self.pad("true" if v else "false")

    def fmt_unicode(self, u: int) -> None:
        prec = self.prec if self.prec_present and self.prec > 4 else 4
        tail = ""
        if self.sharp and u <= MAX_RUNE and is_print(u):
            tail = " '" + chr(u) + "'"
        self.pad_nozero("U+" + f"{u:X}".rjust(prec, "0") + tail)

    def fmt_integer(self, u: int, base: int, signed: bool, verb: str, digits: str) -> None:
        """Go's fmt.fmtInteger; ``u`` is the value as a uint64."""
        negative = signed and u >= 1 << 63
        if negative:
            u = (1 << 64) - u
        prec = 0
        if self.prec_present:
            prec = self.prec
            if prec == 0 and u == 0:
                # Precision 0 and value 0 print nothing but padding.
                old, self.zero = self.zero, False
                self.write_padding(self.wid)
                self.zero = old
                return
        elif self.zero and self.wid_present:
            prec = self.wid
            if negative or self.plus or self.space:
                prec -= 1  # leave room for the sign
        if base == 10:
            s = str(u)
        elif base == 16:
            s = f"{u:x}" if digits is _LDIGITS else f"{u:X}"
        elif base == 8:
            s = f"{u:o}"
        else:
            s = f"{u:b}"
        if len(s) < prec:
            s = "0" * (prec - len(s)) + s
        if self.sharp:
            if base == 2:
                s = "0b" + s
            elif base == 8:
                if s[0] != "0":
                    s = "0" + s
            elif base == 16:
                s = "0" + digits[16] + s
        if verb == "O":
            s = "0o" + s
        if negative:
            s = "-" + s
        elif self.plus:
            s = "+" + s
        elif self.space:
            s = " " + s
        # Zero padding was done above as precision, or is off because of a precision.
        self.pad_nozero(s)

    def truncate(self, s: str) -> str:
        if self.prec_present:
            return s[: self.prec]
        return s

    def fmt_s(self, s: str) -> None:
        self.pad(self.truncate(s))

    def fmt_sbx(self, b: bytes, digits: str) -> None:
        """Go's fmtSbx: hex of bytes, ``% x`` separated, ``#`` for 0x."""
        length = len(b)
        if self.prec_present and self.prec < length:
            length = self.prec
        width = 2 * length
        if width > 0:
            if self.space:
                if self.sharp:
                    width *= 2
                width += length - 1
            elif self.sharp:
                width += 2
        else:
            if self.wid_present:
                self.write_padding(self.wid)
            return
        if self.wid_present and self.wid > width and not self.minus:
            self.write_padding(self.wid - width)
        prefix = "0" + digits[16]
        out = [prefix] if self.sharp else []
        for i in range(length):
            if self.space and i > 0:
                out.append(" ")
                if self.sharp:
                    out.append(prefix)
            c = b[i]
            out.append(digits[c >> 4] + digits[c & 0xF])
        self.buf.append("".join(out))
        if self.wid_present and self.wid > width and self.minus:
            self.write_padding(self.wid - width)

    def fmt_q(self, s: str) -> None:
        s = self.truncate(s)
        if self.sharp and can_backquote(s):
            self.pad("`" + s + "`")
        elif self.plus:
            self.pad(quote_to_ascii(s))
        else:
            self.pad(quote(s))

    def fmt_c(self, c: int) -> None:
        r = RUNE_ERROR if c > MAX_RUNE or 0xD800 <= c <= 0xDFFF else c
        self.pad(chr(r))

    def fmt_qc(self, c: int) -> None:
        r = RUNE_ERROR if c > MAX_RUNE else c
        self.pad(quote_rune_to_ascii(r) if self.plus else quote_rune(r))

    def fmt_float_raw(self, v: float, size: int, verb: str, prec: int) -> None:
        """Go's fmt.fmtFloat: sign, ``#``, zero padding around strconv's digits."""
        if self.prec_present:
            prec = self.prec
        num = format_float(v, verb, prec, size)
        if num[0] not in "+-":
            num = "+" + num
        if self.space and num[0] == "+" and not self.plus:
            num = " " + num[1:]
        if num[1] in "IN":
            # Infinities and NaN are not padded with zeros; NaN loses its sign.
            if num[1] == "N" and not self.space and not self.plus:
                num = num[1:]
            self.pad_nozero(num)
            return
        if self.sharp and verb != "b":
            num = self._sharp_float(num, verb, prec)
        if self.plus or num[0] != "+":
            # Zero padding goes between the sign and the digits.
            if self.zero and self.wid_present and self.wid > len(num):
                self.buf.append(num[0])
                self.write_padding(self.wid - len(num))
                self.buf.append(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    @staticmethod
    def _sharp_float(num: str, verb: str, prec: int) -> str:
        # '#' forces a decimal point and keeps trailing zeros (%#g keeps prec digits).
        digits = 0
        if verb in ("v", "g", "G", "x"):  # not 'X': Go 1.19 quirk kept as is
            digits = 6 if prec == -1 else prec
        tail = ""
        has_point = saw_nonzero = False
        for i in range(1, len(num)):
            c = num[i]
            if c == ".":
                has_point = True
            elif c in "pP" or (c in "eE" and verb not in ("x", "X")):
                tail = num[i:]
                num = num[:i]
                break
            else:
                if c != "0":
                    saw_nonzero = True
                if saw_nonzero:
                    digits -= 1
        if not has_point:
            if len(num) == 2 and num[1] == "0":
                digits -= 1  # a leading 0 counts once
            num += "."
        if digits > 0:
            num += "0" * digits
        return num + tail

    # --- print.go ----------------------------------------------------------------------

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
        self.fmt_integer(v, 16, False, "v", _LDIGITS)
        self.sharp = sharp

    def fmt_int(self, v: int, signed: bool, verb: str) -> None:
        """Go's pp.fmtInteger; ``v`` is the value as a uint64."""
        if verb == "v":
            if self.sharp_v and not signed:
                self.fmt_0x64(v, True)
            else:
                self.fmt_integer(v, 10, signed, verb, _LDIGITS)
        elif verb == "d":
            self.fmt_integer(v, 10, signed, verb, _LDIGITS)
        elif verb == "b":
            self.fmt_integer(v, 2, signed, verb, _LDIGITS)
        elif verb in ("o", "O"):
            self.fmt_integer(v, 8, signed, verb, _LDIGITS)
        elif verb == "x":
            self.fmt_integer(v, 16, signed, verb, _LDIGITS)
        elif verb == "X":
            self.fmt_integer(v, 16, signed, verb, _UDIGITS)
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
            self.fmt_sbx(to_bytes(v), _LDIGITS)
        elif verb == "X":
            self.fmt_sbx(to_bytes(v), _UDIGITS)
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
                    self.fmt_integer(c, 10, False, verb, _LDIGITS)
                self.buf.append("]")
        elif verb == "s":
            self.fmt_s(v.decode("utf-8", "surrogateescape"))
        elif verb == "x":
            self.fmt_sbx(v, _LDIGITS)
        elif verb == "X":
            self.fmt_sbx(v, _UDIGITS)
        elif verb == "q":
            self.fmt_q(v.decode("utf-8", "surrogateescape"))
        else:
            self.print_value(GoSlice(v, "uint8"), verb, 0)

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
        """Use a struct's GoString (for %#v) or String (for %v %s %x %X %q) method."""
        if self.erroring:
            return False
        arg = self.arg
        if not isinstance(arg, GoStruct):
            return False
        if self.sharp_v:
            method, name = _go_method(arg, "GoString"), "GoString"
        elif verb in ("v", "s", "x", "X", "q"):
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
        if isinstance(arg, bool):
            self.fmt_bool(arg, verb)
        elif isinstance(arg, int):
            self.fmt_int(arg & _MASK64, _is_signed(arg), verb)
        elif isinstance(arg, float):
            self.fmt_float(arg, 64, verb)
        elif isinstance(arg, str):
            self.fmt_string(arg, verb)
        elif isinstance(arg, complex):
            self.fmt_complex(arg, 128, verb)
        elif isinstance(arg, bytes):
            self.fmt_bytes(arg, verb, "[]byte")
        elif isinstance(arg, NoValue):
            self.print_value(arg, verb, 0)  # fmt got an invalid reflect.Value
        elif not self.handle_methods(verb):
            self.print_value(arg, verb, 0)

    def print_value(self, value: Any, verb: str, depth: int, nil_type: str = "interface {}") -> None:
        """Go's printValue; ``nil_type`` is the static type a nested ``None`` had."""
        if depth > 0 and isinstance(value, GoStruct):
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
            self.fmt_int(value & _MASK64, _is_signed(value), verb)
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
            self.buf.append(type_string(value) + "{")
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
        if self.sharp_v:
            self.buf.append(type_string(value) + "{")
            for i, item in enumerate(value):
                if i > 0:
                    self.buf.append(", ")
                self.print_value(item, verb, depth + 1, elem)
            self.buf.append("}")
        else:
            self.buf.append("[")
            for i, item in enumerate(value):
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

    # --- Printf --------------------------------------------------------------------------

    def arg_number(self, arg_num: int, fmt: str, i: int, num_args: int) -> tuple[int, int, bool]:
        """Go's argNumber: an explicit ``[n]`` index at ``fmt[i:]``, if any."""
        if len(fmt) <= i or fmt[i] != "[":
            return arg_num, i, False
        self.reordered = True
        index, wid, ok = _parse_arg_number(fmt[i:])
        if ok and 0 <= index < num_args:
            return index, i + wid, True
        self.good_arg_num = False
        return arg_num, i + wid, ok

    def do_printf(self, fmt: str, a: tuple[Any, ...]) -> None:
        end = len(fmt)
        arg_num = 0
        after_index = False
        self.reordered = False
        i = 0
        while i < end:
            self.good_arg_num = True
            lasti = i
            while i < end and fmt[i] != "%":
                i += 1
            if i > lasti:
                self.buf.append(fmt[lasti:i])
            if i >= end:
                break
            i += 1
            self.clearflags()
            simple = False
            while i < end:
                c = fmt[i]
                if c == "#":
                    self.sharp = True
                elif c == "0":
                    self.zero = not self.minus  # zero padding only to the left
                elif c == "+":
                    self.plus = True
                elif c == "-":
                    self.minus = True
                    self.zero = False
                elif c == " ":
                    self.space = True
                else:
                    if "a" <= c <= "z" and arg_num < len(a):
                        # Fast path: flags and a lower-case verb, no width or index.
                        if c == "v":
                            self.sharp_v, self.sharp = self.sharp, False
                            self.plus_v, self.plus = self.plus, False
                        self.print_arg(a[arg_num], c)
                        arg_num += 1
                        i += 1
                        simple = True
                    break
                i += 1
            if simple:
                continue

            arg_num, i, after_index = self.arg_number(arg_num, fmt, i, len(a))

            if i < end and fmt[i] == "*":
                i += 1
                self.wid, self.wid_present, arg_num = _int_from_arg(a, arg_num)
                if not self.wid_present:
                    self.buf.append("%!(BADWIDTH)")
                if self.wid < 0:
                    self.wid = -self.wid
                    self.minus = True
                    self.zero = False
                after_index = False
            else:
                self.wid, self.wid_present, i = _parsenum(fmt, i, end)
                if after_index and self.wid_present:  # "%[3]2d"
                    self.good_arg_num = False

            if i + 1 < end and fmt[i] == ".":
                i += 1
                if after_index:  # "%[3].2d"
                    self.good_arg_num = False
                arg_num, i, after_index = self.arg_number(arg_num, fmt, i, len(a))
                if i < end and fmt[i] == "*":
                    i += 1
                    self.prec, self.prec_present, arg_num = _int_from_arg(a, arg_num)
                    if self.prec < 0:
                        self.prec = 0
                        self.prec_present = False
                    if not self.prec_present:
                        self.buf.append("%!(BADPREC)")
                    after_index = False
                else:
                    self.prec, self.prec_present, i = _parsenum(fmt, i, end)
                    if not self.prec_present:
                        self.prec = 0
                        self.prec_present = True

            if not after_index:
                arg_num, i, after_index = self.arg_number(arg_num, fmt, i, len(a))

            if i >= end:
                self.buf.append("%!(NOVERB)")
                break

            verb = fmt[i]
            if is_escaped_byte(verb):
                verb = chr(RUNE_ERROR)  # Go decodes an invalid byte as U+FFFD
            i += 1

            if verb == "%":
                self.buf.append("%")  # absorbs no operand, ignores width and precision
            elif not self.good_arg_num:
                self.buf.append("%!" + verb + "(BADINDEX)")
            elif arg_num >= len(a):
                self.buf.append("%!" + verb + "(MISSING)")
            else:
                if verb == "v":
                    self.sharp_v, self.sharp = self.sharp, False
                    self.plus_v, self.plus = self.plus, False
                self.print_arg(a[arg_num], verb)
                arg_num += 1

        # Unused arguments are reported unless the format used explicit indexes.
        if not self.reordered and arg_num < len(a):
            self.clearflags()
            self.buf.append("%!(EXTRA ")
            for n, arg in enumerate(a[arg_num:]):
                if n > 0:
                    self.buf.append(", ")
                if arg is None:
                    self.buf.append("<nil>")
                else:
                    self.buf.append(type_string(arg) + "=")
                    self.print_arg(arg, "v")
            self.buf.append(")")


def _too_large(x: int) -> bool:
    return x > 1_000_000 or x < -1_000_000


def _parsenum(s: str, start: int, end: int) -> tuple[int, bool, int]:
    """Go's parsenum: the decimal number at ``s[start:end]``, if any."""
    if start >= end:
        return 0, False, end
    num = 0
    isnum = False
    i = start
    while i < end and "0" <= s[i] <= "9":
        if _too_large(num):
            return 0, False, end  # overflow: most likely a crazy long number
        num = num * 10 + ord(s[i]) - 48
        isnum = True
        i += 1
    return num, isnum, i


def _parse_arg_number(fmt: str) -> tuple[int, int, bool]:
    if len(fmt) < 3:
        return 0, 1, False
    close = fmt.find("]", 1)
    if close < 0:
        return 0, 1, False
    width, ok, newi = _parsenum(fmt, 1, close)
    if not ok or newi != close:
        return 0, close + 1, False
    return width - 1, close + 1, True


def _int_from_arg(a: tuple[Any, ...], arg_num: int) -> tuple[int, bool, int]:
    """Go's intFromArg: a ``*`` width or precision taken from the arguments."""
    if arg_num >= len(a):
        return 0, False, arg_num
    v = a[arg_num]
    num, is_int = 0, False
    if _is_int(v):
        num, is_int = int(v), True
        if _is_signed(v):
            if not -(1 << 63) <= num < 1 << 63:
                num, is_int = 0, False
        elif num >= 1 << 63:
            num, is_int = 0, False
    if _too_large(num):
        num, is_int = 0, False
    return num, is_int, arg_num + 1


def _is_string(arg: Any) -> bool:
    return isinstance(arg, str)


def sprint(*args: Any) -> str:
    """fmt.Sprint: operands in their %v form, a space between two non-strings."""
    p = _Printer()
    prev_string = False
    for n, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if n > 0 and not is_string and not prev_string:
            p.buf.append(" ")
        p.print_arg(arg, "v")
        prev_string = is_string
    return p.text()


def sprintln(*args: Any) -> str:
    """fmt.Sprintln: operands in their %v form, space separated, then a newline."""
    p = _Printer()
    for n, arg in enumerate(args):
        if n > 0:
            p.buf.append(" ")
        p.print_arg(arg, "v")
    p.buf.append("\n")
    return p.text()


def sprintf(format: str, *args: Any) -> str:
    """fmt.Sprintf, including Go's in-band error forms such as ``%!d(string=hi)``."""
    p = _Printer()
    p.do_printf(format, args)
    return p.text()


def format_value(v: Any) -> str:
    """``%v`` of one value, as fmt.Sprint(v) prints it."""
    # Fast paths for what templates print most; the rest takes Go's full route.
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v, "g", -1)
    if v is None:
        return "<nil>"
    p = _Printer()
    p.print_arg(v, "v")
    return p.text()
