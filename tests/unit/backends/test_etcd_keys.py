"""Key range math, prefix matching and base64 for the etcd backends."""

from __future__ import annotations

import pytest

from muster.backends.keys import (
    b64decode,
    b64encode,
    covering_range,
    matches_any,
    matches_prefix,
    normalize_prefix,
    prefix_end,
    prefix_filter,
    prefix_ranges,
)


@pytest.mark.parametrize(
    ("prefix", "end"),
    [(b"/a/", b"/a0"), (b"a", b"b"), (b"a\xff", b"b"), (b"\xff\xff", b"\0"), (b"", b"\0"), (b"/", b"0")],
)
def test_prefix_end(prefix: bytes, end: bytes) -> None:
    assert prefix_end(prefix) == end


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("/a", "/a"), ("/a/", "/a"), ("/a//", "/a"), ("/", "/"), ("//", "/"), ("", "")],
)
def test_normalize_prefix(prefix: str, expected: str) -> None:
    assert normalize_prefix(prefix) == expected


def test_prefix_ranges() -> None:
    assert prefix_ranges("/a") == [(b"/a", None), (b"/a/", b"/a0")]
    assert prefix_ranges("/a/") == prefix_ranges("/a")
    assert prefix_ranges("/") == [(b"/", b"0")]
    assert prefix_ranges("") == [(b"\0", b"\0")]
    assert prefix_ranges("/ü") == [("/ü".encode(), None), ("/ü/".encode(), "/ü0".encode())]


@pytest.mark.parametrize(
    ("key", "prefix", "expected"),
    [
        ("/a", "/a", True),
        ("/a/b", "/a", True),
        ("/a/b/c", "/a/", True),
        ("/ab", "/a", False),
        ("/a-b", "/a", False),
        ("/a.b", "/a", False),
        ("/b", "/a", False),
        ("/anything", "/", True),
        ("relative", "/", False),
        ("relative", "", True),
    ],
)
def test_matches_prefix(key: str, prefix: str, expected: bool) -> None:
    assert matches_prefix(key, prefix) is expected


def test_matches_prefix_agrees_with_ranges() -> None:
    """The client-side filter and the server-side ranges must select the same keys."""
    keys = ["/a", "/a/", "/a/x", "/a0", "/a-", "/a.", "/ab", "/", "/b/a", "/a/\xff"]
    for prefix in ["/a", "/a/", "/", "/b"]:
        by_range = {
            k for k in keys for start, end in prefix_ranges(prefix)
            if (k.encode() == start if end is None else start <= k.encode() < end)
        }  # fmt: skip
        assert by_range == {k for k in keys if matches_prefix(k, prefix)}, prefix


def test_matches_any() -> None:
    assert matches_any("/b/x", ["/a", "/b"])
    assert not matches_any("/c", ["/a", "/b"])
    assert not matches_any("/c", [])


def test_covering_range() -> None:
    ranges = prefix_ranges("/a") + prefix_ranges("/b/c")
    assert covering_range(ranges) == (b"/a", b"/b/c0")
    assert covering_range(prefix_ranges("/x") + prefix_ranges("")) == (b"\0", b"\0")
    assert covering_range([(b"/k", None)]) == (b"/k", b"/k\0")
    with pytest.raises(ValueError):
        covering_range([])


def test_base64_round_trip() -> None:
    assert b64encode("/services") == "L3NlcnZpY2Vz"
    assert b64encode(b"\xff\x00") == "/wA="
    assert b64decode("L3NlcnZpY2Vz") == b"/services"
    assert b64decode(None) == b"" and b64decode("") == b""
    with pytest.raises(ValueError, match="invalid base64"):
        b64decode("not base64!")


@pytest.mark.parametrize("prefixes", [["/a"], ["/a/", "/b"], ["/"], [""], ["/a", "/a/x"], []])
def test_prefix_filter_agrees_with_matches_any(prefixes: list[str]) -> None:
    keys = ["/a", "/a/", "/a/x", "/a0", "/a-", "/ab", "/", "/b", "/b/a", "rel", ""]
    wanted = prefix_filter(prefixes)
    assert [k for k in keys if wanted(k)] == [k for k in keys if matches_any(k, prefixes)]
