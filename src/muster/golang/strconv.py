"""Go 1.19 ``strconv`` quoting and float formatting, as ``fmt`` uses them.

Strings are template strings (Go bytes decoded with ``surrogateescape``): a lone
surrogate ``\\udcXX`` stands for the invalid byte ``0xXX`` and is handled as Go handles
an invalid UTF-8 byte (``utf8.RuneError`` of width 1).
"""

from __future__ import annotations

import math
import struct
from bisect import bisect_left
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from fractions import Fraction

from muster.golang.isprint import IS_NOT_PRINT16, IS_NOT_PRINT32, IS_PRINT16, IS_PRINT32

__all__ = [
    "NumError",
    "atoi",
    "can_backquote",
    "format_float",
    "is_print",
    "parse_bool",
    "parse_int",
    "parse_uint",
    "quote",
    "quote_rune",
    "quote_rune_to_ascii",
    "quote_to_ascii",
    "underscore_ok",
]

MAX_RUNE = 0x10FFFF
RUNE_ERROR = 0xFFFD
_LOWERHEX = "0123456789abcdef"
_UPPERHEX = "0123456789ABCDEF"


def is_escaped_byte(ch: str) -> bool:
    """Whether ``ch`` stands for an invalid UTF-8 byte (a surrogateescape char)."""
    return "\udc80" <= ch <= "\udcff"


def valid_rune(r: int) -> bool:
    """utf8.ValidRune: in range and not a surrogate."""
    return 0 <= r < 0xD800 or 0xDFFF < r <= MAX_RUNE


def is_print(r: int) -> bool:
    """strconv.IsPrint, from Go's own tables (Unicode 13, as Go 1.19 ships)."""
    if r <= 0xFF:
        if 0x20 <= r <= 0x7E:
            return True
        if 0xA1 <= r <= 0xFF:
            return r != 0xAD  # the soft hyphen
        return False
    if 0 <= r < 1 << 16:
        i = bisect_left(IS_PRINT16, r)
        if i >= len(IS_PRINT16) or r < IS_PRINT16[i & ~1] or IS_PRINT16[i | 1] < r:
            return False
        j = bisect_left(IS_NOT_PRINT16, r)
        return j >= len(IS_NOT_PRINT16) or IS_NOT_PRINT16[j] != r
    i = bisect_left(IS_PRINT32, r)
    if i >= len(IS_PRINT32) or r < IS_PRINT32[i & ~1] or IS_PRINT32[i | 1] < r:
        return False
    if r >= 0x20000:
        return True
    r -= 0x10000
    j = bisect_left(IS_NOT_PRINT32, r)
    return j >= len(IS_NOT_PRINT32) or IS_NOT_PRINT32[j] != r


_SIMPLE_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def _escaped_rune(r: int, quote: str, ascii_only: bool) -> str:
    # appendEscapedRune in strconv/quote.go.
    if r == ord(quote) or r == 0x5C:
        return "\\" + chr(r)
    if ascii_only:
        if r < 0x80 and is_print(r):
            return chr(r)
    elif is_print(r):
        return chr(r)
    simple = _SIMPLE_ESCAPES.get(r)
    if simple is not None:
        return simple
    if r < 0x20 or r == 0x7F:
        return f"\\x{r:02x}"
    if not valid_rune(r):
        r = RUNE_ERROR
    if r < 0x10000:
        return f"\\u{r:04x}"
    return f"\\U{r:08x}"


def _quote_with(s: str, quote: str, ascii_only: bool) -> str:
    out = [quote]
    for ch in s:
        if is_escaped_byte(ch):
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(_escaped_rune(ord(ch), quote, ascii_only))
    out.append(quote)
    return "".join(out)


def quote(s: str) -> str:
    """strconv.Quote: a double-quoted Go string literal for ``s``."""
    return _quote_with(s, '"', False)


def quote_to_ascii(s: str) -> str:
    """strconv.QuoteToASCII: like ``quote`` but escapes every non-ASCII rune."""
    return _quote_with(s, '"', True)


def quote_rune(r: int) -> str:
    """strconv.QuoteRune: a single-quoted Go rune literal (invalid runes become U+FFFD)."""
    if not valid_rune(r):
        r = RUNE_ERROR
    return "'" + _escaped_rune(r, "'", False) + "'"


def quote_rune_to_ascii(r: int) -> str:
    """strconv.QuoteRuneToASCII."""
    if not valid_rune(r):
        r = RUNE_ERROR
    return "'" + _escaped_rune(r, "'", True) + "'"


def can_backquote(s: str) -> bool:
    """strconv.CanBackquote: whether ``s`` can be a raw string literal unchanged."""
    for ch in s:
        r = ord(ch)
        if r >= 0x80:
            if is_escaped_byte(ch) or r == 0xFEFF:
                return False  # invalid UTF-8, or an invisible BOM
            continue
        if (r < 0x20 and r != 0x09) or r == 0x60 or r == 0x7F:
            return False
    return True


# --- floats -------------------------------------------------------------------------------
#
# Go formats from a decimal digit string ``digs`` (no leading or trailing zeros) and a
# decimal point position ``dp`` (value = 0.digs * 10**dp).  Python's repr gives the same
# shortest round-trip digits as Go's Ryu, and ``%.Ne`` gives the same correctly rounded
# fixed-precision digits as Go's exact decimal arithmetic, so we borrow both and keep
# Go's own layout code (fmtE, fmtF, %g's choice).


def _split_digits(s: str) -> tuple[str, int]:
    """Digits and decimal point of a non-negative Python float string (repr or %e)."""
    mantissa, _, exp = s.partition("e")
    intpart, _, frac = mantissa.partition(".")
    digits = intpart + frac
    dp = len(intpart) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    stripped = stripped.rstrip("0")
    if not stripped:
        return "", 0
    return stripped, dp


def _float32(x: float) -> float:
    """Go's float32(x): round to nearest, overflowing to an infinity."""
    try:
        packed: float = struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)
    return packed


def _shortest(x: float, bitsize: int) -> tuple[str, int]:
    if bitsize == 64:
        return _split_digits(repr(x))
    return _shortest32(x)


def _f32_from_bits(bits: int) -> float:
    value: float = struct.unpack("<f", struct.pack("<I", bits))[0]
    return value


def _shortest32(x: float) -> tuple[str, int]:
    """Go's shortest float32 digits: the fewest that read back (exactly) as ``x``."""
    if x == 0:
        return "", 0
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    f = Fraction(x)
    down = Fraction(_f32_from_bits(bits - 1))
    up = f + (f - down) if bits + 1 == 0x7F800000 else Fraction(_f32_from_bits(bits + 1))
    lo, hi = (f + down) / 2, (f + up) / 2
    inclusive = bits & 1 == 0  # halfway cases round to even mantissas
    exact = Decimal(x)
    for n in range(1, 10):  # pragma: no branch - 9 digits always identify a float32
        found: list[tuple[Fraction, Decimal]] = []
        for rounding in (ROUND_FLOOR, ROUND_CEILING):
            cand = Context(prec=n, rounding=rounding).plus(exact)
            c = Fraction(cand)
            if lo < c < hi or (inclusive and c in (lo, hi)):
                found.append((abs(c - f), cand))
        if found:
            best = min(found, key=lambda t: t[0])[1]
            return _split_digits(f"{best:e}")
    raise AssertionError("unreachable")  # pragma: no cover


def _fixed(x: float, ndigits: int) -> tuple[str, int]:
    return _split_digits(f"{x:.{ndigits - 1}e}")


def _fmt_e(neg: bool, digs: str, dp: int, prec: int, fmt: str) -> str:
    out = ["-" if neg else "", digs[0] if digs else "0"]
    if prec > 0:
        frac = digs[1 : prec + 1]
        out.append("." + frac + "0" * (prec - len(frac)))
    exp = dp - 1 if digs else 0
    sign = "-" if exp < 0 else "+"
    out.append(f"{fmt}{sign}{abs(exp):02d}")
    return "".join(out)


def _fmt_f(neg: bool, digs: str, dp: int, prec: int) -> str:
    out = ["-" if neg else ""]
    if dp > 0:
        out.append(digs[:dp] + "0" * (dp - len(digs)))
    else:
        out.append("0")
    if prec > 0:
        frac = "".join(digs[j] if 0 <= j < len(digs) else "0" for j in range(dp, dp + prec))
        out.append("." + frac)
    return "".join(out)


def _fmt_b(neg: bool, mant: int, exp: int, mantbits: int) -> str:
    exp -= mantbits
    return ("-" if neg else "") + f"{mant}p" + ("+" if exp >= 0 else "") + str(exp)


def _fmt_x(prec: int, fmt: str, neg: bool, mant: int, exp: int, mantbits: int) -> str:
    # fmtX in strconv/ftoa.go, on 64-bit unsigned arithmetic.
    mask64 = (1 << 64) - 1
    if mant == 0:
        exp = 0
    mant = (mant << (60 - mantbits)) & mask64
    while mant != 0 and mant & (1 << 60) == 0:
        mant = (mant << 1) & mask64
        exp -= 1
    if 0 <= prec < 15:
        shift = prec * 4
        extra = (mant << shift) & ((1 << 60) - 1)
        mant >>= 60 - shift
        if extra | (mant & 1) > 1 << 59:
            mant += 1
        mant = (mant << (60 - shift)) & mask64
        if mant & (1 << 61):
            mant >>= 1
            exp += 1
    hexdigits = _UPPERHEX if fmt == "X" else _LOWERHEX
    out = ["-" if neg else "", "0", fmt, str((mant >> 60) & 1)]
    mant = (mant << 4) & mask64
    if prec < 0 and mant != 0:
        out.append(".")
        while mant != 0:
            out.append(hexdigits[(mant >> 60) & 15])
            mant = (mant << 4) & mask64
    elif prec > 0:
        out.append(".")
        for _ in range(prec):
            out.append(hexdigits[(mant >> 60) & 15])
            mant = (mant << 4) & mask64
    out.append("P" if fmt == "X" else "p")
    out.append("-" if exp < 0 else "+")
    out.append(f"{abs(exp):02d}")
    return "".join(out)


def format_float(f: float, fmt: str, prec: int, bitsize: int = 64) -> str:
    """strconv.FormatFloat(f, fmt, prec, bitsize) for fmt in ``b e E f g G x X``.

    ``prec`` -1 means the shortest representation that round-trips.  Any other
    ``fmt`` gives ``%`` + fmt, as Go does.
    """
    if prec < 0 and fmt == "g" and bitsize == 64:
        # Fast path for %v: repr already has Go's shortest digits and plain layout for
        # exponents -4..15 ("inf" and "nan" contain an "n"); Go goes exponential at 6.
        r = repr(f)
        if "e" not in r and "n" not in r:
            if r.endswith(".0"):
                r = r[:-2]
            point = r.find(".")
            if (point if point >= 0 else len(r)) - (r[0] == "-") <= 6:
                return r
    if bitsize == 32:
        f = _float32(f)
        bits = struct.unpack("<I", struct.pack("<f", f))[0]
        expbits, mantbits, bias = 8, 23, -127
    else:
        bits = struct.unpack("<Q", struct.pack("<d", f))[0]
        expbits, mantbits, bias = 11, 52, -1023
    neg = bits >> (expbits + mantbits) != 0
    exp = (bits >> mantbits) & ((1 << expbits) - 1)
    mant = bits & ((1 << mantbits) - 1)
    if exp == (1 << expbits) - 1:
        if mant != 0:
            return "NaN"
        return "-Inf" if neg else "+Inf"
    if exp == 0:
        exp += 1  # denormal
    else:
        mant |= 1 << mantbits
    exp += bias
    if fmt == "b":
        return _fmt_b(neg, mant, exp, mantbits)
    if fmt in ("x", "X"):
        return _fmt_x(prec, fmt, neg, mant, exp, mantbits)
    if fmt not in ("e", "E", "f", "g", "G"):
        return "%" + fmt
    x = abs(f)
    shortest = prec < 0
    if shortest:
        digs, dp = _shortest(x, bitsize)
        if fmt in ("e", "E"):
            prec = max(len(digs) - 1, 0)
        elif fmt == "f":
            prec = max(len(digs) - dp, 0)
        else:
            prec = len(digs)
    elif fmt == "f":
        # Exact rounding at dp+prec: Python's %f is exact and rounds half to even as Go.
        return ("-" if neg else "") + f"{x:.{prec}f}"
    elif fmt in ("e", "E"):
        digs, dp = _fixed(x, prec + 1)
    else:
        if prec == 0:
            prec = 1
        digs, dp = _fixed(x, prec)
    if fmt in ("e", "E"):
        return _fmt_e(neg, digs, dp, prec, fmt)
    if fmt == "f":
        return _fmt_f(neg, digs, dp, prec)
    # %g / %G: exponent form when the exponent is < -4 or >= the precision
    # (6 for the shortest form).
    nd = len(digs)
    eprec = 6 if shortest else prec
    exp10 = dp - 1
    if exp10 < -4 or exp10 >= eprec:
        prec = min(prec, nd)
        return _fmt_e(neg, digs, dp, prec - 1, "e" if fmt == "g" else "E")
    if prec > dp:
        prec = nd
    return _fmt_f(neg, digs, dp, max(prec - dp, 0))


# -- parsing numbers and booleans --------------------------------------------------------------

_MAX_UINT64 = (1 << 64) - 1
_SYNTAX = "invalid syntax"
_RANGE = "value out of range"


class NumError(ValueError):
    """Go's ``strconv.ErrSyntax`` / ``ErrRange``; ``str()`` is Go's message text."""


def underscore_ok(s: str) -> bool:
    """Go's ``underscoreOK``: underscores only between digits or after a base prefix."""
    saw = "^"
    i = 0
    if s[:1] in ("-", "+"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i = 2
        saw = "0"
        hexa = s[1].lower() == "x"
    while i < len(s):
        c = s[i]
        if "0" <= c <= "9" or hexa and "a" <= c.lower() <= "f":
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
        i += 1
    return saw != "_"


def parse_uint(s: str) -> int:
    """Go's ``strconv.ParseUint(s, 0, 64)``: base from the prefix (``0x``, ``0o``, ``0b``,
    or a bare leading ``0`` for octal), underscores allowed as in Go source."""
    s0 = s
    if not s:
        raise NumError(_SYNTAX)
    base = 10
    if s[0] == "0":
        if len(s) >= 3 and s[1].lower() in "box":
            base = {"b": 2, "o": 8, "x": 16}[s[1].lower()]
            s = s[2:]
        else:
            base = 8
            s = s[1:]
    n = 0
    underscores = False
    for c in s:
        if c == "_":
            underscores = True
            continue
        if "0" <= c <= "9":
            d = ord(c) - 48
        elif "a" <= c.lower() <= "z":
            d = ord(c.lower()) - 87
        else:
            raise NumError(_SYNTAX)
        if d >= base:
            raise NumError(_SYNTAX)
        n = n * base + d
        if n > _MAX_UINT64:
            raise NumError(_RANGE)
    if underscores and not underscore_ok(s0):
        raise NumError(_SYNTAX)
    return n


def parse_int(s: str) -> int:
    """Go's ``strconv.ParseInt(s, 0, 64)``: an optional sign, then ``parse_uint``."""
    if not s:
        raise NumError(_SYNTAX)
    neg = s[0] == "-"
    body = s[1:] if s[0] in "+-" else s
    un = parse_uint(body)
    if neg:
        if un > 1 << 63:
            raise NumError(_RANGE)
        return -un
    if un >= 1 << 63:
        raise NumError(_RANGE)
    return un


def parse_bool(s: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise NumError(_SYNTAX)


def atoi(s: str) -> int:
    """Go's ``strconv.Atoi`` (64-bit ints): an optional sign, ASCII decimal digits only."""
    digits = s[1:] if s[:1] in ("+", "-") else s
    if not digits or not digits.isascii() or not digits.isdigit():
        raise NumError(_SYNTAX)
    value = int(s)
    if not -(1 << 63) <= value < 1 << 63:
        raise NumError(_RANGE)
    return value
