"""Go's ``encoding/json`` decoding into ``interface{}``, as confd's ``json``/``jsonArray`` see it.

Objects become dicts, arrays lists, and every number a float (Go's float64), with
Go's syntax rules (no NaN or Infinity, float64 overflow is an error), invalid UTF-8
and unpaired surrogate escapes replaced by U+FFFD, and Go's error wording for the
common mistakes (``invalid character 'o' in literal null (expecting 'u')``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

from muster.golang.strconv import quote
from muster.golang.values import GoMap, GoSlice

__all__ = ["JSONError", "decode", "unmarshal_any", "unmarshal_array", "unmarshal_object"]


class JSONError(ValueError):
    """A Go ``json.Unmarshal`` error; the message is Go's."""


def _go_number(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONError(f"json: cannot unmarshal number {text} into Go value of type float64")
    return value


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError("invalid character", name, 0)


def _fix_strings(v: Any) -> Any:
    # Go replaces invalid UTF-8 and unpaired surrogate escapes with U+FFFD.
    if isinstance(v, str):
        if any(0xD800 <= ord(c) <= 0xDFFF for c in v):
            return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in v)
        return v
    if isinstance(v, list):
        return [_fix_strings(x) for x in v]
    if isinstance(v, dict):
        return {_fix_strings(k): _fix_strings(x) for k, x in v.items()}
    return v


_JSON_KIND = {dict: "object", list: "array", str: "string", bool: "bool", float: "number"}


# Two decoders built once: the careful one checks every number for float64 overflow
# (Go's ErrRange); the fast one is used when no literal can overflow.
_CAREFUL_JSON: Final = json.JSONDecoder(
    parse_float=_go_number, parse_int=_go_number, parse_constant=_reject_constant
)
_FAST_JSON: Final = json.JSONDecoder(parse_float=float, parse_int=float, parse_constant=_reject_constant)
_FAST_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _FAST_JSON.scan_once  # type: ignore[attr-defined]


def decode(data: str) -> Any:
    """``json.Unmarshal`` into ``interface{}``: objects -> dict, arrays -> list, every
    number -> float; Go's syntax rules (no NaN/Infinity)."""
    # Only an exponent of 3+ digits or a run of 300+ digits can exceed float64.
    careful = "e" in data or "E" in data or len(data) > 300
    if not careful:
        # The C scanner straight away; anything unusual takes the full path below,
        # which also produces the error.
        try:
            value, end = _FAST_SCAN(data, 0)
        except (StopIteration, ValueError, RecursionError):
            pass
        else:
            if end == len(data) or not data[end:].strip(" \t\r\n"):
                if data.isascii() and "\\u" not in data:
                    return value  # (_repaired, inlined: the seed template decodes per server)
                return _fix_strings(value)
    try:
        value = (_CAREFUL_JSON if careful else _FAST_JSON).decode(data)
    except (json.JSONDecodeError, JSONError, RecursionError) as exc:
        # Go checks the syntax of the whole input before decoding anything, so a
        # syntax error wins over a number overflow met earlier.
        syntax = _go_syntax_error(data)
        if syntax is not None:
            raise JSONError(syntax) from None
        if isinstance(exc, JSONError):
            raise
        raise JSONError(exc.msg if isinstance(exc, json.JSONDecodeError) else "exceeded max depth") from None
    return _repaired(data, value)


def _repaired(data: str, value: Any) -> Any:
    if data.isascii() and "\\u" not in data:
        return value  # no invalid UTF-8 and no surrogate escapes to repair
    return _fix_strings(value)


def unmarshal_any(raw: bytes) -> tuple[Any, JSONError | None]:
    """What ``var v interface{}; err := json.Unmarshal(raw, &v)`` leaves in v, and err.

    A syntax error (checked over the whole input first, as Go does) leaves v nil; a
    number beyond float64 decodes as nil while the rest of the document still decodes
    (Go's decodeState.saveError), and err reports the first such number.
    """
    text = raw.decode("utf-8", "surrogateescape")
    try:
        return decode(text), None
    except JSONError as exc:
        if _go_syntax_error(text) is not None or "cannot unmarshal number" not in str(exc):
            return None, exc
        error = exc
    # The syntax is valid: decode again with every overflowing number as nil.
    value = json.loads(text, parse_float=_overflow_to_nil, parse_int=_overflow_to_nil)
    return _fix_strings(value), error


def _overflow_to_nil(text: str) -> float | None:
    value = float(text)
    return None if math.isinf(value) else value


def _unmarshal(value: Any, want: type, go_type: str, nil: Callable[[], Any]) -> Any:
    if type(value) is want:
        return value
    if value is None:
        return nil()  # Unmarshal of null leaves the variable unset: a nil map / slice
    if not isinstance(value, want):
        kind = _JSON_KIND.get(type(value), "value")
        raise JSONError(f"json: cannot unmarshal {kind} into Go value of type {go_type}")
    return value


def _nil_map() -> GoMap:
    return GoMap(nil=True)


def _nil_slice() -> GoSlice:
    return GoSlice((), nil=True)


def unmarshal_object(data: str) -> dict[str, Any]:
    """confd's ``json``: into ``map[string]interface {}`` (``null`` gives a nil map)."""
    value = decode(data)
    if type(value) is dict:
        return value
    result: dict[str, Any] = _unmarshal(value, dict, "map[string]interface {}", _nil_map)
    return result


def unmarshal_array(data: str) -> list[Any]:
    """confd's ``jsonArray``: into ``[]interface {}`` (``null`` gives a nil slice)."""
    result: list[Any] = _unmarshal(decode(data), list, "[]interface {}", _nil_slice)
    return result


# -- syntax errors: a port of encoding/json's scanner (scanner.go) ------------------
#
# Python's decoder finds the same invalid inputs but words and places the error
# differently; on the error path only, this state machine finds Go's message.

_SPACE: Final = frozenset(b" \t\r\n")
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_DIGITS: Final = frozenset(b"0123456789")
_LITERALS: Final = {ord("t"): b"true", ord("f"): b"false", ord("n"): b"null"}
_MAX_DEPTH: Final = 10000


class _Syntax(Exception):
    pass


def _quote_char(c: int) -> str:
    # quoteChar: the byte as a rune (Latin-1), quoted as Go's strconv.Quote would.
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    return "'" + quote(chr(c))[1:-1] + "'"


class _Scanner:
    """checkValid: feed bytes, then a space for EOF; ``_Syntax`` carries Go's message."""

    def __init__(self) -> None:
        self.state = "begin_value"
        self.stack: list[str] = []  # "key", "value" (object) or "array"
        self.end_top = False
        self.lit = b""
        self.lit_pos = 0

    def fail(self, c: int, context: str) -> _Syntax:
        return _Syntax(f"invalid character {_quote_char(c)} {context}")

    def push(self, c: int, kind: str) -> None:
        self.stack.append(kind)
        if len(self.stack) > _MAX_DEPTH:
            raise self.fail(c, "exceeded max depth")

    def pop(self) -> None:
        self.stack.pop()
        if not self.stack:
            self.state, self.end_top = "end_top", True
        else:
            self.state = "end_value"

    def begin_value(self, c: int) -> None:
        if c in _SPACE:
            return
        if c == 0x7B:  # {
            self.state = "begin_string_or_empty"
            self.push(c, "key")
        elif c == 0x5B:  # [
            self.state = "begin_value_or_empty"
            self.push(c, "array")
        elif c == 0x22:
            self.state = "in_string"
        elif c == 0x2D:  # -
            self.state = "neg"
        elif c == 0x30:
            self.state = "zero"
        elif c in _LITERALS:
            self.state, self.lit, self.lit_pos = "literal", _LITERALS[c], 1
        elif 0x31 <= c <= 0x39:
            self.state = "int"
        else:
            raise self.fail(c, "looking for beginning of value")

    def end_value(self, c: int) -> None:
        if not self.stack:
            self.state, self.end_top = "end_top", True
            self.step(c)
            return
        if c in _SPACE:
            self.state = "end_value"
            return
        top = self.stack[-1]
        if top == "key":
            if c != 0x3A:
                raise self.fail(c, "after object key")
            self.stack[-1] = "value"
            self.state = "begin_value"
        elif top == "value":
            if c == 0x2C:
                self.stack[-1] = "key"
                self.state = "begin_string"
            elif c == 0x7D:
                self.pop()
            else:
                raise self.fail(c, "after object key:value pair")
        elif c == 0x2C:
            self.state = "begin_value"
        elif c == 0x5D:
            self.pop()
        else:
            raise self.fail(c, "after array element")

    def step(self, c: int) -> None:  # noqa: C901 - one branch per scanner state, as in Go
        st = self.state
        if st == "begin_value":
            self.begin_value(c)
        elif st == "begin_value_or_empty":
            if c in _SPACE:
                return
            if c == 0x5D:
                self.end_value(c)
            else:
                self.begin_value(c)
        elif st in ("begin_string_or_empty", "begin_string"):
            if c in _SPACE:
                return
            if c == 0x7D and st == "begin_string_or_empty":
                self.stack[-1] = "value"
                self.end_value(c)
            elif c == 0x22:
                self.state = "in_string"
            else:
                raise self.fail(c, "looking for beginning of object key string")
        elif st == "end_value":
            self.end_value(c)
        elif st == "end_top":
            if c not in _SPACE:
                raise self.fail(c, "after top-level value")
        elif st == "in_string":
            if c == 0x22:
                self.state = "end_value"
            elif c == 0x5C:
                self.state = "in_string_esc"
            elif c < 0x20:
                raise self.fail(c, "in string literal")
        elif st == "in_string_esc":
            if c in b'bfnrt\\/"':
                self.state = "in_string"
            elif c == 0x75:  # u
                self.state, self.lit_pos = "esc_u", 0
            else:
                raise self.fail(c, "in string escape code")
        elif st == "esc_u":
            if c not in _HEX:
                raise self.fail(c, "in \\u hexadecimal character escape")
            self.lit_pos += 1
            if self.lit_pos == 4:
                self.state = "in_string"
        elif st == "neg":
            if c == 0x30:
                self.state = "zero"
            elif 0x31 <= c <= 0x39:
                self.state = "int"
            else:
                raise self.fail(c, "in numeric literal")
        elif st in ("int", "zero"):
            if st == "int" and c in _DIGITS:
                return
            if c == 0x2E:
                self.state = "dot"
            elif c in (0x65, 0x45):
                self.state = "exp"
            else:
                self.end_value(c)
        elif st == "dot":
            if c not in _DIGITS:
                raise self.fail(c, "after decimal point in numeric literal")
            self.state = "frac"
        elif st == "frac":
            if c in _DIGITS:
                return
            if c in (0x65, 0x45):
                self.state = "exp"
            else:
                self.end_value(c)
        elif st in ("exp", "exp_sign"):
            if st == "exp" and c in (0x2B, 0x2D):
                self.state = "exp_sign"
            elif c in _DIGITS:
                self.state = "exp_digits"
            else:
                raise self.fail(c, "in exponent of numeric literal")
        elif st == "exp_digits":
            if c not in _DIGITS:
                self.end_value(c)
        elif st == "literal":
            want = self.lit[self.lit_pos]
            if c != want:
                raise self.fail(c, f"in literal {self.lit.decode()} (expecting '{chr(want)}')")
            self.lit_pos += 1
            if self.lit_pos == len(self.lit):
                self.state = "end_value"


def _go_syntax_error(data: str) -> str | None:
    """Go's ``json.SyntaxError`` message for ``data``, or None if Go finds it valid."""
    scanner = _Scanner()
    try:
        for c in data.encode("utf-8", "surrogateescape"):
            scanner.step(c)
        if scanner.end_top:
            return None
        scanner.step(0x20)  # eof(): a space ends a pending number or literal
    except _Syntax as exc:
        return str(exc)
    return None if scanner.end_top else "unexpected end of JSON input"
