"""Memoised walking: the executor's ``range``/``with``/``{{template}}`` units run through
a ``Memo`` (memo.py), reusing what an earlier execution printed when nothing it depended
on changed. Mixed into the executor's state (exec.py), like calls.py and fields.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any, Protocol

from muster.gotemplate.control import Break as _Break, Continue as _Continue
from muster.gotemplate.memo import UNFROZEN, Memo, Run, Unit, freeze
from muster.gotemplate.nodes import ListNode, Tree
from muster.gotemplate.plan import Plan

__all__ = ["MemoWalks"]


class _Host(Protocol):
    """What ``MemoWalks`` needs of the executor state it is mixed into."""

    vars: list[list[Any]]
    out: list[str]
    templates: Mapping[str, Tree]

    def walk_list(self, dot: Any, lst: ListNode) -> None: ...

    def _outer_key(self, unit: Unit, own: set[str]) -> Any: ...

    def _memo_unit(self, memo: Memo, table: dict[Any, Any], key: Any, run: Callable[[], None]) -> None: ...

    def _iteration(self, memo: Memo, plan: Plan, elem: Any, mark: int) -> tuple[str, list[Any]]: ...

    def _rerun(
        self,
        memo: Memo,
        table: dict[Any, Any],
        run: Run,
        plan: Plan,
        elem_var: list[Any] | None,
        index_var: list[Any] | None,
        mark: int,
    ) -> None: ...

    def _remap(
        self,
        memo: Memo,
        table: dict[Any, Any],
        elems: list[str],
        plan: Plan,
        elem_var: list[Any] | None,
        mark: int,
    ) -> None: ...


class MemoWalks:
    """The memoised walks; mixed into the executor's ``_State``."""

    __slots__ = ()

    def _outer_key(self: _Host, unit: Unit, own: set[str]) -> Any:
        """The frozen values of the variables ``unit`` reads from outside (not ``own``),
        or ``UNFROZEN`` when one cannot be a key or the unit assigns one."""
        key = []
        for name in sorted(unit.names - own):
            for entry in reversed(self.vars):
                if entry[0] == name:
                    break
            else:
                continue  # declared inside the body
            if name in unit.assigned:
                return UNFROZEN  # an effect outside the body
            frozen = freeze(entry[1])
            if frozen is UNFROZEN:
                return UNFROZEN
            key.append((name, frozen, entry[2]))
        return tuple(key)

    def _memo_unit(self: _Host, memo: Memo, table: dict[Any, Any], key: Any, run: Callable[[], None]) -> None:
        entry = table.get(key)
        if entry is not None:
            memo.hits += 1
            self.out.append(entry[0])
            if memo.frames:
                memo.frames[-1].extend(entry[1])
            return
        memo.misses += 1
        start = len(self.out)
        frames = memo.frames
        frames.append([])
        try:
            run()
        finally:
            # Reads count for the enclosing unit even when this one ends early.
            reads = frames.pop()
            if frames:
                frames[-1].extend(reads)
        memo.store(table, key, "".join(self.out[start:]), reads)

    def _with_memo(self: _Host, memo: Memo, val: Any, lst: ListNode) -> None:
        unit = memo.unit(lst, self.templates)
        outer = self._outer_key(unit, set()) if unit.safe else UNFROZEN
        key = UNFROZEN if outer is UNFROZEN else freeze(val)
        if key is UNFROZEN:
            self.walk_list(val, lst)
            return
        self._memo_unit(memo, memo.table((id(lst), outer)), key, lambda: self.walk_list(val, lst))

    def _range_memo(
        self: _Host,
        memo: Memo,
        table: dict[Any, Any],
        plan: Plan,
        val: Any,
        items: Any,
        elem_var: list[Any] | None,
        index_var: list[Any] | None,
        mark: int,
    ) -> None:
        """walk_range's loop with each iteration a memoised unit keyed by its element
        (and index, when the body can see it).

        Outside any unit, a range over the same list as last time replays the last
        run's pieces and runs again only the iterations whose entries were invalidated
        (``Run``), so its cost follows the change, not the list.
        """
        frames = memo.frames
        # Each iteration binds the element with the static type walk_range gave it; the
        # body may assign the variable a value of a concrete type (messages tell them apart).
        iface = elem_var is not None and elem_var[2]
        run: Run | None = None
        if not frames and type(val) is not dict:
            run = memo.runs.get(id(table))
            if run is not None and run.same(val):
                self._rerun(memo, table, run, plan, elem_var, index_var, mark)
                return
            memo.runs.pop(id(table), None)
            if index_var is None and run is not None and set(map(type, val)) == {str}:
                # A changed list of strings (a service came or went): look every element
                # up at once; only the new ones run.
                self._remap(memo, table, list(val), plan, elem_var, mark)
                return
            run = Run(list(val))
        out = self.out
        # The enclosing unit's reads, which a reused iteration's reads join.
        outer_reads = frames[-1] if frames else None
        get = table.get
        hits = 0
        for index, elem in items:
            if elem_var is not None:
                elem_var[1] = elem
                elem_var[2] = iface
            if index_var is not None:
                index_var[1] = index
            key = elem if type(elem) is str else freeze(elem)
            if key is not UNFROZEN:
                if index_var is not None:
                    key = (key, freeze(index))
                entry = get(key)
                if entry is not None:
                    hits += 1
                    out.append(entry[0])
                    if outer_reads is not None and entry[1]:
                        outer_reads.extend(entry[1])
                    if run is not None:
                        run.keys.append(key)
                        run.texts.append(entry[0])
                    continue
            memo.misses += 1
            text, reads = self._iteration(memo, plan, elem, mark)
            if key is UNFROZEN:
                run = None
            else:
                memo.store(table, key, text, reads)
                if run is not None:
                    run.keys.append(key)
                    run.texts.append(text)
        memo.hits += hits
        if run is not None:
            memo.save_run(table, run)

    def _iteration(self: _Host, memo: Memo, plan: Plan, elem: Any, mark: int) -> tuple[str, list[Any]]:
        """Run one iteration of a range body as a unit: its text (left in ``out``) and reads."""
        out = self.out
        frames = memo.frames
        start = len(out)
        frames.append([])
        try:
            try:
                for op in plan:
                    t = type(op)
                    if t is str:
                        out.append(op)  # type: ignore[arg-type]
                    elif t is tuple:
                        op[0](self, elem, op[1])  # type: ignore[index,operator]
                    else:
                        op(self, elem)  # type: ignore[operator]
            except _Continue:
                pass
        finally:
            del self.vars[mark:]
            # Reads count for the enclosing unit even when this one ends early.
            reads = frames.pop()
            if frames:
                frames[-1].extend(reads)
        return "".join(out[start:]), reads

    def _remap(
        self: _Host,
        memo: Memo,
        table: dict[Any, Any],
        elems: list[str],
        plan: Plan,
        elem_var: list[Any] | None,
        mark: int,
    ) -> None:
        out = self.out
        iface = elem_var is not None and elem_var[2]
        entries: list[Any] = list(map(table.get, elems))
        run = Run(elems)
        run.keys = list(elems)  # a string element is its own key
        missing = 0
        for i in [i for i, entry in enumerate(entries) if entry is None]:
            entry = table.get(elems[i])  # a repeated element ran already
            if entry is None:
                missing += 1
                if elem_var is not None:
                    elem_var[1] = elems[i]
                    elem_var[2] = iface
                start = len(out)
                try:
                    text, reads = self._iteration(memo, plan, elems[i], mark)
                except _Break:
                    partial = out[start:]
                    del out[start:]
                    out.extend(e[0] for e in entries[:i])
                    out.extend(partial)
                    raise
                del out[start:]
                memo.store(table, elems[i], text, reads)
                entry = table[elems[i]]
            entries[i] = entry
        run.texts = texts = list(map(itemgetter(0), entries))
        memo.misses += missing
        memo.hits += len(elems) - missing
        out.extend(texts)
        memo.save_run(table, run)

    def _rerun(
        self: _Host,
        memo: Memo,
        table: dict[Any, Any],
        run: Run,
        plan: Plan,
        elem_var: list[Any] | None,
        index_var: list[Any] | None,
        mark: int,
    ) -> None:
        out = self.out
        iface = elem_var is not None and elem_var[2]
        todo = memo.stale_positions(table, run)
        for i in todo:
            elem = run.elems[i]
            if elem_var is not None:
                elem_var[1] = elem
                elem_var[2] = iface
            if index_var is not None:
                index_var[1] = i
            start = len(out)
            try:
                text, reads = self._iteration(memo, plan, elem, mark)
            except _Break:
                # The range ends here: the iterations before, then this one's partial text.
                partial = out[start:]
                del out[start:]
                out.extend(run.texts[:i])
                out.extend(partial)
                memo.runs.pop(id(table), None)
                raise
            except BaseException:
                memo.runs.pop(id(table), None)
                raise
            del out[start:]
            memo.store(table, run.keys[i], text, reads)
            run.texts[i] = text
        memo.misses += len(todo)
        memo.hits += len(run.texts) - len(todo)
        out.extend(run.texts)
