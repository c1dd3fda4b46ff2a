"""Build a shadow of an nginx configuration in which one included file is swapped for another.

``nginx -t`` on a fragment alone proves little: the fragment's upstreams may clash with
the main config, its ``server`` may need ``http {}`` around it. So the check runs on the
*whole* configuration with the staged file in place of the real one. Rather than copy
the tree (relative paths would change meaning), we write shadow copies of only the files
on the include path from the main file to the replaced one, next to the main file, so
nginx's configuration prefix and every other relative path stay the same.

Theory of operation: scan each file for ``include`` statements with a small tokenizer
that follows nginx's lexical rules (quotes, escapes, ``#`` comments, ``${var}``) and
skips ``*_by_lua_block`` bodies the way the Lua module does. An ``include`` whose glob
matches the replaced file (or would match it, when it does not exist yet) is rewritten as
one ``include`` per matched file, in nginx's sorted glob order, with the staged file in
its place; an ``include`` of a file that leads to it is rewritten to a shadow of that
file, recursively. Everything else is copied byte for byte. Pure: the caller passes a
file reader and a glob function, so tests need no filesystem tricks.
"""

from __future__ import annotations

import fnmatch
import glob as globmod
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from muster.errors import ShadowError

__all__ = [
    "IncludeStatement",
    "ShadowError",
    "ShadowPlan",
    "default_glob",
    "find_includes",
    "nginx_quote",
    "plan_shadow",
]

_MAX_DEPTH = 32  # nginx itself has no limit, but an include cycle must not hang us
_GLOB_MAGIC = set("*?[")


@dataclass(frozen=True, slots=True)
class IncludeStatement:
    """One ``include PATTERN;`` statement: its pattern and its byte span in the source."""

    pattern: str
    start: int
    end: int  # one past the terminating ``;``


@dataclass(slots=True)
class ShadowPlan:
    """The shadow files to write, keyed by the real file they stand for, in write order.

    ``main`` is the real main file; ``files[main]`` is the text of its shadow.
    ``names[real]`` is the path each shadow must be written to.
    """

    main: Path
    files: dict[Path, str] = field(default_factory=dict)
    names: dict[Path, Path] = field(default_factory=dict)


def _lua_block_end(text: str, i: int) -> int:
    """Index just past the ``}`` closing a Lua block whose ``{`` is at ``i - 1``."""
    depth = 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "-" and text.startswith("--", i):
            i += 2
            long = _long_bracket(text, i)
            if long is not None:
                i = long
            else:
                while i < n and text[i] != "\n":
                    i += 1
            continue
        if c in "\"'":
            i += 1
            while i < n and text[i] != c:
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if c == "[":
            long = _long_bracket(text, i)
            if long is not None:
                i = long
                continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ShadowError("unterminated Lua block")


def _long_bracket(text: str, i: int) -> int | None:
    """If a Lua long bracket (``[[``, ``[==[``) opens at ``i``, the index past its close."""
    if i >= len(text) or text[i] != "[":
        return None
    j = i + 1
    while j < len(text) and text[j] == "=":
        j += 1
    if j >= len(text) or text[j] != "[":
        return None
    close = "]" + "=" * (j - i - 1) + "]"
    k = text.find(close, j + 1)
    if k < 0:
        raise ShadowError("unterminated Lua long string or comment")
    return k + len(close)


def _tokens(text: str, pos: int = 0) -> Iterator[tuple[str, int, int]]:
    """Yield ``(token, start, end)`` from ``pos``; quoted tokens come unquoted and unescaped.

    Follows ngx_conf_read_token: ``;``, ``{`` and ``}`` are their own tokens, a quote
    only opens a string at the start of a token, ``\\`` escapes the next character.
    """
    i, n = pos, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in ";{}":
            yield c, i, i + 1
            i += 1
        elif c in "\"'":
            j = i + 1
            out = []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    nxt = text[j + 1]
                    # nginx unescapes \" \' \\ and \t \r \n inside quotes, keeps other pairs
                    out.append(_UNESCAPE.get(nxt, "\\" + nxt))
                    j += 2
                else:
                    out.append(text[j])
                    j += 1
            if j >= n:
                raise ShadowError("unterminated quoted string")
            yield "".join(out), i, j + 1
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n;{}":
                if text[j] == "$" and j + 1 < n and text[j + 1] == "{":
                    close = text.find("}", j)
                    j = n if close < 0 else close + 1
                elif text[j] == "\\" and j + 1 < n:
                    j += 2
                else:
                    j += 1
            yield text[i:j], i, j
            i = j


_UNESCAPE = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def find_includes(text: str) -> list[IncludeStatement]:
    """Every ``include`` statement in ``text``, in order (in any context)."""
    found: list[IncludeStatement] = []
    pos: int | None = 0
    while pos is not None:
        resume, pos = pos, None
        stmt: list[tuple[str, int, int]] = []
        for tok, start, end in _tokens(text, resume):
            special = end - start == 1 and text[start] in ";{}"
            if special and tok == ";":
                if len(stmt) == 2 and stmt[0][0] == "include":
                    found.append(IncludeStatement(stmt[1][0], stmt[0][1], end))
                stmt = []
            elif special and tok == "{":
                if stmt and stmt[0][0].endswith("_by_lua_block"):
                    # The Lua module reads the body with Lua's lexer: skip it, then go on.
                    pos = _lua_block_end(text, end)
                    break
                stmt = []
            elif special:
                stmt = []
            else:
                stmt.append((tok, start, end))
    return found


def nginx_quote(path: str) -> str:
    """``path`` as one nginx token, double-quoted with ``"`` and ``\\`` escaped."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _resolve(pattern: str, conf_prefix: Path) -> str:
    return pattern if os.path.isabs(pattern) else str(conf_prefix / pattern)


def default_glob(pattern: str) -> list[str]:
    """nginx's glob: sorted matches, no dotfiles; a plain path is returned as is."""
    if not _GLOB_MAGIC & set(pattern):
        return [pattern]
    return sorted(globmod.glob(pattern))


def plan_shadow(
    main: Path,
    replace: Path,
    staged: Path,
    *,
    read: Callable[[Path], str] = lambda p: p.read_text("utf-8", "surrogateescape"),
    glob: Callable[[str], list[str]] = default_glob,
    shadow_name: Callable[[Path], Path] | None = None,
) -> ShadowPlan:
    """Plan shadows so that loading ``main`` loads ``staged`` wherever ``replace`` was included.

    ``replace`` need not exist yet: a glob include that would match it counts. Raises
    ``ShadowError`` if ``main`` never includes ``replace`` (the check would prove nothing).
    """
    main = Path(os.path.abspath(main))
    if shadow_name is None:
        shadow_name = _shadow_names(main.parent)
    shadower = _Shadower(main, os.path.abspath(replace), staged, read, glob, shadow_name)
    if not shadower.visit(str(main), 0):
        raise ShadowError(f"{main} never includes {replace}: nginx would not load it")
    return shadower.plan


def _shadow_names(conf_prefix: Path) -> Callable[[Path], Path]:
    token = os.urandom(4).hex()  # two checks at once must not share shadow files

    def shadow_name(real: Path) -> Path:
        return conf_prefix / f".muster-check-{token}.{real.name}"

    return shadow_name


class _Shadower:
    """Walks the includes from the main file, planning a shadow of each file that leads
    to ``target`` (``plan_shadow``'s arguments, ``target`` made absolute)."""

    def __init__(
        self,
        main: Path,
        target: str,
        staged: Path,
        read: Callable[[Path], str],
        glob: Callable[[str], list[str]],
        shadow_name: Callable[[Path], Path],
    ) -> None:
        self.plan = ShadowPlan(main)
        self._conf_prefix = main.parent
        self._target = target
        self._staged = staged
        self._read = read
        self._glob = glob
        self._shadow_name = shadow_name
        self._leads: dict[str, bool] = {}  # path -> whether it leads to the target

    def visit(self, path: str, depth: int) -> bool:
        """Whether ``path`` leads to the target; plans its shadow when it does."""
        if path == self._target:
            return True
        if path in self._leads:
            return self._leads[path]
        if depth > _MAX_DEPTH:
            raise ShadowError(f"includes nested more than {_MAX_DEPTH} deep at {path}")
        self._leads[path] = False  # guards against include cycles
        try:
            text = self._read(Path(path))
        except OSError:
            return False  # nginx -t will report the unreadable file itself
        shadow = self._rewrite(text, depth)
        if shadow is None:
            return False
        real_path = Path(path)
        self.plan.files[real_path] = shadow
        self.plan.names[real_path] = self._shadow_name(real_path)
        self._leads[path] = True
        return True

    def _rewrite(self, text: str, depth: int) -> str | None:
        """``text`` with each include that leads to the target rewritten, or None if none does."""
        pieces: list[str] = []
        last = 0
        for stmt in find_includes(text):
            files = self._matches(stmt)
            hits = [self.visit(f, depth + 1) for f in files]
            if not any(hits):
                continue
            pieces.append(text[last : stmt.start])
            pieces.append(" ".join(self._include(f, hit) for f, hit in zip(files, hits, strict=True)))
            last = stmt.end
        if not pieces:
            return None
        pieces.append(text[last:])
        return "".join(pieces)

    def _matches(self, stmt: IncludeStatement) -> list[str]:
        # The files the include loads, in nginx's order, counting the target if its glob
        # would match it (it need not exist yet).
        pattern = _resolve(stmt.pattern, self._conf_prefix)
        found = [os.path.abspath(p) for p in self._glob(pattern)]
        target = self._target
        if target not in found and _GLOB_MAGIC & set(pattern) and fnmatch.fnmatchcase(target, pattern):
            found = sorted([*found, target])
        return found

    def _include(self, path: str, leads: bool) -> str:
        # One include of the shadow tree: the staged file for the target, a shadow for a
        # file that leads to it, the real file otherwise.
        if path == self._target:
            real = str(self._staged)
        elif leads:
            real = str(self._shadow_name(Path(path)))
        else:
            real = path
        return f"include {nginx_quote(real)};"
