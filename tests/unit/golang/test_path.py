"""gomatch: Go's path.Match, checked against 2,500 Go 1.19 results."""

from __future__ import annotations

from typing import Any

import pytest

from muster.golang import path as gopath


def test_matches_go_on_every_golden_case(go_golden: dict[str, Any]) -> None:
    mismatches = []
    for case in go_golden["match"]:
        try:
            got = (gopath.match(case["pattern"], case["name"]), False)
        except gopath.BadPattern:
            got = (False, True)
        if got != (case["match"], case["err"]):
            mismatches.append((case, got))
    assert len(go_golden["match"]) > 2000
    assert mismatches == []


def test_validate_agrees_with_match_errors(go_golden: dict[str, Any]) -> None:
    for case in go_golden["match"]:
        if case["err"]:
            with pytest.raises(gopath.BadPattern):
                gopath.validate(case["pattern"])
        else:
            gopath.validate(case["pattern"])


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("/services/*/servers/*", "/services/web/servers/a", True),
        ("/services/*", "/services/web/servers", False),  # * never crosses /
        ("/h/web?", "/h/web10", False),
        ("/h/web[12]", "/h/web2", True),
        ("a[^x]b", "a/b", True),  # a negated class does match /
        ("a\\*b", "a*b", True),
        ("*é", "xé", True),
    ],
)
def test_examples(pattern: str, name: str, expected: bool) -> None:
    assert gopath.match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["/app/[", "[a-", "\\", "[]", "[^]", "a[b-]"])
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(gopath.BadPattern, match="syntax error in pattern"):
        gopath.match(pattern, "anything")


def test_invalid_utf8_is_matched_bytewise() -> None:
    raw = b"a\xffb".decode("utf-8", "surrogateescape")
    assert gopath.match("a?b", raw)  # one invalid byte is one RuneError rune
    assert gopath.match("a*", raw)
