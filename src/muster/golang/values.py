"""How Python values stand for Go values inside the template engine.

Go templates see typed values (``reflect.Value``); Python values carry less type
information, so the engine uses this mapping everywhere (exec, funcs, gofmt):

=====================  =============================  ==========================
Python                 Go type                        Notes
=====================  =============================  ==========================
``None``               nil interface {} (or pointer)  a JSON ``null``; prints ``<nil>``
``NO_VALUE``           invalid reflect.Value          a missing map key: ``<no value>``
``bool``               bool
``int``                int
``float``              float64                        JSON numbers decode to this
``complex``            complex128                     ``1i`` literals
``str``                string                         Go strings are bytes: see below
``list``               []interface {}                 JSON arrays (capacity as decoded)
``dict``               map[string]interface {}        JSON objects
``GoSlice``            []ELEM                         e.g. ``[]string`` from ``split``
``GoMap``              map[KEY]ELEM                   both may be ``nil=True``
``GoInt``/subclasses   int8 ... uint64, rune, byte    e.g. ``index "abc" 0`` is a uint8
``GoStruct``           a named struct                 exported fields and methods
``GoFunc``             func                           for ``call``
=====================  =============================  ==========================

``None`` versus ``NO_VALUE``: an element read from an ``interface {}`` container is
an interface value, so a JSON ``null`` is a *nil interface* (``None``), while a
missing key is no value at all (``NO_VALUE``). Go tells them apart: ``.a.b`` through
a ``null`` is an error, through a missing key it is ``<no value>``. A pipeline's
result is never ``None`` (Go "digs" interfaces: ``{{.null}}`` prints ``<no value>``).

Strings: Go strings are byte strings, usually UTF-8. We keep them as Python ``str``
decoded with ``surrogateescape`` so invalid bytes survive a round trip; byte-level
operations (``len``, ``index``, ``slice``, ``%x``) work on ``to_bytes(s)``.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Final

__all__ = [
    "GoArray",
    "GoFunc",
    "GoInt",
    "GoMap",
    "GoSlice",
    "GoStruct",
    "Int16",
    "Int32",
    "Int64",
    "Int8",
    "NO_VALUE",
    "NoValue",
    "Uint",
    "Uint16",
    "Uint32",
    "Uint64",
    "Uint8",
    "Uintptr",
    "append_cap",
    "appended",
    "appended_tail",
    "from_bytes",
    "go_backing",
    "go_cap",
    "go_method",
    "go_type_name",
    "json_array_cap",
    "share_backing",
    "to_bytes",
    "written",
]


class NoValue:
    """The invalid ``reflect.Value``: what a missing map key evaluates to."""

    _instance: ClassVar[NoValue | None] = None

    def __new__(cls) -> NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Final = NoValue()


class GoInt(int):
    """An integer of a sized or named Go type; plain ``int`` is Go's ``int``.

    Every subclass is registered by its ``go_type`` (``by_name``), so that a function
    parameter declared as, say, ``time.Duration`` takes an integer constant as Go does.
    """

    go_type: ClassVar[str] = "int"
    bits: ClassVar[int] = 64
    signed: ClassVar[bool] = True
    by_name: ClassVar[dict[str, type[GoInt]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        GoInt.by_name.setdefault(cls.go_type, cls)


class Int64(GoInt):
    go_type = "int64"


class Int32(GoInt):
    """Go's ``int32``, which is also ``rune``."""

    go_type = "int32"
    bits = 32


class Int16(GoInt):
    go_type = "int16"
    bits = 16


class Int8(GoInt):
    go_type = "int8"
    bits = 8


class Uint(GoInt):
    go_type = "uint"
    signed = False


class Uint64(GoInt):
    go_type = "uint64"
    signed = False


class Uintptr(GoInt):
    go_type = "uintptr"
    signed = False


class Uint32(GoInt):
    go_type = "uint32"
    bits = 32
    signed = False


class Uint16(GoInt):
    go_type = "uint16"
    bits = 16
    signed = False


class Uint8(GoInt):
    """Go's ``uint8``, which is also ``byte``: what indexing a string yields."""

    go_type = "uint8"
    bits = 8
    signed = False


class GoSlice(list[Any]):
    """A Go slice with a concrete element type, e.g. ``GoSlice(["a"], "string")``.

    Its capacity is its length unless ``tail`` holds the elements of the backing
    array between length and capacity, which ``slice`` can reach (Go's ``s[i:j]``
    bounds ``j`` by ``cap(s)``). ``nil=True`` makes it a nil slice: empty, but equal
    to ``nil`` for ``eq``. ``name`` is the slice's named type, if it has one (confd's
    ``memkv.KVPairs`` is a ``[]memkv.KVPair``): ``%T`` prints it, and the value stays
    assignable to parameters of the unnamed type, as in Go.
    """

    # ``array``/``offset`` (unset until ``share_backing``) tie slices cut from one
    # another to their shared backing array.
    __slots__ = ("elem", "tail", "nil", "name", "array", "offset")
    array: GoArray
    offset: int

    def __init__(
        self,
        items: Iterable[Any] = (),
        elem: str = "interface {}",
        *,
        tail: Iterable[Any] = (),
        nil: bool = False,
        name: str = "",
    ) -> None:
        list.__init__(self, items)  # not super(): a little cheaper, and GoSlices are made per call
        self.elem = elem
        self.tail = tail if type(tail) is tuple else tuple(tail)
        self.nil = nil
        self.name = name


class GoArray:
    """The backing array of GoSlices that ``slice`` cut from one another.

    Each GoSlice keeps its own elements, which is what reading costs nothing for;
    the only writers, confd's in-place ``reverse`` and sorts, call ``written``
    after changing a slice, which stores its elements here and refreshes every
    other slice over the array, as Go's shared backing array would show them.
    """

    __slots__ = ("items", "views")

    def __init__(self, items: list[Any]) -> None:
        self.items = items
        self.views: list[GoSlice] = []


def share_backing(original: GoSlice, view: GoSlice, start: int) -> None:
    """Record that ``view`` is ``original[start:...]``, over the same backing array."""
    array: GoArray | None = getattr(original, "array", None)
    if array is None:
        array = original.array = GoArray(go_backing(original))
        original.offset = 0
        array.views.append(original)
    view.array = array
    view.offset = original.offset + start
    array.views.append(view)


def written(s: list[Any]) -> None:
    """Show in-place changes to ``s``'s elements through every slice sharing its array."""
    array: GoArray | None = getattr(s, "array", None)
    if array is None:
        return
    items = array.items
    offset: int = s.offset  # type: ignore[attr-defined]
    items[offset : offset + len(s)] = s
    for view in array.views:
        if view is not s:
            start, end = view.offset, view.offset + len(view)
            view[:] = items[start:end]
            view.tail = tuple(items[end : end + len(view.tail)])


class GoMap(dict[Any, Any]):
    """A Go map with concrete key and element types; ``nil=True`` for a nil map."""

    __slots__ = ("key", "elem", "nil")

    def __init__(
        self, items: Any = (), key: str = "string", elem: str = "interface {}", *, nil: bool = False
    ) -> None:
        super().__init__(items)
        self.key = key
        self.elem = elem
        self.nil = nil


class GoStruct:
    """Base for Go structs exposed to templates.

    ``go_type`` is the qualified name ``%T`` prints; ``go_fields`` lists the exported
    fields in declaration order (``%v`` prints them in that order). Public methods
    whose name starts with a capital letter are callable from templates.
    """

    go_type: ClassVar[str] = "struct"
    go_fields: ClassVar[tuple[str, ...]] = ()
    # Declared types of fields whose static type matters to templates: an
    # ``interface {}`` field is named so in error messages, as Go does.
    go_field_types: ClassVar[Mapping[str, str]] = {}
    # Pointer receivers print as &{...} with %v (Go prints a pointer-to-struct that way).
    go_pointer: ClassVar[bool] = False


class GoFunc:
    """A Go function value: a Python callable plus the Go signature the executor checks.

    ``params`` are Go type names (as ``go_type_name`` spells them) of the fixed
    parameters and ``variadic`` the element type of a final ``...T`` parameter. Special
    names: ``"interface {}"`` accepts any value (a missing value arrives as ``None``);
    ``"reflect.Value"`` passes the value through untouched, ``NO_VALUE`` included, as
    Go's builtins receive ``reflect.Value``. The executor converts untyped constants
    and rejects values of the wrong type before calling ``fn``. ``fn`` signals Go's
    error result (or a panic) by raising any exception; its message becomes the
    template error ``error calling NAME: MESSAGE``. ``mutates`` marks a function that
    writes a slice argument's elements in place (confd's ``reverse``): templates
    calling one run with Go's element references (see alias.py).
    """

    __slots__ = ("fn", "params", "variadic", "name", "result", "mutates")

    def __init__(
        self,
        fn: Callable[..., Any],
        params: tuple[str, ...] = (),
        *,
        variadic: str | None = None,
        name: str = "",
        result: str = "",
        mutates: bool = False,
    ) -> None:
        self.fn = fn
        self.params = params
        self.variadic = variadic
        self.name = name or getattr(fn, "__name__", "func")
        # The Go result type(s), e.g. "string" or "(string, error)": only printed.
        self.result = result
        self.mutates = mutates

    @property
    def signature(self) -> str:
        """The Go spelling of the function type, for ``%T`` and errors."""
        args = list(self.params)
        if self.variadic is not None:
            args.append("..." + self.variadic)
        sig = f"func({', '.join(args)})"
        return f"{sig} {self.result}" if self.result else sig

    def __repr__(self) -> str:
        return f"GoFunc({self.name}, {self.signature})"


def go_method(
    *params: str, variadic: str | None = None, results: int = 1
) -> Callable[[Callable[..., Any]], Any]:
    """Mark a ``GoStruct`` method as callable from templates with this Go signature.

    The method name must be the Go name (capitalized), e.g. ``def Format(self, layout)``
    decorated with ``@go_method("string")``; templates call it as ``.Format "2006"``.
    A struct with a ``String`` go-method is a ``fmt.Stringer``: ``%v`` and ``%s`` use it.
    Any named type may have go-methods (``time.Month`` is a ``GoInt`` with ``String``).
    ``results`` counts the Go results other than a final ``error`` (which the method
    signals by raising): a method such as ``Zone() (string, int)`` has 2, and calling
    it from a template is Go's error "can't call method/function with 2 results".
    """

    def mark(fn: Callable[..., Any]) -> Any:
        fn.__go_params__ = params  # type: ignore[attr-defined]
        fn.__go_variadic__ = variadic  # type: ignore[attr-defined]
        fn.__go_results__ = results  # type: ignore[attr-defined]
        return fn

    return mark


def to_bytes(s: str) -> bytes:
    """The Go bytes of a template string."""
    return s.encode("utf-8", "surrogateescape")


def from_bytes(b: bytes) -> str:
    """A template string from Go bytes, keeping invalid UTF-8 intact."""
    return b.decode("utf-8", "surrogateescape")


def go_type_name(value: Any) -> str:
    """The name Go's ``%T`` prints for ``value``."""
    match value:
        case None | NoValue():
            return "<nil>"
        case bool():
            return "bool"
        case GoInt():
            return value.go_type
        case int():
            return "int"
        case float():
            return "float64"
        case complex():
            return "complex128"
        case str():
            return "string"
        case GoSlice():
            return value.name or f"[]{value.elem}"
        case list():
            return "[]interface {}"
        case GoMap():
            return f"map[{value.key}]{value.elem}"
        case dict():
            return "map[string]interface {}"
        case GoStruct():
            return ("*" if value.go_pointer else "") + value.go_type
        case GoFunc():
            return value.signature
    return type(value).__name__


# Go 1.19 runtime size classes (runtime/sizeclasses.go class_to_size): an allocation
# of up to 32 KiB gets the smallest class that fits, a larger one whole 8 KiB pages.
_SIZE_CLASSES: Final = (
    0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288,
    320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536,
    1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192,
    9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576,
    27264, 28672, 32768,
)  # fmt: skip


def _roundupsize(size: int) -> int:
    if size < 32768:
        return _SIZE_CLASSES[bisect_left(_SIZE_CLASSES, size)]
    return -(-size // 8192) * 8192


@functools.lru_cache(maxsize=1024)
def append_cap(n: int, elem_size: int) -> int:
    """``cap()`` of a slice built by ``n`` one-at-a-time ``append`` calls from empty.

    This is where Go 1.19's ``growslice`` leaves it for elements of ``elem_size``
    bytes (8 for int, 16 for string or interface {}, 32 for a two-string struct):
    doubling below 256 elements, ~1.25x above, each allocation rounded up to the
    runtime's size class. Go's ``slice`` builtin can reach up to this capacity.
    """
    cap = 0
    while cap < n:
        needed, newcap = cap + 1, 2 * cap
        if needed > newcap:
            newcap = needed
        elif cap >= 256:
            newcap = cap
            while newcap < needed:
                newcap += (newcap + 768) // 4
        cap = _roundupsize(newcap * elem_size) // elem_size
    return cap


def json_array_cap(n: int) -> int:
    """``cap()`` of an ``n``-element ``[]interface {}`` decoded by ``encoding/json``.

    The decoder appends to ``make([]any, 0)``: 3 elements have capacity 4, 513 have 848.
    """
    return append_cap(n, 16)


def appended(
    items: Iterable[Any],
    elem: str,
    elem_size: int,
    zero: Any = None,
    *,
    from_nil: bool = True,
    name: str = "",
) -> GoSlice:
    """A ``GoSlice`` as Go's ``append`` builds it one element at a time from nil.

    Its capacity is ``append_cap`` (the tail holds ``zero``, the element type's zero
    value, e.g. ``""``); with no items it is a nil slice, as ``var s []T`` stays, or
    an empty one when ``from_nil`` is false (the appends started from ``make([]T, 0)``).
    ``appended(keys, "string", 16, "", from_nil=False)`` is memkv's ``ls`` result.
    ``name`` is the slice's named type, if any.
    """
    values = items if type(items) is list else list(items)
    if not values:
        return GoSlice((), elem, nil=from_nil, name=name)
    return GoSlice(values, elem, tail=appended_tail(len(values), elem_size, zero), name=name)


@functools.lru_cache(maxsize=1024)
def appended_tail(n: int, elem_size: int, zero: Any) -> tuple[Any, ...]:
    """The ``tail`` of ``appended`` for ``n`` items: zeros from len up to cap (immutable, shared)."""
    return (zero,) * (append_cap(n, elem_size) - n)


def go_cap(s: list[Any]) -> int:
    """``cap(s)``: a plain list is a JSON-decoded ``[]interface {}``."""
    if isinstance(s, GoSlice):
        return len(s) + len(s.tail)
    return json_array_cap(len(s))


def go_backing(s: list[Any]) -> list[Any]:
    """The elements of ``s``'s backing array up to ``cap(s)``; beyond ``len`` they are zero."""
    if isinstance(s, GoSlice):
        return [*s, *s.tail]
    return [*s, *([None] * (json_array_cap(len(s)) - len(s)))]
