"""Facts about Go types the executor needs: kinds, nil-ability, zero values, conversions.

Parameters of template functions are declared by Go type name (``GoFunc`` params such
as ``"int64"``, ``"[]string"``, ``"interface {}"``); these helpers answer what Go's
reflection would about such a type, and order map keys as Go's ``fmtsort`` does.
"""

from __future__ import annotations

from typing import Any, Final

from muster.golang.values import (
    NO_VALUE,
    GoInt,
    GoMap,
    GoSlice,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Uintptr,
    go_type_name,
    to_bytes,
)

__all__ = ["can_be_nil", "go_kind", "make_int", "sorted_keys", "zero_value"]


# Go's int types by name, with the aliases ``byte`` and ``rune``; ``int`` is plain ``int``.
_INT_TYPES: Final[dict[str, type[int]]] = {
    "int": int,
    "int8": Int8,
    "int16": Int16,
    "int32": Int32,
    "rune": Int32,
    "int64": Int64,
    "uint": Uint,
    "uint8": Uint8,
    "byte": Uint8,
    "uint16": Uint16,
    "uint32": Uint32,
    "uint64": Uint64,
    "uintptr": Uintptr,
}

_BASIC_KINDS: Final[dict[str, str]] = {
    "bool": "bool",
    "string": "string",
    "float32": "float",
    "float64": "float",
    "complex64": "complex",
    "complex128": "complex",
    "interface {}": "interface",
    "any": "interface",
    "error": "interface",
    "reflect.Value": "reflect.Value",
}


_COMPOSITE_KINDS: Final = (
    ("[]", "slice"),
    ("map[", "map"),
    ("func(", "func"),
    ("*", "pointer"),
    ("chan ", "chan"),
)


def _int_type(type_name: str) -> type[int] | None:
    # The basic integer types, else a named one (time.Duration) declared as a GoInt.
    return _INT_TYPES.get(type_name) or GoInt.by_name.get(type_name)


def go_kind(type_name: str) -> str:
    """The ``reflect.Kind`` family of a Go type name, as the executor needs it.

    One of ``bool string int uint float complex interface reflect.Value slice map
    func pointer chan struct``; named types the value model does not know are
    ``struct``.
    """
    kind = _BASIC_KINDS.get(type_name)
    if kind is not None:
        return kind
    int_type = _int_type(type_name)
    if int_type is not None:
        return "int" if int_type is int or int_type.signed else "uint"  # type: ignore[attr-defined]
    for prefix, kind in (
        ("[]", "slice"),
        ("map[", "map"),
        ("func(", "func"),
        ("*", "pointer"),
        ("chan ", "chan"),
    ):
        if type_name.startswith(prefix):
            return kind
    return "struct"


def can_be_nil(type_name: str) -> bool:
    """Whether untyped nil converts to this type (Go's ``canBeNil``)."""
    return go_kind(type_name) in ("interface", "reflect.Value", "slice", "map", "func", "pointer", "chan")


def make_int(type_name: str, value: int) -> int:
    """``value`` as a Go integer of ``type_name``, wrapping like a Go conversion does."""
    int_type = _int_type(type_name)
    assert int_type is not None, type_name
    if int_type is int:
        bits, signed = 64, True
    else:
        bits, signed = int_type.bits, int_type.signed  # type: ignore[attr-defined]
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return int_type(value)


def _split_map_type(type_name: str) -> tuple[str, str]:
    """``("K", "V")`` of ``map[K]V``, minding brackets nested in ``K``."""
    depth = 0
    for i in range(4, len(type_name)):
        c = type_name[i]
        if c == "[":
            depth += 1
        elif c == "]":
            if depth == 0:
                return type_name[4:i], type_name[i + 1 :]
            depth -= 1
    raise ValueError(f"malformed map type {type_name!r}")


def zero_value(type_name: str) -> Any:
    """Go's zero value of ``type_name`` (``reflect.Zero``) in the value model.

    Nil slices and maps become empty typed containers flagged ``nil`` (they print and
    test as empty ones); nil pointers, funcs and interfaces become ``None``. ``reflect.Value``'s zero is
    the invalid value, ``NO_VALUE``. Structs the model cannot build are ``None``.
    """
    match go_kind(type_name):
        case "string":
            return ""
        case "bool":
            return False
        case "int" | "uint":
            return make_int(type_name, 0)
        case "float":
            return 0.0
        case "complex":
            return 0j
        case "reflect.Value":
            return NO_VALUE
        case "slice":
            return GoSlice((), type_name[2:], nil=True)
        case "map":
            key, elem = _split_map_type(type_name)
            return GoMap((), key, elem, nil=True)
    return None


def _key_order(key: Any) -> tuple[int, Any]:
    """A sort key that orders map keys as Go's ``internal/fmtsort`` does per type."""
    match key:
        case str():
            return (3, to_bytes(key))
        case bool():
            return (0, key)
        case float():
            # NaN sorts before every other float (fmtsort.floatCompare).
            return (2, (0, 0.0) if key != key else (1, key))
        case int():
            return (1, key)
    # Keys of other types (interface-keyed maps): fmtsort orders by type, then value.
    return (4, (go_type_name(key), repr(key)))


def sorted_keys(m: dict[Any, Any]) -> list[Any]:
    """The keys of a Go map in the order ``range`` and ``fmt`` visit them.

    Strings sort bytewise (``"Z" < "a" < "é"``, and raw bytes after all of those), as
    Go compares strings; numbers numerically.
    """
    if type(m) is dict:
        return sorted(m, key=to_bytes)
    return sorted(m, key=_key_order)
