"""How Python values stand for Go values inside the template engine.

Go templates see typed values (``reflect.Value``); Python values carry less type
information, so the engine uses this mapping everywhere (exec, funcs, gofmt):

=====================  =============================  ==========================
Python                 Go type                        Notes
=====================  =============================  ==========================
``None``               nil (untyped)                  prints ``<nil>``
``NO_VALUE``           invalid reflect.Value          a missing map key: ``<no value>``
``bool``               bool
``int``                int
``float``              float64                        JSON numbers decode to this
``complex``            complex128                     ``1i`` literals
``str``                string                         Go strings are bytes: see below
``list``               []interface {}                 JSON arrays
``dict``               map[string]interface {}        JSON objects
``GoSlice``            []ELEM                         e.g. ``[]string`` from ``split``
``GoMap``              map[KEY]ELEM
``GoInt``/subclasses   int8 ... uint64, rune, byte    e.g. ``index "abc" 0`` is a uint8
``GoStruct``           a named struct                 exported fields and methods
``GoFunc``             func                           for ``call``
=====================  =============================  ==========================

Strings: Go strings are byte strings, usually UTF-8. We keep them as Python ``str``
decoded with ``surrogateescape`` so invalid bytes survive a round trip; byte-level
operations (``len``, ``index``, ``slice``, ``%x``) work on ``to_bytes(s)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Final

__all__ = [
    "NO_VALUE",
    "GoFunc",
    "GoInt",
    "GoMap",
    "GoSlice",
    "GoStruct",
    "Int32",
    "Int64",
    "NoValue",
    "Uint8",
    "from_bytes",
    "go_method",
    "go_type_name",
    "to_bytes",
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
    """An integer of a sized Go type; plain ``int`` is Go's ``int``."""

    go_type: ClassVar[str] = "int"
    bits: ClassVar[int] = 64
    signed: ClassVar[bool] = True


class Int64(GoInt):
    go_type = "int64"


class Int32(GoInt):
    """Go's ``int32``, which is also ``rune``."""

    go_type = "int32"
    bits = 32


class Uint8(GoInt):
    """Go's ``uint8``, which is also ``byte``: what indexing a string yields."""

    go_type = "uint8"
    bits = 8
    signed = False


class GoSlice(list[Any]):
    """A Go slice with a concrete element type, e.g. ``GoSlice(["a"], "string")``."""

    __slots__ = ("elem",)

    def __init__(self, items: Iterable[Any] = (), elem: str = "interface {}") -> None:
        super().__init__(items)
        self.elem = elem


class GoMap(dict[Any, Any]):
    """A Go map with concrete key and element types."""

    __slots__ = ("key", "elem")

    def __init__(self, items: Any = (), key: str = "string", elem: str = "interface {}") -> None:
        super().__init__(items)
        self.key = key
        self.elem = elem


class GoStruct:
    """Base for Go structs exposed to templates.

    ``go_type`` is the qualified name ``%T`` prints; ``go_fields`` lists the exported
    fields in declaration order (``%v`` prints them in that order). Public methods
    whose name starts with a capital letter are callable from templates.
    """

    go_type: ClassVar[str] = "struct"
    go_fields: ClassVar[tuple[str, ...]] = ()
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
    template error ``error calling NAME: MESSAGE``.
    """

    __slots__ = ("fn", "params", "variadic", "name")

    def __init__(
        self,
        fn: Callable[..., Any],
        params: tuple[str, ...] = (),
        *,
        variadic: str | None = None,
        name: str = "",
    ) -> None:
        self.fn = fn
        self.params = params
        self.variadic = variadic
        self.name = name or getattr(fn, "__name__", "func")

    @property
    def signature(self) -> str:
        """The Go spelling of the function type, for ``%T`` and errors."""
        args = list(self.params)
        if self.variadic is not None:
            args.append("..." + self.variadic)
        return f"func({', '.join(args)})"

    def __repr__(self) -> str:
        return f"GoFunc({self.name}, {self.signature})"


def go_method(*params: str, variadic: str | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Mark a ``GoStruct`` method as callable from templates with this Go signature.

    The method name must be the Go name (capitalized), e.g. ``def Format(self, layout)``
    decorated with ``@go_method("string")``; templates call it as ``.Format "2006"``.
    A struct with a ``String`` go-method is a ``fmt.Stringer``: ``%v`` and ``%s`` use it.
    """

    def mark(fn: Callable[..., Any]) -> Any:
        fn.__go_params__ = params  # type: ignore[attr-defined]
        fn.__go_variadic__ = variadic  # type: ignore[attr-defined]
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
            return f"[]{value.elem}"
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
