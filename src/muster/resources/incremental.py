"""Incremental rendering: one resource's template rendered again at a cost in proportion
to the change, byte-identical to a full render.

Theory of operation. ``IncrementalRenderer`` keeps, between renders, a copy of the backend
values it last saw, the ``KVStore`` built from them and a ``Memo`` (gotemplate/memo.py) of the
template's ``range``/``with`` bodies and ``{{template}}`` calls. A render

1. diffs the new values against the last ones (or takes the changed keys it is given),
   and derives the new snapshot with ``KVStore.updated``, touching only changed
   directories;
2. re-asks every recorded store read whose answer those keys could change (``StoreReads``
   indexes each read by the literal key prefix every key it depends on starts with:
   ``getvs "/services/a/servers/*"`` by ``/services/a/servers/``), and tells the memo
   which answers differ;
3. executes the template with the memo: units whose inputs and reads are unchanged print
   their last output, the rest run.

Anything it cannot follow incrementally (the first render, many changes at once, two
backend keys that strip to one template key, the store turning empty or non-canonical)
makes it start over with a full render, so correctness never rests on the fast path.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping
from typing import TYPE_CHECKING, Any, Final

from muster.confd.store import KVPair, KVStore, path_clean
from muster.golang.values import GoSlice, from_bytes, to_bytes
from muster.gotemplate import Template
from muster.gotemplate.memo import Memo
from muster.registry.servicefuncs import SERVICE_READS, Follower
from muster.resources.funcs import strip_key, strip_prefix, template_funcs

if TYPE_CHECKING:
    from muster.registry.guard import Guards

__all__ = ["IncrementalRenderer", "PURE_HELPERS", "STORE_READS", "StoreReads"]

# confd's helpers that depend on their arguments only: a memoised body may call them.
# Not getenv, datetime, fileExists, lookup* (the world may change between renders), nor
# reverse/sortByLength/sortKVByLength (they write their argument; memo.py skips such sets).
PURE_HELPERS: Final = frozenset(
    "base dir split join json jsonArray map toUpper toLower contains replace trimSuffix "
    "base64Encode base64Decode parseBool add sub mul div mod seq atoi dataplane".split()
)
STORE_READS: Final = frozenset("exists get getv gets getvs ls lsdir".split())

_GONE: Final = object()
_SPECIAL: Final = "*?[\\"


def _pattern_prefix(pattern: str) -> str:
    # Every key path.Match accepts starts with the pattern's text before its first
    # special character (literal characters match only themselves).
    cut = min((i for i in map(pattern.find, _SPECIAL) if i >= 0), default=len(pattern))
    return pattern[:cut]


def _answer(value: Any) -> Any:
    """A store function's answer as a value equal to another answer's only if a template
    cannot tell them apart, made of strings and tuples (which the garbage collector stops
    tracking: a 30,000-service render records one read per service)."""
    if isinstance(value, GoSlice):
        items = tuple(x if type(x) is str else _answer(x) for x in value)
        tail = tuple(x if type(x) is str else _answer(x) for x in value.tail)
        return (type(value).__name__, value.elem, value.name, value.nil, items, tail)
    if isinstance(value, KVPair):
        return ("KVPair", value.Key, value.Value)
    return (type(value).__name__, value)


class StoreReads:
    """confd's store functions over a re-pointable snapshot, recording reads for a memo.

    Stands in for a ``KVStore`` in ``func_map`` (its methods are the functions). A read
    made inside a memoised unit is noted as a token, e.g. ``("getvs", pattern)``, and kept
    with its answer under the key prefix it depends on, so ``refresh`` can re-ask exactly
    the reads a change may affect.
    """

    def __init__(self, memo: Memo, max_reads: int = 1_000_000) -> None:
        self.memo = memo
        self.store: KVStore | None = None
        self.max_reads = max_reads
        self._by_prefix: dict[str, dict[Hashable, Any]] = {}
        self._count = 0
        self._baseline: int | None = None  # reads recorded by the render after a reset
        self._followers: list[Follower] = []

    def note(self, token: Hashable) -> None:
        """Record a read whose answer a follower tracks (the service functions')."""
        self.memo.note(token)

    def follow(self, callback: Follower) -> None:
        """Tell ``callback(old, new, changed)`` of each snapshot ``refresh`` moves to; it
        returns the tokens (of ``note``) whose answers changed, or None to start over."""
        self._followers.append(callback)

    def reset(self) -> None:
        """Forget every read and every memoised output."""
        self._by_prefix.clear()
        self._count = 0
        self._baseline = None
        self.memo.reset()

    def refresh(self, store: KVStore, changed: Collection[str]) -> None:
        """Point at ``store``, which differs from the last one in the ``changed`` keys, and
        invalidate the memo's entries whose reads now answer differently."""
        old, self.store = self.store, store
        self.memo.advance()
        followed: list[Hashable] = []
        for follower in self._followers:
            tokens = follower(old, store, changed)
            if tokens is None:
                self.reset()
                return
            followed.extend(tokens)
        self.memo.invalidate(followed)
        # Reads of what left the registry stay recorded; past three times what one render
        # from scratch records (or max_reads), start over.
        if self._baseline is None:
            self._baseline = self._count
        if self._count > min(self.max_reads, max(10_000, 3 * self._baseline)):
            self.reset()
            return
        stale: list[Hashable] = []
        seen: set[Hashable] = set()
        by_prefix = self._by_prefix
        for key in changed:
            for i in range(len(key) + 1):
                bucket = by_prefix.get(key[:i])
                if not bucket:
                    continue
                for token in [t for t in bucket if t not in seen]:
                    seen.add(token)
                    try:
                        answer = self._ask(token)
                    except Exception:  # an error now: the entries reading it must run again
                        stale.append(token)
                        del bucket[token]
                        self._count -= 1
                        continue
                    if answer != bucket[token]:
                        stale.append(token)
                        bucket[token] = answer
        self.memo.invalidate(stale)

    def _ask(self, token: Hashable) -> Any:
        assert isinstance(token, tuple)
        name, *args = token
        if name == "getv":
            return _answer(self._s().getv(args[0], *args[1]))
        method = getattr(self._s(), name)
        return _answer(method(*args))

    def _s(self) -> KVStore:
        assert self.store is not None
        return self.store

    def _record(self, token: tuple[Any, ...], prefix: str, answer: Any) -> Any:
        frames = self.memo.frames
        if frames:
            frames[-1].append(token)
            bucket = self._by_prefix.get(prefix)
            if bucket is None:
                bucket = self._by_prefix[prefix] = {}
            if token not in bucket:
                bucket[token] = _answer(answer)
                self._count += 1
        return answer

    def _dir_prefix(self, path: str) -> str:
        # ls/lsdir of a clean absolute path in a canonical store read the keys below it;
        # otherwise memkv's scan may read any key.
        if self._s().canonical and path.startswith("/"):
            clean = path_clean(path)
            if clean != "/" and path in (clean, clean + "/"):
                return clean
        return ""

    # The confd store functions (KVStore's signatures).

    def exists(self, key: str) -> Any:
        return self._record(("exists", key), key, self._s().exists(key))

    def get(self, key: str) -> Any:
        return self._record(("get", key), key, self._s().get(key))

    def getv(self, key: str, *default: str) -> Any:
        return self._record(("getv", key, default), key, self._s().getv(key, *default))

    def gets(self, pattern: str) -> Any:
        return self._record(("gets", pattern), _pattern_prefix(pattern), self._s().gets(pattern))

    def getvs(self, pattern: str) -> Any:
        return self._record(("getvs", pattern), _pattern_prefix(pattern), self._s().getvs(pattern))

    def ls(self, path: str) -> Any:
        return self._record(("ls", path), self._dir_prefix(path), self._s().ls(path))

    def lsdir(self, path: str) -> Any:
        return self._record(("lsdir", path), self._dir_prefix(path), self._s().lsdir(path))


class IncrementalRenderer:
    """One resource's parsed template plus what it needs to render the next snapshot
    incrementally. Not thread-safe: one render at a time.

    ``max_changes`` bounds the changed keys followed incrementally; more start over.
    """

    def __init__(
        self,
        name: str,
        source: bytes,
        prefix: str,
        *,
        dataplane: str = "reload",
        guards: Guards | None = None,
        max_changes: int = 2_000,
    ) -> None:

        self.prefix = prefix
        self.max_changes = max_changes
        self.memo = Memo(PURE_HELPERS | STORE_READS | SERVICE_READS)
        self.reads = StoreReads(self.memo)
        funcs = template_funcs(self.reads, dataplane, guards)
        self.template: Template = Template(name, funcs=funcs).parse(from_bytes(source))
        # The backend values last rendered (a copy), or None while every backend key is its
        # own template key (the usual prefix "/"): the store's values are then the same.
        self._raw: dict[str, str] | None = None
        self._collisions = False
        self.full_renders = 0

    def __repr__(self) -> str:
        return f"<IncrementalRenderer {self.template.name!r} {self.memo!r}>"

    def render(self, values: Mapping[str, str], changed: Collection[str] | None = None) -> bytes:
        """The template's output over ``values`` (full backend keys), as ``render`` gives it.

        ``values`` is read during the call only: the renderer keeps its own copy of the
        keys (copied on a full render, updated key by key after), so the caller may keep
        one mapping and change it in place between renders (the daemon's change-log view).
        ``changed``, when given, must name every backend key added, removed or modified
        since the last call (a superset is fine): the values are then not diffed.
        Raises ``TemplateExecError``; the next render still follows on from ``values``.
        """

        self._advance(values, changed)
        return to_bytes(self.template.execute(None, memo=self.memo))

    def _advance(self, values: Mapping[str, str], changed: Collection[str] | None) -> None:
        store = self.reads.store
        if store is None or self._collisions:
            self._full(values)
            return
        old: Mapping[str, str] = self._raw if self._raw is not None else store.values
        if changed is None:
            keys = [k for k, v in values.items() if old.get(k, _GONE) != v]
            keys.extend(old.keys() - values.keys())
        else:
            keys = list(changed)
        if len(keys) > self.max_changes:
            self._full(values)
            return
        changes: dict[str, str | None] = {}
        raw: dict[str, str | None] = {}
        claimed: dict[str, str] = {}  # template key -> the backend key of this change that set it
        for key in keys:
            value = values.get(key)
            if value is None and key not in old:
                continue  # came and went (its template key may be another backend key's)
            stripped = strip_key(key, self.prefix)
            if claimed.setdefault(stripped, key) != key or (
                value is not None
                and key not in old
                and (stripped in store or self._raw is None and stripped != key)
            ):
                # A second backend key for one template key (in this change, or beside
                # one rendered before): confd's last-wins, which only a full render
                # reproduces; or the first key that is not its own template key: the
                # renderer needs its own copy of the backend's from now on.
                self._full(values)
                return
            changes[stripped] = value
            raw[key] = value
        was_empty, was_canonical = len(store) == 0, store.canonical
        # The renderer owns its snapshots and moves on: the new one takes the old one's
        # tables over (no copy of 90,000 keys per change).
        new = store.updated(changes, consume=True)
        if self._raw is not None:  # the renderer's copy follows the change, key by key
            for key, value in raw.items():
                if value is None:
                    self._raw.pop(key, None)
                else:
                    self._raw[key] = value
        # Malformed patterns are errors only over a non-empty store, and ls/lsdir read
        # differently once a key is not canonical: such flips start over.
        if (len(new) == 0) != was_empty or new.canonical != was_canonical:
            self.reads.reset()
            self.reads.store = new
            self.memo.advance()
            return
        self.reads.refresh(new, changes.keys())

    def _full(self, values: Mapping[str, str]) -> None:

        stripped = strip_prefix(values, self.prefix)
        self._collisions = len(stripped) < len(values)
        # A full render is O(keys) anyway; the copy frees the caller. None when each key is
        # its own template key (the store's values are the copy: 5 MB less at 90,000 keys).
        same = not self._collisions and all(a == b for a, b in zip(values, stripped, strict=True))
        self._raw = None if same else dict(values)
        self.reads.reset()
        self.reads.store = KVStore(stripped)
        self.memo.advance()
        self.full_renders += 1
