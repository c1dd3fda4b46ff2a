"""confd's template function map, with confd's Go signatures and exact semantics.

``func_map(store)`` returns every function confd (kelseyhightower HEAD) gives its
templates: the memkv store functions over one ``KVStore`` snapshot plus the helpers
of ``resource/template/template_funcs.go``. Each is a ``GoFunc`` carrying the Go
signature, so the executor type-checks arguments as Go's ``text/template`` does, and
returns values typed as Go would (``[]string``, ``[]int``, ``memkv.KVPairs``...),
which matters for ``%T``, printing and ``reverse``. Errors are raised as exceptions
whose message is the Go error text; the executor wraps them as
``error calling NAME: MESSAGE``.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable
from typing import Any, Final

from muster.confd.dns import SRV, lookup_ip, lookup_srv
from muster.confd.store import KVStore, path_base, path_dir
from muster.golang import sort as gosort, strconv
from muster.golang.json import JSONError, unmarshal_array, unmarshal_object
from muster.golang.strconv import quote
from muster.golang.time import GoTime
from muster.golang.values import GoFunc, GoSlice, appended, share_backing, to_bytes, written
from muster.gotemplate.funcs import GoError  # one Go error type for every template function

__all__ = ["GoError", "JSONError", "func_map", "go_to_lower", "go_to_upper", "helper_funcs", "store_funcs"]

_STR: Final = "string"
_INT: Final = "int"
_ANY: Final = "interface {}"
_KV_ELEM: Final = "memkv.KVPair"
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


def _strings(items: list[str]) -> GoSlice:
    return GoSlice(items, _STR)


def _wrap(x: int) -> int:
    """Go's 64-bit ``int`` arithmetic wraps around."""
    x &= (1 << 64) - 1
    return x - (1 << 64) if x > _INT64_MAX else x


# --- store functions (memkv) ----------------------------------------------------


def store_funcs(store: KVStore) -> dict[str, GoFunc]:
    """memkv's ``FuncMap`` over ``store``: exists get gets getv getvs ls lsdir.

    The store's own methods are the functions: their exceptions (``KeyNotFound``,
    ``gomatch.BadPattern``) already carry memkv's error text.
    """
    return {
        "exists": GoFunc(store.exists, (_STR,), name="exists"),
        "get": GoFunc(store.get, (_STR,), name="get"),
        "gets": GoFunc(store.gets, (_STR,), name="gets"),
        "getv": GoFunc(store.getv, (_STR,), variadic=_STR, name="getv"),
        "getvs": GoFunc(store.getvs, (_STR,), name="getvs"),
        "ls": GoFunc(store.ls, (_STR,), name="ls"),
        "lsdir": GoFunc(store.lsdir, (_STR,), name="lsdir"),
    }


# --- helpers (template_funcs.go) ------------------------------------------------


def go_split(s: str, sep: str) -> GoSlice:
    """``strings.Split``; an empty separator splits into runes (invalid bytes become
    U+FFFD, except in the last element, as Go's ``explode`` does)."""
    if sep:
        return _strings(s.split(sep))
    chars = list(s)
    for i in range(len(chars) - 1):
        if 0xDC80 <= ord(chars[i]) <= 0xDCFF:
            chars[i] = "\ufffd"
    return _strings(chars)


def _join(elems: list[str], sep: str) -> str:
    return sep.join(elems)


# Letters whose case pairs arrived in Unicode 14 (Python 3.11's tables); Go 1.19's
# Unicode 13 tables leave them unchanged.
_UNICODE14_CASED: Final = frozenset(
    r
    for lo, hi in (
        (0x2C2F, 0x2C2F),
        (0x2C5F, 0x2C5F),
        (0xA7C0, 0xA7C1),
        (0xA7D0, 0xA7D1),
        (0xA7D6, 0xA7D9),
        (0x10570, 0x1057A),
        (0x1057C, 0x1058A),
        (0x1058C, 0x10592),
        (0x10594, 0x10595),
        (0x10597, 0x105A1),
        (0x105A3, 0x105B1),
        (0x105B3, 0x105B9),
        (0x105BB, 0x105BC),
    )
    for r in range(lo, hi + 1)
)


def _map_case(s: str, upper: bool) -> str:
    """``strings.ToUpper``/``ToLower``: Go's per-rune simple case mapping."""
    if s.isascii():
        return s.upper() if upper else s.lower()
    out = []
    for ch in s:
        if 0xDC80 <= ord(ch) <= 0xDCFF:
            out.append("\ufffd")  # strings.Map rewrites invalid bytes as RuneError
            continue
        if ord(ch) in _UNICODE14_CASED:
            out.append(ch)
            continue
        mapped = ch.upper() if upper else ch.lower()
        if len(mapped) != 1:
            # Python applies full (multi-rune) mappings; Go only simple ones. Where a
            # simple mapping exists it equals the title case (e.g. U+1FB3 -> U+1FBC).
            if upper:
                title = ch.title()
                mapped = title if len(title) == 1 else ch
            else:
                mapped = "i" if ch == "\u0130" else ch
        out.append(mapped)
    return "".join(out)


def go_to_upper(s: str) -> str:
    """``strings.ToUpper``."""
    return _map_case(s, True)


def go_to_lower(s: str) -> str:
    """``strings.ToLower``."""
    return _map_case(s, False)


def _contains(s: str, substr: str) -> bool:
    return substr in s


def _replace(s: str, old: str, new: str, n: int) -> str:
    # str.replace matches strings.Replace, empty ``old`` (insert around runes) included.
    return s.replace(old, new, n)


def _trim_suffix(s: str, suffix: str) -> str:
    return s.removesuffix(suffix)


def _getenv(key: str, *default: str) -> str:
    value = os.environ.get(key, "")
    if value == "":
        return default[0] if default else ""
    return value


def _create_map(*values: Any) -> dict[str, Any]:
    if len(values) % 2:
        raise GoError("invalid map call")
    out: dict[str, Any] = {}
    for i in range(0, len(values), 2):
        key = values[i]
        if not isinstance(key, str):
            raise GoError("map keys must be strings")
        out[key] = values[i + 1]
    return out


def _file_exists(path: str) -> bool:
    # util.IsFileExist: only "does not exist" (ENOENT) counts as missing.
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True
    return True


def _base64_encode(data: str) -> str:
    return binascii.b2a_base64(to_bytes(data), newline=False).decode("ascii")


_B64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_MAP: Final = {c: i for i, c in enumerate(_B64_ALPHABET)}
_NEWLINES: Final = (0x0A, 0x0D)


def _base64_decode(data: str) -> str:
    """``base64.StdEncoding.DecodeString``: padding required, CR/LF skipped, trailing
    bits not checked; errors name the offending byte as Go does (``decodeQuantum``)."""
    src = to_bytes(data)
    out = bytearray()
    si = 0
    n = len(src)
    while si < n:
        quantum: list[int] = []
        while len(quantum) < 4:
            if si == n:
                if not quantum:
                    return out.decode("utf-8", "surrogateescape")
                raise GoError(f"illegal base64 data at input byte {si - len(quantum)}")
            c = src[si]
            si += 1
            if c in _B64_MAP:
                quantum.append(_B64_MAP[c])
                continue
            if c in _NEWLINES:
                continue
            if c != 0x3D or len(quantum) < 2:  # not "=", or padding too early
                raise GoError(f"illegal base64 data at input byte {si - 1}")
            if len(quantum) == 2:  # "==" expected: the second "=" may follow newlines
                while si < n and src[si] in _NEWLINES:
                    si += 1
                if si == n:
                    raise GoError(f"illegal base64 data at input byte {n}")
                if src[si] != 0x3D:
                    raise GoError(f"illegal base64 data at input byte {si - 1}")
                si += 1
            while si < n and src[si] in _NEWLINES:
                si += 1
            if si < n:
                raise GoError(f"illegal base64 data at input byte {si}")  # trailing garbage
            break
        val = 0
        for i, six in enumerate(quantum):
            val |= six << (18 - 6 * i)
        out += val.to_bytes(3, "big")[: len(quantum) - 1]
    return out.decode("utf-8", "surrogateescape")


def parse_bool(s: str) -> bool:
    """``strconv.ParseBool``, failing as a template function does."""
    try:
        return strconv.parse_bool(s)
    except strconv.NumError as err:
        raise GoError(f"strconv.ParseBool: parsing {quote(s)}: {err}") from None


def atoi(s: str) -> int:
    """``strconv.Atoi``, failing as a template function does."""
    try:
        return strconv.atoi(s)
    except strconv.NumError as err:
        raise GoError(f"strconv.Atoi: parsing {quote(s)}: {err}") from None


def _reverse(values: Any) -> Any:
    # confd's type switch reverses only []string and []memkv.KVPair: a named slice
    # type such as memkv.KVPairs (what gets returns) is left as it is.
    if isinstance(values, GoSlice) and not values.name and values.elem in (_STR, _KV_ELEM):
        values.reverse()
        written(values)  # through every slice sharing the backing array
    return values


def _byte_len(s: str) -> int:
    return len(s) if s.isascii() else len(to_bytes(s))


def _sort_by_length(values: list[str]) -> list[str]:
    gosort.sort_by_key(values, _byte_len)
    written(values)
    return values


def _sort_kv_by_length(values: GoSlice) -> GoSlice:
    # Sorts the caller's slice in place, as Go does, and returns it as []memkv.KVPair
    # (a memkv.KVPairs argument converts to the parameter's unnamed type).
    gosort.sort_by_key(values, lambda kv: _byte_len(kv.Key))
    written(values)
    if not values.name:
        return values
    converted = GoSlice(values, _KV_ELEM, tail=values.tail)
    share_backing(values, converted, 0)  # a conversion, not a copy
    return converted


def _add(a: int, b: int) -> int:
    return _wrap(a + b)


def _sub(a: int, b: int) -> int:
    return _wrap(a - b)


def _mul(a: int, b: int) -> int:
    return _wrap(a * b)


def _div(a: int, b: int) -> int:
    if b == 0:
        raise GoError("runtime error: integer divide by zero")
    q = abs(a) // abs(b)
    return _wrap(q if (a >= 0) == (b >= 0) else -q)  # truncated toward zero


def _mod(a: int, b: int) -> int:
    if b == 0:
        raise GoError("runtime error: integer divide by zero")
    r = abs(a) % abs(b)
    return r if a >= 0 else -r  # the sign follows the dividend


def _seq(first: int, last: int) -> GoSlice:
    # confd appends to a nil []int: nil when first > last, capacity as append grows it.
    return appended(range(first, last + 1), _INT, 8, 0)


def _lookup_ip(host: str) -> GoSlice:
    # A failed lookup (Go's LookupIP never succeeds with no address) is a nil
    # []string in confd: it prints as [] and equals nil; else make([]string, n).
    ips = lookup_ip(host)
    return GoSlice(ips, _STR, nil=not ips)


def _filtered_ips(host: str, marker: str) -> GoSlice:
    # confd appends the matches to a nil []string.
    return appended([ip for ip in lookup_ip(host) if marker in ip], _STR, 16, "")


def _lookup_srv(service: str, proto: str, name: str) -> GoSlice:
    records: list[SRV] = lookup_srv(service, proto, name)
    records.sort(key=lambda r: f"{r.Target}{r.Port}{r.Priority}{r.Weight}")
    return GoSlice(records, "*net.SRV")


def helper_funcs() -> dict[str, GoFunc]:
    """The helpers of confd's ``newFuncMap`` (everything but the store functions)."""
    s = (_STR,)
    ss = (_STR, _STR)
    ii = (_INT, _INT)
    table: list[tuple[str, Callable[..., Any], tuple[str, ...], str | None]] = [
        ("base", path_base, s, None),
        ("dir", path_dir, s, None),
        ("split", go_split, ss, None),
        ("join", _join, ("[]string", _STR), None),
        ("json", unmarshal_object, s, None),
        ("jsonArray", unmarshal_array, s, None),
        ("map", _create_map, (), _ANY),
        ("getenv", _getenv, s, _STR),
        ("datetime", GoTime.now, (), None),
        ("toUpper", go_to_upper, s, None),
        ("toLower", go_to_lower, s, None),
        ("contains", _contains, ss, None),
        ("replace", _replace, (_STR, _STR, _STR, _INT), None),
        ("trimSuffix", _trim_suffix, ss, None),
        ("lookupIP", _lookup_ip, s, None),
        ("lookupIPV4", lambda h: _filtered_ips(h, "."), s, None),
        ("lookupIPV6", lambda h: _filtered_ips(h, ":"), s, None),
        ("lookupSRV", _lookup_srv, (_STR, _STR, _STR), None),
        ("fileExists", _file_exists, s, None),
        ("base64Encode", _base64_encode, s, None),
        ("base64Decode", _base64_decode, s, None),
        ("parseBool", parse_bool, s, None),
        ("reverse", _reverse, (_ANY,), None),
        ("sortByLength", _sort_by_length, ("[]string",), None),
        ("sortKVByLength", _sort_kv_by_length, ("[]memkv.KVPair",), None),
        ("add", _add, ii, None),
        ("sub", _sub, ii, None),
        ("mul", _mul, ii, None),
        ("div", _div, ii, None),
        ("mod", _mod, ii, None),
        ("seq", _seq, ii, None),
        ("atoi", atoi, s, None),
    ]
    return {
        name: GoFunc(fn, params, variadic=var, name=name, mutates=name in _IN_PLACE)
        for name, fn, params, var in table
    }


# The helpers that write their slice argument's elements in place: a template calling
# one sees Go's index/range element references change (gotemplate/alias.py).
_IN_PLACE = frozenset({"reverse", "sortByLength", "sortKVByLength"})


def func_map(store: KVStore) -> dict[str, GoFunc]:
    """Every confd template function, the store functions reading ``store``.

    As in confd, the store's functions are added last and win on a name clash.
    """
    funcs = helper_funcs()
    funcs.update(store_funcs(store))
    return funcs
