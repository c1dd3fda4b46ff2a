"""Go 1.19 ``fmt`` printing (Sprint, Sprintln, Sprintf) over the template value model.

The work is split as Go splits it: ``goformat.py`` is ``fmt/format.go`` (padding and
number layout), ``goprint.py`` is ``fmt/print.go`` (operands by type, Stringers,
containers, error forms), ``gostrconv.py`` is the part of ``strconv`` fmt uses, and this
module is ``doPrintf`` plus the public entry points.  See ``values.py`` for how Python
values stand for Go values.
"""

from __future__ import annotations

from typing import Any

from muster.golang.print import Printer, is_int, type_string
from muster.golang.strconv import RUNE_ERROR, format_float, is_escaped_byte, quote

__all__ = [
    "format_float",
    "format_value",
    "quote",
    "sprint",
    "sprintf",
    "sprintln",
    "type_string",
]


def _arg_number(p: Printer, arg_num: int, fmt: str, i: int, num_args: int) -> tuple[int, int, bool]:
    """Go's argNumber: an explicit ``[n]`` index at ``fmt[i:]``, if any."""
    if len(fmt) <= i or fmt[i] != "[":
        return arg_num, i, False
    p.reordered = True
    index, wid, ok = _parse_arg_number(fmt[i:])
    if ok and 0 <= index < num_args:
        return index, i + wid, True
    p.good_arg_num = False
    return arg_num, i + wid, ok


def _do_printf(p: Printer, fmt: str, a: tuple[Any, ...]) -> None:
    """Go's doPrintf, step for step: flags, ``[n]`` indexes, ``*`` and the error forms."""
    end = len(fmt)
    arg_num = 0
    after_index = False
    p.reordered = False
    i = 0
    while i < end:
        p.good_arg_num = True
        lasti = i
        while i < end and fmt[i] != "%":
            i += 1
        if i > lasti:
            p.buf.append(fmt[lasti:i])
        if i >= end:
            break
        i += 1
        p.clearflags()
        simple = False
        while i < end:
            c = fmt[i]
            if c == "#":
                p.sharp = True
            elif c == "0":
                p.zero = not p.minus  # zero padding only to the left
            elif c == "+":
                p.plus = True
            elif c == "-":
                p.minus = True
                p.zero = False
            elif c == " ":
                p.space = True
            else:
                if "a" <= c <= "z" and arg_num < len(a):
                    # Fast path: flags and a lower-case verb, no width or index.
                    if c == "v":
                        p.sharp_v, p.sharp = p.sharp, False
                        p.plus_v, p.plus = p.plus, False
                    p.print_arg(a[arg_num], c)
                    arg_num += 1
                    i += 1
                    simple = True
                break
            i += 1
        if simple:
            continue

        arg_num, i, after_index = _arg_number(p, arg_num, fmt, i, len(a))

        if i < end and fmt[i] == "*":
            i += 1
            p.wid, p.wid_present, arg_num = _int_from_arg(a, arg_num)
            if not p.wid_present:
                p.buf.append("%!(BADWIDTH)")
            if p.wid < 0:
                p.wid = -p.wid
                p.minus = True
                p.zero = False
            after_index = False
        else:
            p.wid, p.wid_present, i = _parsenum(fmt, i, end)
            if after_index and p.wid_present:  # "%[3]2d"
                p.good_arg_num = False

        if i + 1 < end and fmt[i] == ".":
            i += 1
            if after_index:  # "%[3].2d"
                p.good_arg_num = False
            arg_num, i, after_index = _arg_number(p, arg_num, fmt, i, len(a))
            if i < end and fmt[i] == "*":
                i += 1
                p.prec, p.prec_present, arg_num = _int_from_arg(a, arg_num)
                if p.prec < 0:
                    p.prec = 0
                    p.prec_present = False
                if not p.prec_present:
                    p.buf.append("%!(BADPREC)")
                after_index = False
            else:
                p.prec, p.prec_present, i = _parsenum(fmt, i, end)
                if not p.prec_present:
                    p.prec = 0
                    p.prec_present = True

        if not after_index:
            arg_num, i, after_index = _arg_number(p, arg_num, fmt, i, len(a))

        if i >= end:
            p.buf.append("%!(NOVERB)")
            break

        verb = fmt[i]
        if is_escaped_byte(verb):
            verb = chr(RUNE_ERROR)  # Go decodes an invalid byte as U+FFFD
        i += 1

        if verb == "%":
            p.buf.append("%")  # absorbs no operand, ignores width and precision
        elif not p.good_arg_num:
            p.buf.append("%!" + verb + "(BADINDEX)")
        elif arg_num >= len(a):
            p.buf.append("%!" + verb + "(MISSING)")
        else:
            if verb == "v":
                p.sharp_v, p.sharp = p.sharp, False
                p.plus_v, p.plus = p.plus, False
            p.print_arg(a[arg_num], verb)
            arg_num += 1

    # Unused arguments are reported unless the format used explicit indexes.
    if not p.reordered and arg_num < len(a):
        p.clearflags()
        p.buf.append("%!(EXTRA ")
        for n, arg in enumerate(a[arg_num:]):
            if n > 0:
                p.buf.append(", ")
            if arg is None:
                p.buf.append("<nil>")
            else:
                p.buf.append(type_string(arg) + "=")
                p.print_arg(arg, "v")
        p.buf.append(")")


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
    if not is_int(v) or _too_large(v):
        # Go also rejects ints that overflow int; all of those are too large anyway.
        return 0, False, arg_num + 1
    return int(v), True, arg_num + 1


def sprint(*args: Any) -> str:
    """fmt.Sprint: operands in their %v form, a space between two non-strings."""
    p = Printer()
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
    p = Printer()
    for n, arg in enumerate(args):
        if n > 0:
            p.buf.append(" ")
        p.print_arg(arg, "v")
    p.buf.append("\n")
    return p.text()


def sprintf(format: str, *args: Any) -> str:
    """fmt.Sprintf, including Go's in-band error forms such as ``%!d(string=hi)``."""
    p = Printer()
    _do_printf(p, format, args)
    return p.text()


def format_value(v: Any) -> str:
    """``%v`` of one value, as fmt.Sprint(v) prints it."""
    # Fast paths for what templates print most; the rest takes Go's full route.
    # Exact types only: a subclass may be a named Go type with a String method.
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    if t is bool:
        return "true" if v else "false"
    if t is int and -(1 << 63) <= v < 1 << 63:
        return str(v)  # outside int64 only a wrapped (Go-overflowed) value can be right
    if t is float:
        return format_float(v, "g", -1)
    if v is None:
        return "<nil>"
    p = Printer()
    p.print_arg(v, "v")
    return p.text()
