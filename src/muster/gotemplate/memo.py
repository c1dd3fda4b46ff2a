"""Memoised execution: reuse a ``range``/``with`` body's or a ``{{template}}`` call's output
from an earlier execution when nothing it depended on changed.

Theory of operation. A *unit* is one range iteration, one taken ``with`` body or one
``{{template}}`` call. What a unit prints depends only on

* its **inputs**: dot, the variables it reads from outside (their values, frozen into a
  hashable key by ``freeze``) and whether dot holds interface values (error messages);
* the **reads** it made through functions the caller declared as recorded reads (confd's
  store functions): each is a hashable token the caller reports with ``note`` while a
  unit runs; the caller later names the tokens whose answer changed (``invalidate``);
* nothing else: a unit whose body (or any template it calls) calls a function that is
  neither pure nor a recorded read (``getenv``, ``datetime``, DNS lookups, user functions
  not declared safe, ``call``), or assigns a variable declared outside it, is never
  memoised. Templates calling in-place mutators (alias mode) are not memoised at all.

A unit that ends by an error or ``{{break}}`` is not stored (``{{continue}}`` ends an
iteration normally), but its reads still count for the enclosing unit. Entries live in
tables keyed by the body's node and the frozen outer inputs; an entry stores its text,
its reads, and stays in its table until one of its reads changes: ``invalidate`` removes
it through a reverse index (read token -> the table and key of each entry that made it),
so a lookup that finds an entry can use it at once. Memory is bounded: entries nobody
asks for any more (a service that left, a variable's old value) are kept only while the
memo holds at most ``slack`` times the entries one execution from scratch made (and never
more than ``max_entries``); past that, it starts over, which also re-measures that size.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Final

from muster.golang.values import NO_VALUE, GoInt, GoMap, GoSlice, GoStruct
from muster.gotemplate.nodes import (
    ActionNode,
    BranchNode,
    ChainNode,
    CommandNode,
    IdentifierNode,
    ListNode,
    Node,
    PipeNode,
    StringNode,
    TemplateNode,
    Tree,
    VariableNode,
)

__all__ = ["Entry", "Memo", "PURE_BUILTINS", "Run", "UNFROZEN", "Unit", "freeze"]

# Go's builtins except ``call`` (which may call anything): they depend on their arguments only.
PURE_BUILTINS: Final = frozenset(
    "and or not len index slice eq ne lt le gt ge print printf println html js urlquery".split()
)

# A printf verb printing an address (fmt's %p, with any flags, width or argument index).
_POINTER_VERB: Final = re.compile(r"%%|%[-+# 0-9.*\[\]]*p")
UNFROZEN: Final = object()  # freeze's answer for a value that cannot be a memo key
_FREEZE_BUDGET: Final = 200_000  # elements frozen per value, at most: a bigger one is not a key


# One memoised unit: its output and the reads it made. A plain tuple of strings and
# tuples, which Python's garbage collector stops tracking: a memo of a 30,000-service
# render holds some 150,000 entries, and a full collection would visit each one.
Entry = tuple[str, tuple[Hashable, ...]]


class Run:
    """A range's last run over a list outside any unit: the elements, each iteration's
    key and text, and (built when first needed) the positions of each key."""

    __slots__ = ("elems", "keys", "texts", "positions", "all_str", "exact")

    def __init__(self, elems: list[Any]) -> None:
        self.elems = elems
        types = set(map(type, elems))
        # Only a string equals a string: a list equal to an all-string one is the same list.
        self.all_str = types <= {str}
        # Element types whose == between two values of the type is exact for templates.
        self.exact = all(_exact_type(t) for t in types)
        self.keys: list[Hashable] = []
        self.texts: list[str] = []
        # A key's position, or its positions when it repeats: ints and tuples, which
        # the collector does not track.
        self.positions: dict[Hashable, int | tuple[int, ...]] | None = None

    def same(self, val: Any) -> bool:
        """Whether ``val`` holds elements no template can tell from this run's. Python's
        ``==`` is not enough: it holds for [1] and [True], [0.0] and [-0.0], [[1]] and [[1.0]]."""
        elems = self.elems
        if elems != val:
            return False
        if self.all_str:
            return True
        if list(map(type, elems)) != list(map(type, val)):
            return False
        if self.exact:
            return True
        for old, new in zip(elems, val, strict=True):
            if _exact_type(type(old)):
                continue
            key = freeze(old)
            if key is UNFROZEN or key != freeze(new):
                return False
        return True


class Unit:
    """What static analysis says of a body: whether it may be memoised, and the variable
    names it reads or assigns (free ones are looked up in the caller's scope)."""

    __slots__ = ("safe", "names", "assigned")

    def __init__(self, safe: bool, names: frozenset[str], assigned: frozenset[str]) -> None:
        self.safe = safe
        self.names = names
        self.assigned = assigned


def _exact_type(t: type) -> bool:
    """Whether two equal values of type ``t`` are the same value to a template (not so for
    floats, 0.0 == -0.0, nor for containers, whose items may differ in type)."""
    if t is str or t is int or t is bool or t is type(None) or issubclass(t, GoInt):
        return True
    return issubclass(t, GoStruct) and t.__name__ == "KVPair"  # two strings


def freeze(value: Any) -> Any:
    """A hashable key that equals another value's key only if templates cannot tell the
    two values apart; ``UNFROZEN`` for values that are too big or of unknown kind."""
    budget = [_FREEZE_BUDGET]
    try:
        return _freeze(value, budget)
    except _Unfreezable:
        return UNFROZEN


class _Unfreezable(Exception):
    pass


def _freeze(v: Any, budget: list[int]) -> Any:
    t = type(v)
    if t is str:
        return v
    budget[0] -= 1
    if budget[0] < 0:
        raise _Unfreezable
    if t is bool or t is int or isinstance(v, GoInt):
        return (t, int(v))  # the type too: True == 1 == 1.0 in Python, not in Go
    if t is float:
        return (t, v.hex())  # hex tells -0.0 from 0.0
    if v is None or v is NO_VALUE:
        return (t,)
    if t is GoSlice:
        return (t, v.elem, v.name, v.nil, _seq(v, budget), _seq(v.tail, budget))
    if t is list:
        return (t, _seq(v, budget))
    if t is dict or t is GoMap:
        if not all(type(k) is str for k in v):
            raise _Unfreezable
        items = tuple((k, _freeze(v[k], budget)) for k in sorted(v))
        if t is GoMap:
            return (t, v.key, v.elem, v.nil, items)
        return (t, items)
    if isinstance(v, GoStruct) and type(v).__name__ == "KVPair":
        return (t, v.Key, v.Value)  # type: ignore[attr-defined]
    raise _Unfreezable


def _seq(items: Iterable[Any], budget: list[int]) -> tuple[Any, ...]:
    return tuple(_freeze(x, budget) for x in items)


class Memo:
    """Memoised outputs of one template set (one parse) across executions.

    ``safe_funcs`` names the functions of the set's function map that a memoised body may
    call: pure ones and recorded reads (whose tokens the caller passes to ``note`` and later
    to ``invalidate``). Builtins other than ``call`` are pure unless the map overrides them.
    Not thread-safe: one execution at a time.
    """

    def __init__(
        self,
        safe_funcs: Iterable[str] = (),
        *,
        max_entries: int = 1_000_000,
        slack: int = 3,
        floor: int = 10_000,
    ) -> None:
        self.safe_funcs = frozenset(safe_funcs)
        self.max_entries = max_entries
        self.slack = slack
        self.floor = floor
        self._baseline = 0  # entries an execution from an empty memo made
        self._fresh = True  # the memo was empty when the last execution started
        self.gen = 0
        # The open units' read lists, innermost last; empty outside any unit.
        self.frames: list[list[Hashable]] = []
        self.tables: dict[Hashable, dict[Hashable, Entry]] = {}
        self.entries = 0
        # read token -> (id(table), key) of the entries that made it: what invalidate
        # removes. A tuple while short (the collector stops tracking tuples), else a list.
        self._readers: dict[Hashable, Any] = {}
        self._by_id: dict[int, dict[Hashable, Entry]] = {}
        # id(table) -> its last Run, and the keys invalidated in that table since.
        self.runs: dict[int, Run] = {}
        self._dirty: dict[int, set[Hashable]] = {}
        self.hits = 0
        self.misses = 0
        self._units: dict[int, Unit] = {}
        self._trees: Mapping[str, Tree] | None = None
        self._tree_ids: tuple[int, ...] = ()
        self._safe: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"<Memo gen={self.gen} entries={self.entries} hits={self.hits} misses={self.misses}>"

    # -- the caller's side ---------------------------------------------------

    def advance(self) -> None:
        """Start a new generation: call before invalidating what changed for the next execution."""
        self.gen += 1

    def invalidate(self, tokens: Iterable[Hashable]) -> None:
        """The answers of these reads changed: drop every entry that made one of them."""
        readers = self._readers
        by_id = self._by_id
        for token in tokens:
            for tid, key in readers.pop(token, ()):
                table = by_id[tid]
                if table.pop(key, None) is not None:
                    self.entries -= 1
                    if tid in self.runs:
                        self._dirty.setdefault(tid, set()).add(key)

    def note(self, token: Hashable) -> None:
        """Record a read made now (ignored outside any unit)."""
        if self.frames:
            self.frames[-1].append(token)

    def reset(self) -> None:
        """Forget every entry (the next execution runs in full)."""
        self.tables.clear()
        self._by_id.clear()
        self._readers.clear()
        self.runs.clear()
        self._dirty.clear()
        self.entries = 0

    # -- the executor's side -------------------------------------------------

    def start(self, templates: Mapping[str, Tree], funcs: Mapping[str, Any]) -> None:
        """Bind to the executing template set; a changed set forgets everything."""
        ids = tuple(id(t) for t in templates.values())
        if templates is not self._trees or ids != self._tree_ids:
            self._trees, self._tree_ids = templates, ids
            self._units.clear()
            self.reset()
            self._safe = (PURE_BUILTINS - funcs.keys()) | (self.safe_funcs & funcs.keys())
        self.frames.clear()
        if self._fresh:
            self._baseline = self.entries
        if self.entries > min(self.max_entries, max(self.floor, self.slack * self._baseline)):
            self.reset()
        self._fresh = self.entries == 0

    def table(self, key: Hashable) -> dict[Hashable, Entry]:
        table = self.tables.get(key)
        if table is None:
            table = self.tables[key] = {}
            self._by_id[id(table)] = table
        return table

    def store(self, table: dict[Hashable, Entry], key: Hashable, text: str, reads: list[Hashable]) -> None:
        """Keep a unit's output under ``key`` until one of its ``reads`` changes.

        Not in an execution from scratch when the unit runs inside another: the enclosing
        unit's entry is reused whole until it changes, and an inner entry would only help
        it run again, at the cost of a second copy of its text (a 30,000-service seed render
        kept 90,000 such server lines, 16 MB). They are kept from the next execution on.
        """
        if self._fresh and self.frames:
            return
        if key not in table:
            self.entries += 1
        table[key] = (text, tuple(reads))
        readers = self._readers
        pair = (id(table), key)
        for token in set(reads):
            found = readers.get(token)
            if found is None:
                readers[token] = (pair,)
            elif type(found) is tuple and len(found) < 8:
                readers[token] = (*found, pair)
            elif type(found) is tuple:
                readers[token] = [*found, pair]
            else:
                found.append(pair)

    def save_run(self, table: dict[Hashable, Entry], run: Run) -> None:
        """Keep ``run`` as the table's last run; later invalidations mark its positions."""
        self.runs[id(table)] = run
        self._dirty.pop(id(table), None)

    def stale_positions(self, table: dict[Hashable, Entry], run: Run) -> list[int]:
        """The positions of ``run`` whose entries were invalidated since it was saved, in order."""
        dirty = self._dirty.pop(id(table), None)
        if not dirty:
            return []
        if run.positions is None:
            positions: dict[Hashable, int | tuple[int, ...]] = {}
            for i, key in enumerate(run.keys):
                seen = positions.setdefault(key, i)
                if seen != i:
                    positions[key] = (*seen, i) if isinstance(seen, tuple) else (seen, i)
            run.positions = positions
        found: list[int] = []
        for key in dirty:
            at = run.positions.get(key, ())
            found.extend(at if isinstance(at, tuple) else (at,))
        return sorted(found)

    def unit(self, body: Node, templates: Mapping[str, Tree]) -> Unit:
        """The static analysis of ``body`` (a list node or a template's root), cached."""
        found = self._units.get(id(body))
        if found is None:
            found = self._units[id(body)] = self._analyse(body, templates)
        return found

    def _analyse(self, body: Node, templates: Mapping[str, Tree]) -> Unit:
        names: set[str] = set()
        assigned: set[str] = set()
        safe = True
        seen_templates: set[str] = set()
        stack: list[tuple[Node, bool]] = [(body, True)]  # (node, in the body's own scope)
        while stack:
            node, own = stack.pop()
            match node:
                case ListNode():
                    stack.extend((n, own) for n in node.nodes)
                case ActionNode():
                    if node.pipe is not None:
                        stack.append((node.pipe, own))
                case PipeNode():
                    for var in node.decl:
                        if own:
                            names.add(var.ident[0])
                            if node.is_assign:
                                assigned.add(var.ident[0])
                    stack.extend((c, own) for c in node.cmds)
                case CommandNode():
                    stack.extend((a, own) for a in node.args)
                case ChainNode():
                    if node.node is not None:
                        stack.append((node.node, own))
                case VariableNode():
                    if own:
                        names.add(node.ident[0])
                case IdentifierNode():
                    if node.ident not in self._safe:
                        safe = False
                case StringNode():
                    if any(m.group() != "%%" for m in _POINTER_VERB.finditer(node.text)):
                        safe = False  # %p prints an address: a reused one would be stale
                case BranchNode():
                    for child in (node.pipe, node.list, node.else_list):
                        if child is not None:
                            stack.append((child, own))
                case TemplateNode():
                    if node.pipe is not None:
                        stack.append((node.pipe, own))
                    # The callee's functions count; its variables are its own.
                    tree = templates.get(node.name)
                    if tree is not None and node.name not in seen_templates:
                        seen_templates.add(node.name)
                        stack.append((tree.root, False))
        return Unit(safe, frozenset(names), frozenset(assigned))
