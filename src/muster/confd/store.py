"""The immutable key/value snapshot that confd templates read (confd's ``memkv``), indexed.

confd's memkv scans every key on each ``gets``/``getvs``/``ls``/``lsdir`` call, which
makes the classic nginx template quadratic in the number of services. ``KVStore``
builds a children index once (directory -> child names, each a leaf, a directory or
both) and answers those calls by walking it, so each call costs in proportion to
what it returns. The answers are exactly memkv's, quirks included:

- ``gets``/``getvs`` use Go's ``path.Match`` (``*`` never crosses ``/``), sorted by
  key / by value; no match is an empty list; a malformed pattern is an error, but
  only when the store holds at least one key (memkv reports it from its scan loop).
- ``ls "/"`` lists only top-level leaf keys, so a tree of directories lists nothing
  (confd#725); ``lsdir "/"`` is always empty. ``ls KEY`` gives the key's base name.
- ``ls``/``lsdir`` compare Go-``path.Clean``-ed terms but strip the raw argument, so
  odd arguments (``/a//b``, ``/a/./b``, relative paths) give memkv's odd answers;
  those, and stores whose keys are not clean absolute paths, take a faithful scan.

Theory of operation: a key is split on ``/`` into segments; directory ``D`` (the key
text before a separating ``/``) maps to ``{child: flags}``. Because ``*`` and ``?``
never match ``/`` and literals match themselves, a pattern without ``[`` or ``\\``
has exactly one segment per name segment, so it is matched level by level: a
literal segment is a dictionary lookup, ``*`` takes every child, anything else is
matched against the children of that level only. Patterns with character classes
(which can match ``/``) are matched whole, by the Go port, against the keys under
their literal directory prefix.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import ClassVar, Final, NoReturn

from muster.golang import path as gopath
from muster.golang.values import GoSlice, GoStruct, append_cap, appended, appended_tail

__all__ = ["KVPair", "KVPairs", "KVStore", "KeyNotFound", "path_base", "path_clean", "path_dir"]

_MEMO_LIMIT: Final = 1 << 16
_LEAF: Final = 1
_DIR: Final = 2
_ROOT: Final = None  # the parent of every key's first segment


class KeyNotFound(LookupError):
    """memkv's ``KeyError``: ``key does not exist: KEY``."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"key does not exist: {key}")

    def __str__(self) -> str:
        return str(self.args[0])


class KVPair(GoStruct):
    """``memkv.KVPair{Key, Value}``: what ``get`` and ``gets`` return."""

    go_type: ClassVar[str] = "memkv.KVPair"
    go_fields: ClassVar[tuple[str, ...]] = ("Key", "Value")
    __slots__ = ("Key", "Value")

    def __init__(self, key: str, value: str) -> None:
        self.Key = key
        self.Value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KVPair) and (self.Key, self.Value) == (other.Key, other.Value)

    def __hash__(self) -> int:
        return hash((self.Key, self.Value))

    def __repr__(self) -> str:
        return f"KVPair({self.Key!r}, {self.Value!r})"


_KV_ELEM: Final = "memkv.KVPair"
_KV_NAME: Final = "memkv.KVPairs"
_ZERO_PAIR: Final = KVPair("", "")


class KVPairs(GoSlice):
    """``memkv.KVPairs``, the named slice type ``gets`` returns.

    It is a distinct Go type from ``[]memkv.KVPair``: confd's ``reverse`` type-switches
    on ``[]memkv.KVPair`` and so leaves a ``gets`` result untouched, while
    ``sortKVByLength`` accepts it (the types are assignable) and returns a plain
    ``[]memkv.KVPair``.
    """

    __slots__ = ()

    def __init__(self, items: Iterable[KVPair] = (), *, tail: Iterable[KVPair] = ()) -> None:
        super().__init__(items, _KV_ELEM, tail=tail, name=_KV_NAME)


def _kv_pairs(pairs: list[KVPair]) -> KVPairs:
    # memkv.GetAll appends to make(KVPairs, 0): the capacity append leaves for a
    # two-string struct (32 bytes), which Go's slice builtin can reach.
    return KVPairs(pairs, tail=(_ZERO_PAIR,) * (append_cap(len(pairs), 32) - len(pairs)))


def _go_bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _string_tail(n: int) -> tuple[str, ...]:
    # The zero strings between len and cap of a []string appended n times from empty.
    return appended_tail(n, 16, "")


def _strings(items: list[str]) -> GoSlice:
    # memkv appends to make([]string, 0): never nil, capacity as append grows it.
    return appended(items, "string", 16, "", from_nil=False)


# Go's path package, for the memkv quirks that depend on it (re-exported: confd's names).
path_clean = gopath.clean
path_base = gopath.base
path_dir = gopath.dir


def _terms(p: str) -> list[str]:
    # memkv pathToTerms
    return path_clean(p).split("/")


def _has_prefix_terms(prefix: list[str], test: list[str]) -> bool:
    # memkv samePrefixTerms
    return len(test) >= len(prefix) and test[: len(prefix)] == prefix


def _go_sorted(items: list[str]) -> list[str]:
    """``sort.Strings``: bytewise order (differs from code point order only for
    surrogate-escaped invalid bytes)."""
    if all(map(str.isascii, items)):
        return sorted(items)
    return sorted(items, key=lambda s: s.encode("utf-8", "surrogateescape"))


_SPECIAL = re.compile(r"[*?\[\\]")


def _segment_regex(seg: str) -> re.Pattern[str]:
    # Only for segments free of [ and \: * is any run, ? one rune (never / here).
    parts = []
    for ch in seg:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def _is_clean_key(key: str) -> bool:
    """An absolute, ``path.Clean``-ed key (or "/"): memkv's path arithmetic on it is plain."""
    if key == "/":
        return True
    return (
        key.startswith("/")
        and not key.endswith("/")
        and "//" not in key
        and "/./" not in key
        and "/../" not in key
        and not key.endswith(("/.", "/.."))
    )


def _all_clean(keys: list[str]) -> bool:
    """Whether every key is clean (``_is_clean_key``), checked on all keys at once.

    The keys are joined by a separator none of them contains, so each test is one
    substring search over the whole text instead of six calls per key.
    """
    sep = "\x00"
    text = sep.join(keys)
    if not keys or text.count(sep) != len(keys) - 1 or "/" in keys:
        return all(map(_is_clean_key, keys))  # a key holds the separator, or "/" is a key
    text = sep + text + sep
    return (
        text.count(sep + "/") == len(keys)
        and "/" + sep not in text
        and "//" not in text
        and "/./" not in text
        and "/../" not in text
        and "/." + sep not in text
        and "/.." + sep not in text
    )


def _patched(names: list[str], before: dict[str, int], after: dict[str, int]) -> list[str] | None:
    """``names`` (the sorted keys of ``before``) made the sorted keys of ``after``, or None
    when bytewise order may differ from ``str`` order (non-ASCII names)."""
    added = after.keys() - before.keys()
    removed = before.keys() - after.keys()
    if not "".join(added).isascii() or not "".join(removed).isascii() or not "".join(names).isascii():
        return None
    out = names.copy()
    for name in removed:
        del out[bisect.bisect_left(out, name)]
    for name in added:
        bisect.insort(out, name)
    return out


def _applied(
    values: dict[str, str], changes: Mapping[str, str | None]
) -> tuple[dict[str, str], list[str], list[str]]:
    """``values`` with ``changes`` applied (in place), and the keys it added and removed."""
    added: list[str] = []
    removed: list[str] = []
    for key, value in changes.items():
        if value is None:
            if values.pop(key, None) is not None:
                removed.append(key)
        else:
            if key not in values:
                added.append(key)
            values[key] = value
    return values, added, removed


class _TreePatch:
    """A children index patched key by key, copying each directory it writes on first
    write, so each directory's children as they were stay intact (``before``). With
    ``in_place``, the index itself is patched (its directories still copied on write),
    else a copy of it, so the index it started from stays as it was."""

    __slots__ = ("children", "before", "touched")

    def __init__(self, children: dict[str | None, dict[str, int]], *, in_place: bool = False) -> None:
        self.children = children if in_place else dict(children)
        # The directories written, with their children before the first write.
        self.before: dict[str | None, dict[str, int]] = {}
        self.touched = self.before.keys()  # the directories whose children changed

    def _own(self, d: str | None) -> dict[str, int]:
        # This patch's own copy of d's children, made on first write.
        children = self.children
        if d not in self.before:
            old = self.before[d] = children.get(d, {})
            children[d] = dict(old)
        return children.setdefault(d, {})  # re-made if emptied earlier in this patch

    def add(self, key: str) -> None:
        """Index the new leaf ``key``, and its directories up to one already known."""
        parent, sep, leaf = key.rpartition("/")
        d: str | None = parent if sep else _ROOT
        kids = self._own(d)
        kids[leaf] = kids.get(leaf, 0) | _LEAF
        while d is not _ROOT:  # mark d a directory in its parent, up to a known one
            assert d is not None
            grand, sep, name = d.rpartition("/")
            up: str | None = grand if sep else _ROOT
            if self.children.get(up, {}).get(name, 0) & _DIR:
                break
            kids = self._own(up)
            kids[name] = kids.get(name, 0) | _DIR
            d = up

    def remove(self, key: str) -> None:
        """Unindex the removed leaf ``key``, and each directory that it leaves empty."""
        parent, sep, leaf = key.rpartition("/")
        d, name, flag = (parent if sep else _ROOT), leaf, _LEAF
        while True:  # clear the flag; an emptied directory leaves its parent too
            kids = self._own(d)
            left = kids.get(name, 0) & ~flag
            if left:
                kids[name] = left
                break
            kids.pop(name, None)
            if kids or d is _ROOT:
                break
            del self.children[d]
            assert d is not None
            grand, sep, name = d.rpartition("/")
            d, flag = (grand if sep else _ROOT), _DIR

    def sorted_cache(
        self, cache: dict[str | None, list[str]], *, in_place: bool = False
    ) -> dict[str | None, list[str]]:
        """``cache`` (sorted listings of the index before) carried over to the patched one
        (``in_place``: ``cache`` itself, else a copy)."""
        children = self.children
        out = cache if in_place else {d: v for d, v in cache.items() if d not in self.touched}
        for d, before in self.before.items():
            # A listing of many names that gained or lost a few is patched, not sorted again.
            names = cache.get(d)
            patched = None
            if names is not None and d in children:
                patched = _patched(names, before, children[d])
            if patched is not None:
                out[d] = patched
            elif in_place:
                out.pop(d, None)
        return out


class _Consumed(dict):  # type: ignore[type-arg]
    """What a snapshot handed over by ``updated(consume=True)`` holds: any read raises."""

    def _gone(self, *args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError("KVStore used after updated(consume=True) handed its keys on")

    __getitem__ = __contains__ = __iter__ = __len__ = get = keys = values = items = copy = _gone


_CONSUMED: Final = _Consumed()


class KVStore:
    """An immutable snapshot of prefix-relative keys (``/services/web/servers/a``).

    Construction costs O(total key length); lookups cost in proportion to their
    answer. Methods mirror memkv's and raise ``KeyNotFound`` / ``gopath.BadPattern``
    where memkv returns an error.
    """

    __slots__ = ("_values", "_children", "_sorted_cache", "_canonical", "_keys_sorted", "_memo")

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values: dict[str, str] = dict(values)
        # The children index and the canonical check are built on first use: a template
        # that calls no store function (the Lua data plane's stock one) never pays for them.
        self._children: dict[str | None, dict[str, int]] | None = None
        self._sorted_cache: dict[str | None, list[str]] = {}
        self._keys_sorted: list[str] | None = None
        self._memo: dict[str, tuple[str, ...]] = {}
        self._canonical: bool | None = None

    def _tree(self) -> dict[str | None, dict[str, int]]:
        if self._children is not None:
            return self._children
        children: dict[str | None, dict[str, int]] = {}
        self._children = children
        root = children[_ROOT] = {}
        for key in self._values:
            parent, sep, leaf = key.rpartition("/")
            if not sep:
                root[key] = root.get(key, 0) | _LEAF
                continue
            kids = children.get(parent)
            if kids is None:
                kids = children[parent] = {}
                self._add_dir(children, parent)
            kids[leaf] = kids.get(leaf, 0) | _LEAF
        return children

    def _is_canonical(self) -> bool:
        if self._canonical is None:
            self._canonical = _all_clean(list(self._values))
        return self._canonical

    @property
    def canonical(self) -> bool:
        """Whether every key is an absolute, ``path.Clean``-ed path (memkv's path
        arithmetic on such keys is plain, and listings read only the keys below)."""
        return self._is_canonical()

    @staticmethod
    def _add_dir(children: dict[str | None, dict[str, int]], d: str) -> None:
        # Mark d as a directory in its parent, and so on up while the parents are new:
        # a directory already in the index has all its ancestors there too.
        while True:
            parent, sep, name = d.rpartition("/")
            if not sep:
                root = children[_ROOT]
                root[d] = root.get(d, 0) | _DIR
                return
            kids = children.get(parent)
            known = kids is not None
            if kids is None:
                kids = children[parent] = {}
            kids[name] = kids.get(name, 0) | _DIR
            if known:
                return
            d = parent

    def updated(self, changes: Mapping[str, str | None], *, consume: bool = False) -> KVStore:
        """A new snapshot: this one with ``changes`` applied (``None`` deletes a key).

        The new snapshot shares this one's index except for the directories whose
        children changed (copied before they are patched, so this snapshot stays as it
        was), but copies the table of values and of directories: O(keys), 1.6 ms at
        90,000 keys. With ``consume`` it takes them over and patches them in place, at a
        cost in proportion to the changes, and this snapshot must not be used again (it
        raises ``RuntimeError`` if it is): for an owner that moves on (the renderer).
        """
        new = KVStore.__new__(KVStore)
        values = self._values if consume else self._values.copy()
        new._values, added, removed = _applied(values, changes)
        new._memo = {}
        new._keys_sorted = None
        new._canonical = self._canonical
        if self._canonical is True and added and not _all_clean(added):
            new._canonical = False
        elif self._canonical is False and removed:
            new._canonical = None  # the unclean keys may be gone
        if self._children is None or not (added or removed):
            new._children = self._children
            new._sorted_cache = self._sorted_cache
        else:
            patch = _TreePatch(self._children, in_place=consume)
            for key in added:
                patch.add(key)
            for key in removed:
                patch.remove(key)
            new._children = patch.children
            new._sorted_cache = patch.sorted_cache(self._sorted_cache, in_place=consume)
        if consume:
            self._values = _CONSUMED
            self._children = self._keys_sorted = None
            self._sorted_cache = self._memo = _CONSUMED
        return new

    # -- plain lookups -----------------------------------------------------

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __repr__(self) -> str:
        if self._values is _CONSUMED:
            return "KVStore(handed on)"
        return f"KVStore({len(self._values)} keys)"

    @property
    def values(self) -> Mapping[str, str]:
        """The keys and values, read-only."""
        return MappingProxyType(self._values)

    def exists(self, key: str) -> bool:
        """True iff ``key`` is itself a key (a directory is not)."""
        return key in self._values

    def get(self, key: str) -> KVPair:
        try:
            return KVPair(key, self._values[key])
        except KeyError:
            raise KeyNotFound(key) from None

    def getv(self, key: str, *default: str) -> str:
        """The value; else the first default if given; else ``KeyNotFound``."""
        try:
            return self._values[key]
        except KeyError:
            if default:
                return default[0]
            raise KeyNotFound(key) from None

    # -- glob --------------------------------------------------------------

    def _kids(self, parent: str | None) -> dict[str, int]:
        return self._tree().get(parent, {})

    def is_dir(self, path: str) -> bool:
        """Whether the clean absolute ``path`` (not "/") has keys below it: in a canonical
        store, ``lsdir`` of its parent lists it exactly then."""
        parent, _, name = path.rpartition("/")
        return bool(self._kids(parent).get(name, 0) & _DIR)

    def _sorted_kids(self, parent: str | None) -> list[str]:
        cached = self._sorted_cache.get(parent)
        if cached is None:
            cached = self._sorted_cache[parent] = _go_sorted(list(self._kids(parent)))
        return cached

    def match_keys(self, pattern: str) -> tuple[str, ...]:
        """Every key ``path.Match`` accepts for ``pattern``, in no particular order.

        Answers are memoized: templates often ask the same pattern twice (the seed
        nginx template does, once per upstream block and once per location).
        """
        found = self._memo.get(pattern)
        if found is None:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            found = self._memo[pattern] = tuple(self._match_keys(pattern))
        return found

    def _match_keys(self, pattern: str) -> list[str]:
        if not self._values:
            return []  # memkv never calls path.Match on an empty store: no error either
        if "[" in pattern or "\\" in pattern:
            # Only character classes and escapes can be malformed.
            gopath.validate(pattern)
            return self._match_whole(pattern)
        special = _SPECIAL.search(pattern)
        if special is None:
            return [pattern] if pattern in self._values else []
        # Skip the literal directory part in one lookup: a directory is in the index
        # only if some key lies below it, so its ancestors need no checking.
        cut = pattern.rfind("/", 0, special.start())
        if cut < 0:
            return self._match_segments(_ROOT, pattern)
        base, rest = pattern[:cut], pattern[cut + 1 :]
        kids = self._tree().get(base)
        if kids is None:
            return []
        if rest == "*":
            # The common "/dir/*": every leaf child of one directory.
            return [f"{base}/{c}" for c, f in kids.items() if f & _LEAF]
        return self._match_segments(base, rest)

    def _match_segments(self, base: str | None, rest: str) -> list[str]:
        # The keys under directory ``base`` matching ``rest`` (no character classes or
        # escapes, so its segments align with the keys'), one segment at a time.
        frontier: list[str | None] = [base]
        segs = rest.split("/")
        last = len(segs) - 1
        for i, seg in enumerate(segs):
            want = _LEAF if i == last else _DIR
            nxt: list[str | None] = []
            rx = None if seg == "*" or not _SPECIAL.search(seg) else _segment_regex(seg)
            for parent in frontier:
                kids = self._kids(parent)
                head = "" if parent is None else parent + "/"
                if rx is not None:
                    nxt.extend(head + c for c, f in kids.items() if f & want and rx.fullmatch(c))
                elif seg == "*":
                    nxt.extend(head + c for c, f in kids.items() if f & want)
                elif kids.get(seg, 0) & want:
                    nxt.append(head + seg)
            frontier = nxt
            if not frontier:
                return []
        return [k for k in frontier if k is not None]

    def _match_whole(self, pattern: str) -> list[str]:
        # A character class may match "/", so segments do not align: run the Go
        # matcher on every key that starts with the pattern's literal prefix.
        m = _SPECIAL.search(pattern)
        literal = pattern[: m.start()] if m else pattern
        keys = self._sorted_keys()
        lo = bisect.bisect_left(keys, literal)
        out = []
        pat = pattern.encode("utf-8", "surrogateescape")
        for key in keys[lo:]:
            if not key.startswith(literal):
                break
            if gopath.match_bytes(pat, key.encode("utf-8", "surrogateescape")):
                out.append(key)
        return out

    def _sorted_keys(self) -> list[str]:
        if self._keys_sorted is None:
            self._keys_sorted = sorted(self._values)
        return self._keys_sorted

    def gets(self, pattern: str) -> KVPairs:
        """``memkv.GetAll``: the pairs whose key matches, sorted by key."""
        values = self._values
        return _kv_pairs([KVPair(k, values[k]) for k in _go_sorted(list(self.match_keys(pattern)))])

    def getvs(self, pattern: str) -> GoSlice:
        """``memkv.GetAllValues``: the values of the matching keys, sorted by value
        (a ``[]string``)."""
        # Built and sorted in place: the seed nginx template calls this twice per service.
        found = GoSlice(map(self._values.__getitem__, self.match_keys(pattern)), "string")
        if all(map(str.isascii, found)):
            found.sort()
        else:
            found.sort(key=_go_bytes)
        found.tail = _string_tail(len(found))
        return found

    # -- listing -----------------------------------------------------------

    def _fast_dir(self, file_path: str) -> str | None:
        """The index directory for ``file_path`` when memkv's answer is the plain one."""
        if not self._is_canonical() or not file_path.startswith("/"):
            return None
        clean = path_clean(file_path)
        if file_path == clean or (clean != "/" and file_path == clean + "/"):
            return "" if clean == "/" else clean
        return None

    def ls(self, file_path: str) -> GoSlice:
        """``memkv.List``: sorted names of the children of ``file_path`` (a ``[]string``)."""
        return _strings(self._ls(file_path))

    def _ls(self, file_path: str) -> list[str]:
        d = self._fast_dir(file_path)
        if d is None:
            return self._scan_list(file_path)
        if d == "":
            # memkv compares Clean("/") terms ["", ""], which only the parents of
            # top-level keys have: directories under "/" are invisible (confd#725).
            # The key "/" itself (a key equal to the prefix) lists as its base name "/".
            kids = self._kids("")
            names = [c or "/" for c in self._sorted_kids("") if kids[c] & _LEAF]
            return _go_sorted(names) if "" in kids else names
        names = self._sorted_kids(d)
        if file_path == d and file_path in self._values:
            base = path_base(d)
            if base not in self._kids(d):
                return _go_sorted([*names, base])
        return list(names)

    def lsdir(self, file_path: str) -> GoSlice:
        """``memkv.ListDir``: sorted names of the children of ``file_path`` that have keys
        below them (a ``[]string``)."""
        return _strings(self._lsdir(file_path))

    def _lsdir(self, file_path: str) -> list[str]:
        d = self._fast_dir(file_path)
        if d is None:
            return self._scan_listdir(file_path)
        if d == "":
            return []
        kids = self._kids(d)
        return [c for c in self._sorted_kids(d) if kids[c] & _DIR]

    def _scan_list(self, file_path: str) -> list[str]:
        # memkv.List, verbatim, for arguments and stores off the fast path.
        prefix = _terms(file_path)
        found: set[str] = set()
        for key in self._values:
            if key == file_path:
                found.add(path_base(key))
                continue
            if _has_prefix_terms(prefix, _terms(path_dir(key))):
                stripped = key.removeprefix(file_path).removeprefix("/")
                found.add(stripped.split("/")[0])
        return _go_sorted(list(found))

    def _scan_listdir(self, file_path: str) -> list[str]:
        # memkv.ListDir, verbatim.
        prefix = _terms(file_path)
        found: set[str] = set()
        for key in self._values:
            if key.startswith(file_path):
                items = _terms(path_dir(key))
                if _has_prefix_terms(prefix, items) and len(items) > len(prefix):
                    found.add(items[len(prefix)])
        return _go_sorted(list(found))
