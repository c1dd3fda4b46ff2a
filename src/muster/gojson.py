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

from muster.gotemplate.gostrconv import quote

__all__ = ["JSONError", "decode", "unmarshal_array", "unmarshal_object"]


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


def _may_overflow(data: str) -> bool:
    # Only an exponent of 3+ digits or a run of 300+ digits can exceed float64.
    return "e" in data or "E" in data or len(data) > 300


def decode(data: str) -> Any:
    """``json.Unmarshal`` into ``interface{}``: objects -> dict, arrays -> list, every
    number -> float; Go's syntax rules (no NaN/Infinity)."""
    careful = _may_overflow(data)
    if not careful:
        # The C scanner straight away; anything unusual takes the full path below,
        # which also produces the error.
        try:
            value, end = _FAST_SCAN(data, 0)
        except (StopIteration, ValueError, RecursionError):
            pass
        else:
            if end == len(data) or not data[end:].strip(" \t\r\n"):
                return _repaired(data, value)
    try:
        value = (_CAREFUL_JSON if careful else _FAST_JSON).decode(data)
    except json.JSONDecodeError as exc:
        raise JSONError(_syntax_message(data, exc.pos, exc.msg)) from None
    except RecursionError:
        raise JSONError("exceeded max depth") from None
    return _repaired(data, value)


def _repaired(data: str, value: Any) -> Any:
    if data.isascii() and "\\u" not in data:
        return value  # no invalid UTF-8 and no surrogate escapes to repair
    return _fix_strings(value)


def _show(ch: str) -> str:
    # encoding/json's quoteChar
    if ch == "'":
        return "'\\''"
    if ch == '"':
        return "'\"'"
    return f"'{ch}'" if ch.isprintable() else quote(ch)


_CONTEXT: Final = {
    "Extra data": "after top-level value",
    "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
    "Expecting ':' delimiter": "after object key",
    "Expecting ',' delimiter": "after object key:value pair",
}


def _syntax_message(data: str, pos: int, reason: str = "") -> str:
    """A ``json.SyntaxError`` message in Go's words for the common mistakes."""
    if pos >= len(data) or not data.strip(" \t\r\n"):
        return "unexpected end of JSON input"
    ch = data[pos]
    literal = {"n": "null", "t": "true", "f": "false"}.get(ch)
    if literal is not None:
        for j, want in enumerate(literal):
            if pos + j >= len(data):
                return "unexpected end of JSON input"
            if data[pos + j] != want:
                return (
                    f"invalid character {_show(data[pos + j])} in literal {literal} (expecting {_show(want)})"
                )
        pos += len(literal)
        if pos >= len(data):
            return "unexpected end of JSON input"
        return f"invalid character {_show(data[pos])} after top-level value"
    context = _CONTEXT.get(reason, "looking for beginning of value")
    if reason == "Expecting ',' delimiter" and data.lstrip(" \t\r\n")[:1] == "[":
        context = "after array element"
    return f"invalid character {_show(ch)} {context}"


def _unmarshal(data: str, want: type, go_type: str) -> Any:
    value = decode(data)
    if value is None:
        return want()  # a nil map / slice: Unmarshal of null leaves it unset
    if not isinstance(value, want):
        kind = _JSON_KIND.get(type(value), "value")
        raise JSONError(f"json: cannot unmarshal {kind} into Go value of type {go_type}")
    return value


def unmarshal_object(data: str) -> dict[str, Any]:
    """confd's ``json``: into ``map[string]interface {}`` (``null`` gives an empty map)."""
    result: dict[str, Any] = _unmarshal(data, dict, "map[string]interface {}")
    return result


def unmarshal_array(data: str) -> list[Any]:
    """confd's ``jsonArray``: into ``[]interface {}`` (``null`` gives an empty slice)."""
    result: list[Any] = _unmarshal(data, list, "[]interface {}")
    return result
