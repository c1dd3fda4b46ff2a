"""Slice elements as Go's addressable ``reflect.Value``s, for templates that mutate slices.

In Go, ``index`` on a slice returns ``item.Index(i)`` and ``range`` binds dot and
its variable to ``val.Index(i)``: values that *refer to* the element, not copies.
A variable, dot or pending argument taken earlier therefore shows whatever element
is at that index when it is finally read, if the slice was changed in place
meanwhile. A field of such a struct element (``(index $kvs 0).Key``) refers to the
field in place as well. Only functions that write a slice's backing array can make
the difference visible (confd's ``reverse``, ``sortByLength``, ``sortKVByLength``;
their ``GoFunc`` has ``mutates=True``), so the executor runs in *alias mode*, where
``index`` and ``range`` yield the references below, only when a template of the
set calls one (``uses_mutators``); every other execution keeps plain values and its
fast paths. In alias mode the executor stores references in variables and dot,
passes them along as arguments, and reads them (``deref``) where Go reads the
value: printing, truth tests, field access, ranging, and the function call itself.

Elements of ``interface {}`` slices (JSON arrays) are not referenced: a pipeline
"digs" an interface value into a copy, and no function writes such slices (only a
range variable over one would show a write in Go).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from muster.golang.values import GoFunc, GoSlice
from muster.gotemplate.funcs import BUILTINS, indirect_interface, slice_index, truth
from muster.gotemplate.nodes import Tree

__all__ = [
    "ElemRef",
    "FieldRef",
    "INDEX",
    "Ref",
    "alias_index",
    "deref",
    "element_refs",
    "reading_refs",
    "referenceable",
    "uses_mutators",
]

# The builtin index's function, which alias mode replaces by alias_index.
INDEX: Final = BUILTINS["index"].fn


class Ref:
    """A reference to a value stored elsewhere; ``get`` reads it now."""

    __slots__ = ()

    def get(self) -> Any:
        raise NotImplementedError

    def __bool__(self) -> bool:
        # Go's truth of the value referred to (funcs.truth falls back to bool()).
        return truth(self.get())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get()!r})"


class ElemRef(Ref):
    """``seq[index]``, read when used: Go's ``slice.Index(i)``."""

    __slots__ = ("seq", "index")

    def __init__(self, seq: list[Any], index: int) -> None:
        self.seq = seq
        self.index = index

    def get(self) -> Any:
        return self.seq[self.index]


class FieldRef(Ref):
    """Field ``name`` of the struct ``base`` refers to: Go's field of an addressable struct."""

    __slots__ = ("base", "name")

    def __init__(self, base: Ref, name: str) -> None:
        self.base = base
        self.name = name

    def get(self) -> Any:
        return getattr(self.base.get(), self.name)


def deref(v: Any) -> Any:
    """The value ``v`` refers to now, or ``v`` itself if it is no reference."""
    return v.get() if isinstance(v, Ref) else v


def referenceable(seq: Any) -> bool:
    """Whether ``seq``'s elements are referenced in alias mode (typed slices only)."""
    return isinstance(seq, GoSlice) and seq.elem != "interface {}"


def element_refs(seq: list[Any]) -> Iterable[tuple[int, Any]]:
    """``(i, reference to seq[i])`` for a range over ``seq``, reading its length as
    Go does (once: in-place writers keep it)."""
    if not referenceable(seq):
        return enumerate(seq)
    return ((i, ElemRef(seq, i)) for i in range(len(seq)))


def alias_index(item: Any, *indexes: Any) -> Any:
    """The builtin ``index`` in alias mode: the last step into a typed slice is a reference.

    Arguments arrive as they were evaluated (references included): with no index,
    Go returns ``item`` itself, still referring to its element.
    """
    if not indexes:
        return INDEX(item)  # its errors; a reference is a valid item
    item = deref(item)
    indexes = tuple(map(deref, indexes))
    value = INDEX(item, *indexes)  # Go's result or error
    container = INDEX(item, *indexes[:-1])  # cannot fail now
    if referenceable(container):
        return ElemRef(container, slice_index(indirect_interface(indexes[-1]), len(container)))
    return value


def reading_refs(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` called as Go's ``Call`` does in alias mode: with the values its
    arguments refer to at the moment of the call. The builtin ``index`` becomes
    ``alias_index``, which takes references as they are."""
    if fn is INDEX:
        return alias_index

    def call(*args: Any) -> Any:
        return fn(*[a.get() if isinstance(a, Ref) else a for a in args])

    return call


def uses_mutators(templates: Mapping[str, Tree], funcs: Mapping[str, GoFunc]) -> bool:
    """Whether a template of the set calls a function that writes slices in place.

    ``call`` counts too when ``funcs`` has such a function: a function value could
    reach it.
    """
    mutators = {name for name, fn in funcs.items() if fn.mutates}
    if not mutators:
        return False
    mutators.add("call")
    return any(not mutators.isdisjoint(tree.called) for tree in templates.values())
