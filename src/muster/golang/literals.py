"""Go's literal syntax as ``strconv`` parses it: unquoting strings and characters, parsing numbers.

Go strings are bytes; ours are ``str`` decoded with ``surrogateescape``, so an invalid
UTF-8 byte ``0xNN`` is the lone surrogate ``U+DCNN``. Each function works on the UTF-8
bytes (``_b``) exactly as Go does and decodes the result back with ``surrogateescape``,
so invalid bytes behave as in Go (``Unquote`` of a double-quoted literal turns them
into U+FFFD, ``\\xNN`` escapes make invalid bytes). Quoting and integers live in ``strconv``.
"""

from __future__ import annotations

import math
import re

from muster.golang.strconv import NumError, underscore_ok

__all__ = [
    "parse_float",
    "unquote",
    "unquote_char",
]

_RUNE_ERROR = 0xFFFD


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _decode_rune(b: bytes, i: int) -> tuple[int, int]:
    """Go's ``utf8.DecodeRune(b[i:])`` where ``b[i]`` is not ASCII: (rune, width),
    or (U+FFFD, 1) for an invalid byte."""
    for width in (2, 3, 4):
        try:
            ch = b[i : i + width].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return ord(ch), width
    return _RUNE_ERROR, 1


def _valid_rune(r: int) -> bool:
    return 0 <= r < 0xD800 or 0xDFFF < r <= 0x10FFFF


# -- unquoting -------------------------------------------------------------------------------------

_SYNTAX = "invalid syntax"
_UNESCAPE = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("v"): 11}


def _unquote_char_bytes(s: bytes, i: int, quote_byte: int) -> tuple[int, bool, int]:
    """Go's ``UnquoteChar(s[i:], quote)``: (value, multibyte, index of the tail)."""
    if i >= len(s):
        raise NumError(_SYNTAX)
    c = s[i]
    if c == quote_byte and quote_byte in (0x27, 0x22):
        raise NumError(_SYNTAX)
    if c >= 0x80:
        r, width = _decode_rune(s, i)
        return r, True, i + width
    if c != 0x5C:  # not a backslash
        return c, False, i + 1
    if i + 1 >= len(s):
        raise NumError(_SYNTAX)
    c = s[i + 1]
    i += 2
    if c in _UNESCAPE:
        return _UNESCAPE[c], False, i
    if c in b"xuU":
        n = {0x78: 2, 0x75: 4, 0x55: 8}[c]
        digits = s[i : i + n]
        if len(digits) < n or not all(d in b"0123456789abcdefABCDEF" for d in digits):
            raise NumError(_SYNTAX)
        v = int(digits, 16)
        if c == 0x78:  # \x: a single byte, possibly not UTF-8
            return v, False, i + n
        if not _valid_rune(v):
            raise NumError(_SYNTAX)
        return v, True, i + n
    if 0x30 <= c <= 0x37:
        digits = s[i : i + 2]
        if len(digits) < 2 or not all(0x30 <= d <= 0x37 for d in digits):
            raise NumError(_SYNTAX)
        v = (c - 0x30) << 6 | (digits[0] - 0x30) << 3 | (digits[1] - 0x30)
        if v > 255:
            raise NumError(_SYNTAX)
        return v, False, i + 2
    if c == 0x5C:
        return 0x5C, False, i
    if c in (0x27, 0x22) and c == quote_byte:
        return c, False, i
    raise NumError(_SYNTAX)


def unquote_char(s: str, quote_char: str) -> tuple[int, str]:
    """Go's ``strconv.UnquoteChar``: the first (possibly escaped) character of ``s`` and the
    rest of ``s``. Raises NumError("invalid syntax")."""
    b = _b(s)
    value, _, tail = _unquote_char_bytes(b, 0, ord(quote_char))
    return value, _s(b[tail:])


def unquote(s: str) -> str:
    """Go's ``strconv.Unquote`` for the string literals of templates, ``"..."`` and ```...```.

    Raises NumError("invalid syntax") like Go.
    """
    b = _b(s)
    if len(b) < 2 or b[0] != b[-1] or b[0] not in (0x22, 0x60):
        raise NumError(_SYNTAX)
    body = b[1:-1]
    if b[0] == 0x60:  # raw string: no escapes; carriage returns are discarded
        if 0x60 in body:
            raise NumError(_SYNTAX)
        return _s(body.replace(b"\r", b""))
    if 0x0A in body:
        raise NumError(_SYNTAX)
    if 0x5C not in body and 0x22 not in body and s.isascii():
        return s[1:-1]
    # Slow path, as Go's: an invalid UTF-8 byte decodes as U+FFFD and is re-encoded.
    out = bytearray()
    i = 0
    while i < len(body):
        r, multibyte, i = _unquote_char_bytes(body, i, 0x22)
        if r < 0x80 or not multibyte:
            out.append(r)
        else:
            out += chr(r).encode("utf-8")
    return _s(bytes(out))


# -- numbers ---------------------------------------------------------------------------------------


_DEC_FLOAT = re.compile(r"[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9][0-9_]*)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?[0-9][0-9_]*")


def parse_float(s: str) -> float:
    """Go's ``strconv.ParseFloat(s, 64)`` for the literals the lexer produces.

    Decimal and hexadecimal (``0x1p-2``, exponent required) forms with Go's underscore
    rules; a result that overflows to infinity is Go's ``ErrRange``. Go's spelled-out
    specials ("inf", "NaN") never come out of the lexer and are not accepted.
    """
    hexa = len(s.lstrip("+-")) > 2 and s.lstrip("+-")[:2] in ("0x", "0X")
    pattern = _HEX_FLOAT if hexa else _DEC_FLOAT
    if not pattern.fullmatch(s) or not any(c.isdigit() for c in s.split("p")[0].split("P")[0]):
        raise NumError(_SYNTAX)
    if "_" in s and not underscore_ok(s):
        raise NumError(_SYNTAX)
    clean = s.replace("_", "")
    try:
        value = float.fromhex(clean) if hexa else float(clean)
    except OverflowError:  # fromhex raises where float() returns infinity
        value = math.inf
    if math.isinf(value):
        raise NumError("value out of range")
    return value
