"""Tests of Go's literal syntax: strconv's Unquote/UnquoteChar/ParseInt/ParseUint/ParseFloat.

Expected values follow Go 1.19's strconv; invalid UTF-8 bytes are surrogate-escaped
characters (``\\udcNN``), as everywhere in the template engine.
"""

from __future__ import annotations

import pytest

from muster.golang.literals import parse_float, unquote, unquote_char
from muster.golang.strconv import NumError, parse_int, parse_uint


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('""', ""),
        ('"abc"', "abc"),
        ('"héllo"', "héllo"),
        ('"a\\nb\\tc\\\\d\\"e"', 'a\nb\tc\\d"e'),
        ('"\\a\\b\\f\\r\\v"', "\a\b\f\r\v"),
        ('"\\x41\\101\\u00e9\\U0001F600"', "AAé\U0001f600"),
        ('"\\xff\\xfe"', "\udcff\udcfe"),  # \x escapes make raw (here invalid) bytes
        ('"\\xc3\\xa9"', "é"),  # ... which may form UTF-8 together
        ('"a\udcffb"', "a\ufffdb"),  # an invalid byte in a "..." literal becomes U+FFFD
        ('"é\udcff"', "é\ufffd"),
        ("`raw \\n`", "raw \\n"),
        ("`a\r\nb`", "a\nb"),  # raw strings drop carriage returns
        ("`\udcff`", "\udcff"),  # and keep invalid bytes
        ("`multi\nline`", "multi\nline"),
    ],
)
def test_unquote(literal: str, value: str) -> None:
    assert unquote(literal) == value


@pytest.mark.parametrize(
    "literal",
    [
        "",
        '"',
        "'a'",  # templates never unquote character literals as strings
        '`a"',
        '"a\nb"',
        '"a"b"',
        "`a`b`",
        '"\\q"',
        '"\\x4"',
        '"\\x4g"',
        '"\\u12"',
        '"\\ud800"',  # a surrogate is not a valid rune
        '"\\U00110000"',
        '"\\400"',
        '"\\19"',
        '"\\1"',
        '"\\\'"',  # \' only in character literals
        '"\\"',
    ],
)
def test_unquote_rejects(literal: str) -> None:
    with pytest.raises(NumError, match="^invalid syntax$"):
        unquote(literal)


@pytest.mark.parametrize(
    ("text", "value", "tail"),
    [
        ("a'", 97, "'"),
        ("é'", 0xE9, "'"),
        ("\udcff'", 0xFFFD, "'"),
        ("\\n'", 10, "'"),
        ("\\''", 39, "'"),
        ("\\xFF'", 0xFF, "'"),
        ("\\377'", 0xFF, "'"),
        ("\\u30d1'", 0x30D1, "'"),
        ("ab'", 97, "b'"),
    ],
)
def test_unquote_char(text: str, value: int, tail: str) -> None:
    assert unquote_char(text, "'") == (value, tail)


@pytest.mark.parametrize("text", ["", "'", "\\", '\\"', "\\z'"])
def test_unquote_char_rejects(text: str) -> None:
    with pytest.raises(NumError):
        unquote_char(text, "'")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("10", 10),
        ("010", 8),
        ("0x1F", 31),
        ("0X1f", 31),
        ("0o17", 15),
        ("0b101", 5),
        ("1_000", 1000),
        ("0x_1F", 31),
        ("0_7", 7),
        ("18446744073709551615", 2**64 - 1),
    ],
)
def test_parse_uint(text: str, value: int) -> None:
    assert parse_uint(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid syntax"),
        ("-1", "invalid syntax"),
        ("+1", "invalid syntax"),
        ("09", "invalid syntax"),
        ("0x", "invalid syntax"),
        ("0b2", "invalid syntax"),
        ("1.5", "invalid syntax"),
        ("1__0", "invalid syntax"),
        ("_1", "invalid syntax"),
        ("1_", "invalid syntax"),
        ("0x_", "invalid syntax"),
        ("12a", "invalid syntax"),
        ("18446744073709551616", "value out of range"),
    ],
)
def test_parse_uint_rejects(text: str, message: str) -> None:
    with pytest.raises(NumError, match=f"^{message}$"):
        parse_uint(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("-1", -1),
        ("+1", 1),
        ("-0x10", -16),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
    ],
)
def test_parse_int(text: str, value: int) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid syntax"),
        ("-", "invalid syntax"),
        ("--1", "invalid syntax"),
        ("9223372036854775808", "value out of range"),
        ("-9223372036854775809", "value out of range"),
    ],
)
def test_parse_int_rejects(text: str, message: str) -> None:
    with pytest.raises(NumError, match=f"^{message}$"):
        parse_int(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1.0),
        ("-1.5", -1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("1E-3", 0.001),
        ("1_000.000_1", 1000.0001),
        ("-1_000.5", -1000.5),
        ("0x1p4", 16.0),
        ("0x1.8P-1", 0.75),
        ("-0x.8p1", -1.0),
        ("0x_1p0", 1.0),
        ("1e-400", 0.0),
        ("0x1p-2000", 0.0),
        ("09", 9.0),
    ],
)
def test_parse_float(text: str, value: float) -> None:
    assert parse_float(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid syntax"),
        (".", "invalid syntax"),
        ("e5", "invalid syntax"),
        ("1e", "invalid syntax"),
        ("1e+", "invalid syntax"),
        ("1e_5", "invalid syntax"),
        ("0x1", "invalid syntax"),  # hex floats need an exponent
        ("0x.p1", "invalid syntax"),
        ("1_.5", "invalid syntax"),
        ("_1", "invalid syntax"),
        ("1.5.5", "invalid syntax"),
        ("1e400", "value out of range"),
        ("0x1p1024", "value out of range"),
    ],
)
def test_parse_float_rejects(text: str, message: str) -> None:
    with pytest.raises(NumError, match=f"^{message}$"):
        parse_float(text)
