"""Go's ``path`` package: ``Clean``, ``Join``, ``Base``, ``Dir``, and ``Match`` (Go 1.19) ported line by
line so glob results and errors agree.

Go strings are bytes and ``path.Match`` walks them byte by byte (a star may even skip
into the middle of a UTF-8 sequence), so this port works on the UTF-8 bytes of the
template strings (``str`` decoded with ``surrogateescape``).
"""

from __future__ import annotations

from typing import Final

__all__ = ["BAD_PATTERN", "BadPattern", "base", "clean", "dir", "join", "match", "match_bytes", "validate"]

BAD_PATTERN: Final = "syntax error in pattern"
_RUNE_ERROR: Final = 0xFFFD
_SLASH: Final = 0x2F
_STAR: Final = 0x2A


def clean(p: str) -> str:
    """``path.Clean``: the shortest equivalent path by lexical processing.

    Not ``posixpath.normpath``: that keeps a leading ``//`` and Go does not.
    """
    if p == "":
        return "."
    rooted = p.startswith("/")
    out: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def join(*elems: str) -> str:
    """``path.Join``: empty elements are ignored, the result is cleaned."""
    nonempty = [e for e in elems if e]
    return clean("/".join(nonempty)) if nonempty else ""


def base(p: str) -> str:
    """``path.Base``: the last element, trailing slashes removed; ``.`` or ``/``."""
    if p == "":
        return "."
    p = p.rstrip("/")
    if p == "":
        return "/"
    return p[p.rfind("/") + 1 :]


def dir(p: str) -> str:  # noqa: A001 - Go's name
    """``path.Dir``: all but the last element, cleaned."""
    return clean(p[: p.rfind("/") + 1])


class BadPattern(ValueError):
    """``path.ErrBadPattern``: the pattern is malformed."""

    def __init__(self) -> None:
        super().__init__(BAD_PATTERN)


def _b(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _decode_rune(s: bytes, i: int) -> tuple[int, int]:
    """``utf8.DecodeRuneInString(s[i:])``: (rune, width), RuneError width 1 if invalid."""
    c = s[i]
    if c < 0x80:
        return c, 1
    if 0xC2 <= c <= 0xDF:
        n = 2
    elif 0xE0 <= c <= 0xEF:
        n = 3
    elif 0xF0 <= c <= 0xF4:
        n = 4
    else:
        return _RUNE_ERROR, 1
    try:
        r = ord(s[i : i + n].decode("utf-8"))
    except UnicodeDecodeError:
        return _RUNE_ERROR, 1
    return r, n


def _scan_chunk(pattern: bytes) -> tuple[bool, bytes, bytes]:
    # scanChunk: the next non-star run of the pattern, possibly preceded by stars.
    star = False
    while pattern and pattern[0] == _STAR:
        pattern = pattern[1:]
        star = True
    inrange = False
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x5C:  # backslash
            if i + 1 < n:
                i += 1
        elif c == 0x5B:  # [
            inrange = True
        elif c == 0x5D:  # ]
            inrange = False
        elif c == _STAR and not inrange:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_esc(chunk: bytes) -> tuple[int, bytes]:
    # getEsc: a possibly escaped character of a character class.
    if not chunk or chunk[0] in (0x2D, 0x5D):  # - ]
        raise BadPattern
    if chunk[0] == 0x5C:
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern
    r, n = _decode_rune(chunk, 0)
    bad = r == _RUNE_ERROR and n == 1
    nchunk = chunk[n:]
    if bad or not nchunk:
        raise BadPattern
    return r, nchunk


def _match_chunk(chunk: bytes, s: bytes) -> bytes | None:
    """matchChunk: the rest of ``s`` after ``chunk`` matched its start, else None.

    Like Go it keeps scanning the chunk after a failed match, so a malformed chunk
    always raises ``BadPattern`` whatever ``s`` is.
    """
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        c = chunk[0]
        if c == 0x5B:  # [ character class
            r = -1
            if not failed:
                r, n = _decode_rune(s, 0)
                s = s[n:]
            chunk = chunk[1:]
            negated = False
            if chunk and chunk[0] == 0x5E:  # ^
                negated = True
                chunk = chunk[1:]
            matched = False
            nrange = 0
            while True:
                if chunk and chunk[0] == 0x5D and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == 0x2D:  # -
                    hi, chunk = _get_esc(chunk[1:])
                if lo <= r <= hi:
                    matched = True
                nrange += 1
            if matched == negated:
                failed = True
        elif c == 0x3F:  # ?
            if not failed:
                if s[0] == _SLASH:
                    failed = True
                _, n = _decode_rune(s, 0)
                s = s[n:]
            chunk = chunk[1:]
        else:
            if c == 0x5C:
                chunk = chunk[1:]
                if not chunk:
                    raise BadPattern
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    if failed:
        return None
    return s


def match_bytes(pattern: bytes, name: bytes) -> bool:
    """``path.Match`` over Go bytes; raises ``BadPattern`` for a malformed pattern."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            # Trailing * matches the rest of the name unless it has a /.
            return _SLASH not in name
        t = _match_chunk(chunk, name)
        if t is not None and (not t or pattern):
            name = t
            continue
        if star:
            # Look for a match skipping i+1 bytes; a star cannot skip a /.
            found = False
            i = 0
            while i < len(name) and name[i] != _SLASH:
                t = _match_chunk(chunk, name[i + 1 :])
                if t is not None and (pattern or not t):
                    name = t
                    found = True
                    break
                i += 1
            if found:
                continue
        # Before returning false, check that the rest of the pattern is well formed.
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, b"")
        return False
    return not name


def match(pattern: str, name: str) -> bool:
    """``path.Match(pattern, name)`` for template strings."""
    return match_bytes(_b(pattern), _b(name))


def validate(pattern: str) -> None:
    """Raise ``BadPattern`` if ``match`` would raise it for some (equivalently: any) name.

    ``match`` scans every chunk of the pattern completely whatever the name, so the
    error does not depend on the name.
    """
    rest = _b(pattern)
    while rest:
        _, chunk, rest = _scan_chunk(rest)
        _match_chunk(chunk, b"")
