"""Go's builtin template functions (``text/template/funcs.go``) over the value model.

Each builtin is a ``GoFunc`` with Go's own signature, so the executor checks arity and
argument types exactly as Go does; most take ``reflect.Value`` and so receive values
untouched, ``NO_VALUE`` (a missing key) and ``None`` (a nil interface) included. A
builtin reports Go's ``error`` result by raising ``GoError``; the executor wraps it as
``error calling NAME: MESSAGE``. ``and``/``or`` are short-circuited by the executor;
their functions here serve ``call`` and direct use.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from muster.golang import fmt as gofmt
from muster.golang.strconv import is_print
from muster.golang.types import can_be_nil, go_kind, make_int, zero_value
from muster.golang.values import (
    NO_VALUE,
    GoFunc,
    GoInt,
    GoMap,
    GoSlice,
    GoStruct,
    Uint8,
    from_bytes,
    go_backing,
    go_cap,
    go_type_name,
    share_backing,
    to_bytes,
)

__all__ = [
    "BUILTINS",
    "GoError",
    "InterfaceValue",
    "has_string_method",
    "html_escape",
    "indirect_interface",
    "js_escape",
    "printable",
    "slice_index",
    "truth",
    "urlquery_escape",
]


class GoError(Exception):
    """A Go ``error`` value (or a recovered runtime panic) returned by a builtin."""


class InterfaceValue:
    """A ``reflect.Value`` of kind Interface: a value read from an ``interface {}``
    slot, passed as such. Only ``slice``'s indexes receive one (Go's indexArg does
    not look inside interfaces)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def indirect_interface(v: Any) -> Any:
    """The concrete value inside an interface value: a nil interface is invalid."""
    return NO_VALUE if v is None else v


def _type_name(v: Any) -> str:
    """``reflect.Value.Type()`` as Go prints it; ``None`` is a nil ``interface {}``."""
    return "interface {}" if v is None else go_type_name(v)


def truth(v: Any) -> bool:
    """Go's truth (``isTrue``): whether a value is not the zero value of its type.

    Python's own truthiness agrees for the whole value model (empty containers and
    strings, zero numbers, ``None`` and ``NO_VALUE`` are false) except for structs,
    which Go always deems true.
    """
    if isinstance(v, GoStruct):
        return True
    return bool(v)


# -- Boolean logic -------------------------------------------------------------


def _and(arg0: Any, *args: Any) -> Any:
    """The first false argument, or the last one."""
    for v in (arg0, *args):
        if not truth(v):
            return v
    return v


def _or(arg0: Any, *args: Any) -> Any:
    """The first true argument, or the last one."""
    for v in (arg0, *args):
        if truth(v):
            return v
    return v


def _not(arg: Any) -> bool:
    return not truth(arg)


# -- Indexing, slicing, length ---------------------------------------------------


def _is_go_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def slice_index(index: Any, cap: int) -> int:
    """``index`` as a slice/array index no greater than ``cap`` (Go's indexArg)."""
    if _is_go_int(index):
        x = int(index)
        if isinstance(index, GoInt) and not index.signed and x >= 1 << 63:
            x -= 1 << 64  # int64(index.Uint())
    elif index is NO_VALUE:
        raise GoError("cannot index slice/array with nil")
    elif isinstance(index, InterfaceValue):
        raise GoError("cannot index slice/array with type interface {}")
    else:
        raise GoError(f"cannot index slice/array with type {_type_name(index)}")
    if x < 0 or x > cap:
        raise GoError(f"index out of range: {x}")
    return x


def _prepare_arg(value: Any, arg_type: str) -> Any:
    """``value`` made usable as an argument of ``arg_type`` (Go's prepareArg)."""
    if value is NO_VALUE:
        if not can_be_nil(arg_type):
            raise GoError(f"value is nil; should be of type {arg_type}")
        value = zero_value(arg_type)
        if arg_type == "reflect.Value":
            return value
    if arg_type in ("interface {}", "any"):
        return value
    vt = go_type_name(value)
    if vt == arg_type or (isinstance(value, GoSlice) and value.name and arg_type == "[]" + value.elem):
        return value
    if _is_go_int(value) and go_kind(arg_type) in ("int", "uint"):
        return make_int(arg_type, value)
    raise GoError(f"value has type {vt}; should be {arg_type}")


def _map_types(m: dict[Any, Any]) -> tuple[str, str]:
    if isinstance(m, GoMap):
        return m.key, m.elem
    return "string", "interface {}"


def _index(item: Any, *indexes: Any) -> Any:
    """``index x 1 2`` is ``x[1][2]``: each item a map, slice, array or string."""
    item = indirect_interface(item)
    if item is NO_VALUE:
        raise GoError("index of untyped nil")
    for index in indexes:
        index = indirect_interface(index)
        if item is None:
            raise GoError("index of nil pointer")
        if isinstance(item, str):
            b = to_bytes(item)
            x = slice_index(index, len(b))
            if x == len(b):
                raise GoError("reflect: string index out of range")
            item = Uint8(b[x])
        elif isinstance(item, list):
            x = slice_index(index, len(item))
            if x == len(item):
                raise GoError("reflect: slice index out of range")
            item = item[x]
        elif isinstance(item, dict):
            key_type, elem_type = _map_types(item)
            key = _prepare_arg(index, key_type)
            item = item[key] if key in item else zero_value(elem_type)
        else:
            raise GoError(f"can't index item of type {_type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    """``slice x 1 2`` is ``x[1:2]``; strings are sliced by bytes."""
    item = indirect_interface(item)
    if item is NO_VALUE:
        raise GoError("slice of untyped nil")
    if len(indexes) > 3:
        raise GoError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise GoError("cannot 3-index slice a string")
        b = to_bytes(item)
        cap = len(b)
    elif isinstance(item, list):
        # Go bounds the indexes by the capacity, not the length: x[1:4] of a
        # 3-element JSON array (capacity 4) reaches a nil beyond its end.
        cap = go_cap(item)
    else:
        raise GoError(f"can't slice item of type {_type_name(item)}")
    idx = [0, len(b) if isinstance(item, str) else len(item), cap]
    for i, index in enumerate(indexes):
        idx[i] = slice_index(index, cap)
    # given item[i:j], make sure i <= j.
    if idx[0] > idx[1]:
        raise GoError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise GoError(f"invalid slice index: {idx[1]} > {idx[2]}")
    if isinstance(item, str):
        return from_bytes(b[idx[0] : idx[1]])
    # The result shares the backing array: its capacity runs to cap(item), or to
    # the third index.
    backing = go_backing(item)
    elem = item.elem if isinstance(item, GoSlice) else "interface {}"
    end = idx[2] if len(indexes) == 3 else cap
    # Slicing a nil slice (only ever [0:0]) keeps its nil data pointer.
    is_nil = isinstance(item, GoSlice) and item.nil
    name = item.name if isinstance(item, GoSlice) else ""
    view = GoSlice(backing[idx[0] : idx[1]], elem, tail=backing[idx[1] : end], nil=is_nil, name=name)
    if isinstance(item, GoSlice):
        share_backing(item, view, idx[0])  # in-place sorts of either show through the other
    return view


def _length(item: Any) -> int:
    if item is None:
        raise GoError("len of nil pointer")
    if isinstance(item, str):
        return len(item) if item.isascii() else len(to_bytes(item))
    if isinstance(item, (list, dict)):
        return len(item)
    if item is NO_VALUE:
        # Go calls Type() on the invalid value and panics; the panic is the error.
        raise GoError("reflect: call of reflect.Value.Type on zero Value")
    raise GoError(f"len of type {go_type_name(item)}")


# -- Function invocation ---------------------------------------------------------


def _call(fn: Any, *args: Any) -> Any:
    """``call f a b`` is ``f(a, b)``, with ``prepareArg``'s conversions."""
    fn = indirect_interface(fn)
    if fn is NO_VALUE:
        raise GoError("call of nil")
    if not isinstance(fn, GoFunc):
        raise GoError(f"non-function of type {go_type_name(fn)}")
    num_in = len(fn.params)
    if fn.variadic is not None:
        if len(args) < num_in:
            raise GoError(f"wrong number of args: got {len(args)} want at least {num_in}")
    elif len(args) != num_in:
        raise GoError(f"wrong number of args: got {len(args)} want {num_in}")
    argv = []
    for i, arg in enumerate(args):
        arg_type = fn.params[i] if i < num_in else fn.variadic
        assert arg_type is not None
        try:
            argv.append(_prepare_arg(indirect_interface(arg), arg_type))
        except GoError as exc:
            raise GoError(f"arg {i}: {exc}") from None
    return fn.fn(*argv)


# -- Comparison ------------------------------------------------------------------

_BAD_COMPARISON_TYPE: Final = "invalid type for comparison"
_BAD_COMPARISON: Final = "incompatible types for comparison"

# basicKind's kinds; INVALID covers everything that is not a basic type.
_INVALID, _BOOL, _COMPLEX, _INT, _FLOAT, _STRING, _UINT = range(7)


def _basic_kind(v: Any) -> int:
    t = type(v)
    if t is str:
        return _STRING
    if t is int:
        return _INT
    if t is float:
        return _FLOAT
    if t is bool:
        return _BOOL
    if isinstance(v, GoInt):
        return _INT if v.signed else _UINT
    if t is complex:
        return _COMPLEX
    return _INVALID


def _reflect_kind(v: Any) -> str:
    """The reflect.Kind family of a non-basic value, for canCompare."""
    if v is NO_VALUE:
        return "invalid"
    if isinstance(v, list):
        return "slice"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, GoFunc):
        return "func"
    if isinstance(v, GoStruct):
        return "pointer" if v.go_pointer else "struct"
    return type(v).__name__


def _is_nil(v: Any) -> bool:
    """Go's isNil: the invalid value, or a nil slice or map."""
    return v is NO_VALUE or (isinstance(v, (GoSlice, GoMap)) and v.nil)


def _eq(arg1: Any, *arg2: Any) -> bool:
    """``eq a b c`` is ``a == b || a == c``, stopping at the first match."""
    arg1 = indirect_interface(arg1)
    if not arg2:
        raise GoError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in arg2:
        arg = indirect_interface(arg)
        k2 = _basic_kind(arg)
        if k1 != k2:
            # Special case: integers compare regardless of the sign of their type.
            if k1 == _INT and k2 == _UINT or k1 == _UINT and k2 == _INT:
                truth = arg1 == arg
            elif arg1 is not NO_VALUE and arg is not NO_VALUE:
                raise GoError(_BAD_COMPARISON)
            else:
                truth = False
        elif k1 == _STRING or k1 != _INVALID:
            truth = arg1 == arg
        else:
            r1, r2 = _reflect_kind(arg1), _reflect_kind(arg)
            if r1 != r2 and r1 != "invalid" and r2 != "invalid":
                raise GoError(
                    f"non-comparable types {gofmt.sprintf('%s', arg1)}: {go_type_name(arg1)}, "
                    f"{go_type_name(arg)}: {gofmt.format_value(arg)}"
                )
            nil1, nil2 = _is_nil(arg1), _is_nil(arg)
            if nil1 or nil2:
                truth = nil1 == nil2
            else:
                if isinstance(arg, (list, dict, GoFunc)):
                    raise GoError(f"non-comparable type {gofmt.sprintf('%s', arg)}: {go_type_name(arg)}")
                # Pointers are equal when they point to the same struct.
                same = arg1 is arg if isinstance(arg, GoStruct) and arg.go_pointer else arg1 == arg
                truth = type(arg1) is type(arg) and same
        if truth:
            return True
    return False


def _ne(arg1: Any, arg2: Any) -> bool:
    return not _eq(arg1, arg2)


def _lt(arg1: Any, arg2: Any) -> bool:
    arg1 = indirect_interface(arg1)
    k1 = _basic_kind(arg1)
    if k1 == _INVALID:
        raise GoError(_BAD_COMPARISON_TYPE)
    arg2 = indirect_interface(arg2)
    k2 = _basic_kind(arg2)
    if k2 == _INVALID:
        raise GoError(_BAD_COMPARISON_TYPE)
    if k1 != k2:
        # Special case: integers compare regardless of the sign of their type.
        if k1 == _INT and k2 == _UINT or k1 == _UINT and k2 == _INT:
            return bool(arg1 < arg2)
        raise GoError(_BAD_COMPARISON)
    if k1 == _BOOL or k1 == _COMPLEX:
        raise GoError(_BAD_COMPARISON_TYPE)
    if k1 == _STRING:
        # Go compares strings bytewise; code points order the same except raw bytes.
        return bool(arg1 < arg2) if arg1.isascii() and arg2.isascii() else to_bytes(arg1) < to_bytes(arg2)
    return bool(arg1 < arg2)


def _le(arg1: Any, arg2: Any) -> bool:
    return _lt(arg1, arg2) or _eq(arg1, arg2)


def _gt(arg1: Any, arg2: Any) -> bool:
    return not _le(arg1, arg2)


def _ge(arg1: Any, arg2: Any) -> bool:
    return not _lt(arg1, arg2)


# -- Escaping ----------------------------------------------------------------------

_HTML_TABLE: Final = str.maketrans(
    {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
)

_JS_ASCII: Final = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def html_escape(s: str) -> str:
    """Go's ``HTMLEscapeString``: ``" ' & < >`` as entities and NUL as U+FFFD."""
    return s.translate(_HTML_TABLE)


def js_escape(s: str) -> str:
    """Go's ``JSEscapeString`` (1.19: backticks are left alone)."""
    out: list[str] = []
    for ch in s:
        o = ord(ch)
        if o < 0x80:
            esc = _JS_ASCII.get(ch)
            if esc is not None:
                out.append(esc)
            elif o < 0x20:
                out.append(f"\\u00{o:02X}")
            else:
                out.append(ch)
        elif 0xDC80 <= o <= 0xDCFF or is_print(o):
            # A raw invalid byte decodes as U+FFFD, which is printable: kept as is.
            # is_print has Go 1.19's Unicode 13 tables (Python's isprintable has 14).
            out.append(ch)
        else:
            out.append(f"\\u{o:04X}")
    return "".join(out)


_URL_SAFE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def urlquery_escape(s: str) -> str:
    """Go's ``url.QueryEscape``: unreserved bytes kept, space as ``+``, the rest ``%XX``."""
    out: list[str] = []
    for c in to_bytes(s):
        if c in _URL_SAFE:
            out.append(chr(c))
        elif c == 0x20:
            out.append("+")
        else:
            out.append(f"%{c:02X}")
    return "".join(out)


def printable(v: Any) -> Any:
    """Go's printableValue: what an action or an escaper prints for ``v``.

    A nil prints as ``<no value>``; a pointer to a struct prints as the struct itself
    (``{a b}``, not ``&{a b}``) unless the struct is a Stringer, whose ``String`` wins.
    """
    if v is None:
        return "<no value>"
    if isinstance(v, GoStruct) and v.go_pointer and not has_string_method(v):
        pointee = copy.copy(v)
        pointee.__class__ = _pointee_class(type(v))
        return pointee
    return v


def has_string_method(v: GoStruct) -> bool:
    """Whether a struct is a fmt.Stringer (a zero-argument ``String`` go_method)."""
    return getattr(getattr(type(v), "String", None), "__go_params__", None) == ()


_POINTEE_CLASSES: dict[type[GoStruct], type[GoStruct]] = {}


def _pointee_class(cls: type[GoStruct]) -> type[GoStruct]:
    # The same struct type, reached by value: fmt prints {...} rather than &{...}.
    pointee = _POINTEE_CLASSES.get(cls)
    if pointee is None:
        pointee = _POINTEE_CLASSES[cls] = type(cls.__name__, (cls,), {"go_pointer": False, "__slots__": ()})
    return pointee


def _eval_args(args: tuple[Any, ...]) -> str:
    """``fmt.Sprint`` of the arguments, each made printable as an action would."""
    if len(args) == 1 and type(args[0]) is str:
        return args[0]
    return gofmt.sprint(*(printable(a) for a in args))


def _html(*args: Any) -> str:
    return html_escape(_eval_args(args))


def _js(*args: Any) -> str:
    return js_escape(_eval_args(args))


def _urlquery(*args: Any) -> str:
    return urlquery_escape(_eval_args(args))


def _printf(format: str, *args: Any) -> str:
    """fmt.Sprintf; formats of plain ``%s`` verbs over strings skip the full printer."""
    if format.count("%") == len(args) and "%" not in format.replace("%s", ""):
        # Every % is a bare %s: Go's %s of a string is the string itself.
        for a in args:
            if type(a) is not str:
                break
        else:
            return format % args
    return gofmt.sprintf(format, *args)


_V: Final = "reflect.Value"
_ANY: Final = "interface {}"

BUILTINS: Final[dict[str, GoFunc]] = {
    "and": GoFunc(_and, (_V,), variadic=_V, name="and"),
    "call": GoFunc(_call, (_V,), variadic=_V, name="call"),
    "html": GoFunc(_html, (), variadic=_ANY, name="html"),
    "index": GoFunc(_index, (_V,), variadic=_V, name="index"),
    "slice": GoFunc(_slice, (_V,), variadic=_V, name="slice"),
    "js": GoFunc(_js, (), variadic=_ANY, name="js"),
    "len": GoFunc(_length, (_V,), name="len"),
    "not": GoFunc(_not, (_V,), name="not"),
    "or": GoFunc(_or, (_V,), variadic=_V, name="or"),
    "print": GoFunc(gofmt.sprint, (), variadic=_ANY, name="print"),
    "printf": GoFunc(_printf, ("string",), variadic=_ANY, name="printf"),
    "println": GoFunc(gofmt.sprintln, (), variadic=_ANY, name="println"),
    "urlquery": GoFunc(_urlquery, (), variadic=_ANY, name="urlquery"),
    "eq": GoFunc(_eq, (_V,), variadic=_V, name="eq"),
    "ge": GoFunc(_ge, (_V, _V), name="ge"),
    "gt": GoFunc(_gt, (_V, _V), name="gt"),
    "le": GoFunc(_le, (_V, _V), name="le"),
    "lt": GoFunc(_lt, (_V, _V), name="lt"),
    "ne": GoFunc(_ne, (_V, _V), name="ne"),
}
