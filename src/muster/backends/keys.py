"""Pure key arithmetic shared by the etcd backends: prefix ranges, base64 and prefix matching.

A muster prefix is hierarchical: ``/a`` stands for the key ``/a`` itself and every key below
``/a/``, never ``/ab``. In etcd v3 terms that is one exact key plus the half-open range
``["/a/", "/a0")`` (``"0"`` is the byte after ``"/"``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence

__all__ = [
    "KeyRange",
    "b64decode",
    "b64encode",
    "matches_prefix",
    "normalize_prefix",
    "prefix_end",
    "prefix_filter",
    "prefix_ranges",
]

#: ``(key, range_end)`` as raw bytes; ``range_end`` ``None`` means the single key.
KeyRange = tuple[bytes, bytes | None]


def b64encode(data: str | bytes) -> str:
    """Base64 of ``data`` (``str`` is encoded as UTF-8), as etcd's JSON gateway expects."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: str | None) -> bytes:
    """Decode a gateway base64 field; a missing field (protobuf's zero value) is ``b""``."""
    if not text:
        return b""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64 from etcd: {text[:40]!r}") from exc


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key starting with ``prefix`` (etcd's ``range_end``).

    ``b"\\0"`` (every key to the end) when ``prefix`` is empty or all ``0xff`` bytes.
    """
    raw = bytearray(prefix)
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return b"\0"
    raw[-1] += 1
    return bytes(raw)


def normalize_prefix(prefix: str) -> str:
    """``/a/`` and ``/a`` name the same subtree; ``/`` (and ``//``) stay ``/``, ``""`` stays ``""``."""
    stripped = prefix.rstrip("/")
    if not stripped and prefix:
        return "/"
    return stripped


def prefix_ranges(prefix: str) -> list[KeyRange]:
    """The etcd v3 ranges that together hold exactly the keys under ``prefix``.

    ``""`` is every key; ``/`` every key starting with ``/``; otherwise the key itself plus
    the keys below ``prefix + "/"``.
    """
    p = normalize_prefix(prefix)
    if p == "":
        return [(b"\0", b"\0")]
    if p == "/":
        return [(b"/", prefix_end(b"/"))]
    raw = p.encode()
    below = raw + b"/"
    return [(raw, None), (below, prefix_end(below))]


def matches_prefix(key: str, prefix: str) -> bool:
    """True when ``key`` is ``prefix`` or lies below it, with the semantics of ``prefix_ranges``."""
    p = normalize_prefix(prefix)
    if p == "":
        return True
    if p == "/":
        return key.startswith("/")
    return key == p or key.startswith(p + "/")


def matches_any(key: str, prefixes: Sequence[str]) -> bool:
    """True when ``key`` lies under at least one of ``prefixes``."""
    return any(matches_prefix(key, p) for p in prefixes)


def prefix_filter(prefixes: Sequence[str]) -> Callable[[str], bool]:
    """A fast ``matches_any(key, prefixes)`` for filtering many keys (one C-level startswith)."""
    normalized = {normalize_prefix(p) for p in prefixes}
    if "" in normalized:
        return lambda key: True
    if "/" in normalized:
        return lambda key: key.startswith("/")
    exact = frozenset(normalized)
    below = tuple(p + "/" for p in normalized)
    return lambda key: key in exact or key.startswith(below)


def covering_range(ranges: Sequence[KeyRange]) -> tuple[bytes, bytes]:
    """The smallest single ``[key, range_end)`` containing every range in ``ranges``.

    A watch uses one range because etcd 3.4's gateway may drop all but the first create
    request of a stream (Go's HTTP/1 server discards the unread request body once the
    response starts); events outside the prefixes are filtered by the caller.
    """
    if not ranges:
        raise ValueError("covering_range needs at least one range")
    start = min(key for key, _ in ranges)
    ends = [end if end is not None else key + b"\0" for key, end in ranges]
    if any(end == b"\0" for end in ends):
        return start, b"\0"  # one range runs to the end of the keyspace
    return start, max(ends)
