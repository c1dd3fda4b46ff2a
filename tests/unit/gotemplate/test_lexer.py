"""Lexer tests, ported from Go 1.19's text/template/parse/lex_test.go plus muster's own."""

# ruff: noqa: E501  (tables of Go source and messages read best one case per line)

from __future__ import annotations

import pytest

from muster.gotemplate.lexer import Token, TokenType, lex

T = TokenType

DOT = (T.DOT, ".")
EOF = (T.EOF, "")
LEFT = (T.LEFT_DELIM, "{{")
RIGHT = (T.RIGHT_DELIM, "}}")
LPAR = (T.LEFT_PAREN, "(")
RPAR = (T.RIGHT_PAREN, ")")
PIPE = (T.PIPE, "|")
SPACE = (T.SPACE, " ")
RANGE = (T.RANGE, "range")
QUOTE = (T.STRING, '"abc \\n\\t\\" "')
RAW = '`abc\\n\\t\\" `'
RAW_NL = "`now is{{\n}}the time`"


def n(value: str) -> tuple[TokenType, str]:
    return (T.NUMBER, value)


def spaced(*items: tuple[TokenType, str]) -> list[tuple[TokenType, str]]:
    out: list[tuple[TokenType, str]] = []
    for i, item in enumerate(items):
        if i:
            out.append(SPACE)
        out.append(item)
    return out


LEX_TESTS: list[tuple[str, str, list[tuple[TokenType, str]]]] = [
    ("empty", "", [EOF]),
    ("spaces", " \t\n", [(T.TEXT, " \t\n"), EOF]),
    ("text", "now is the time", [(T.TEXT, "now is the time"), EOF]),
    (
        "text with comment",
        "hello-{{/* this is a comment */}}-world",
        [(T.TEXT, "hello-"), (T.COMMENT, "/* this is a comment */"), (T.TEXT, "-world"), EOF],
    ),
    ("punctuation", "{{,@% }}", [LEFT, (T.CHAR, ","), (T.CHAR, "@"), (T.CHAR, "%"), SPACE, RIGHT, EOF]),
    ("parens", "{{((3))}}", [LEFT, LPAR, LPAR, n("3"), RPAR, RPAR, RIGHT, EOF]),
    ("empty action", "{{}}", [LEFT, RIGHT, EOF]),
    ("for", "{{for}}", [LEFT, (T.IDENTIFIER, "for"), RIGHT, EOF]),
    (
        "block",
        '{{block "foo" .}}',
        [LEFT, (T.BLOCK, "block"), SPACE, (T.STRING, '"foo"'), SPACE, DOT, RIGHT, EOF],
    ),
    ("quote", '{{"abc \\n\\t\\" "}}', [LEFT, QUOTE, RIGHT, EOF]),
    ("raw quote", "{{" + RAW + "}}", [LEFT, (T.RAW_STRING, RAW), RIGHT, EOF]),
    ("raw quote with newline", "{{" + RAW_NL + "}}", [LEFT, (T.RAW_STRING, RAW_NL), RIGHT, EOF]),
    (
        "numbers",
        "{{1 02 0x14 0X14 -7.2i 1e3 1E3 +1.2e-4 4.2i 1+2i 1_2 0x1.e_fp4 0X1.E_FP4}}",
        [
            LEFT,
            *spaced(
                n("1"),
                n("02"),
                n("0x14"),
                n("0X14"),
                n("-7.2i"),
                n("1e3"),
                n("1E3"),
                n("+1.2e-4"),
                n("4.2i"),
                (T.COMPLEX, "1+2i"),
                n("1_2"),
                n("0x1.e_fp4"),
                n("0X1.E_FP4"),
            ),
            RIGHT,
            EOF,
        ],
    ),
    (
        "binary and octal",
        "{{0b101 0o17 0B1 0O7}}",
        [LEFT, *spaced(n("0b101"), n("0o17"), n("0B1"), n("0O7")), RIGHT, EOF],
    ),
    (
        "characters",
        "{{'a' '\\n' '\\'' '\\\\' '\\u00FF' '\\xFF' '本'}}",
        [
            LEFT,
            *spaced(
                *[
                    (T.CHAR_CONSTANT, c)
                    for c in ("'a'", "'\\n'", "'\\''", "'\\\\'", "'\\u00FF'", "'\\xFF'", "'本'")
                ]
            ),
            RIGHT,
            EOF,
        ],
    ),
    ("bools", "{{true false}}", [LEFT, (T.BOOL, "true"), SPACE, (T.BOOL, "false"), RIGHT, EOF]),
    ("dot", "{{.}}", [LEFT, DOT, RIGHT, EOF]),
    ("nil", "{{nil}}", [LEFT, (T.NIL, "nil"), RIGHT, EOF]),
    (
        "dots",
        "{{.x . .2 .x.y.z}}",
        [
            LEFT,
            (T.FIELD, ".x"),
            SPACE,
            DOT,
            SPACE,
            n(".2"),
            SPACE,
            (T.FIELD, ".x"),
            (T.FIELD, ".y"),
            (T.FIELD, ".z"),
            RIGHT,
            EOF,
        ],
    ),
    (
        "keywords",
        "{{range if else end with}}",
        [LEFT, *spaced(RANGE, (T.IF, "if"), (T.ELSE, "else"), (T.END, "end"), (T.WITH, "with")), RIGHT, EOF],
    ),
    (
        "more keywords",
        "{{define template block break continue}}",
        [
            LEFT,
            *spaced(
                (T.DEFINE, "define"),
                (T.TEMPLATE, "template"),
                (T.BLOCK, "block"),
                (T.BREAK, "break"),
                (T.CONTINUE, "continue"),
            ),
            RIGHT,
            EOF,
        ],
    ),
    (
        "variables",
        "{{$c := printf $ $hello $23 $ $var.Field .Method}}",
        [
            LEFT,
            (T.VARIABLE, "$c"),
            SPACE,
            (T.DECLARE, ":="),
            SPACE,
            (T.IDENTIFIER, "printf"),
            SPACE,
            (T.VARIABLE, "$"),
            SPACE,
            (T.VARIABLE, "$hello"),
            SPACE,
            (T.VARIABLE, "$23"),
            SPACE,
            (T.VARIABLE, "$"),
            SPACE,
            (T.VARIABLE, "$var"),
            (T.FIELD, ".Field"),
            SPACE,
            (T.FIELD, ".Method"),
            RIGHT,
            EOF,
        ],
    ),
    ("variable invocation", "{{$x 23}}", [LEFT, (T.VARIABLE, "$x"), SPACE, n("23"), RIGHT, EOF]),
    (
        "assignment",
        "{{$x = 1}}",
        [LEFT, (T.VARIABLE, "$x"), SPACE, (T.ASSIGN, "="), SPACE, n("1"), RIGHT, EOF],
    ),
    (
        "pipeline",
        'intro {{echo hi 1.2 |noargs|args 1 "hi"}} outro',
        [
            (T.TEXT, "intro "),
            LEFT,
            (T.IDENTIFIER, "echo"),
            SPACE,
            (T.IDENTIFIER, "hi"),
            SPACE,
            n("1.2"),
            SPACE,
            PIPE,
            (T.IDENTIFIER, "noargs"),
            PIPE,
            (T.IDENTIFIER, "args"),
            SPACE,
            n("1"),
            SPACE,
            (T.STRING, '"hi"'),
            RIGHT,
            (T.TEXT, " outro"),
            EOF,
        ],
    ),
    (
        "declaration",
        "{{$v := 3}}",
        [LEFT, (T.VARIABLE, "$v"), SPACE, (T.DECLARE, ":="), SPACE, n("3"), RIGHT, EOF],
    ),
    (
        "2 declarations",
        "{{$v , $w := 3}}",
        [
            LEFT,
            *spaced((T.VARIABLE, "$v"), (T.CHAR, ","), (T.VARIABLE, "$w"), (T.DECLARE, ":="), n("3")),
            RIGHT,
            EOF,
        ],
    ),
    (
        "field of parenthesized expression",
        "{{(.X).Y}}",
        [LEFT, LPAR, (T.FIELD, ".X"), RPAR, (T.FIELD, ".Y"), RIGHT, EOF],
    ),
    (
        "trimming spaces before and after",
        "hello- {{- 3 -}} -world",
        [(T.TEXT, "hello-"), LEFT, n("3"), RIGHT, (T.TEXT, "-world"), EOF],
    ),
    (
        "trimming spaces before and after comment",
        "hello- {{- /* hello */ -}} -world",
        [(T.TEXT, "hello-"), (T.COMMENT, "/* hello */"), (T.TEXT, "-world"), EOF],
    ),
    ("trim marker needs a space", "{{-3}}", [LEFT, n("-3"), RIGHT, EOF]),
    # The trim markers take one space each; the others are ordinary spaces.
    (
        "trim with several spaces",
        "a \n{{-  3  -}}\n b",
        [(T.TEXT, "a"), LEFT, SPACE, n("3"), SPACE, RIGHT, (T.TEXT, "b"), EOF],
    ),
    ("trim everything", " \n{{- 3 -}}\n ", [LEFT, n("3"), RIGHT, EOF]),
    ("minus before delimiter without space is a number", "{{3 -}}", [LEFT, n("3"), RIGHT, EOF]),
    # errors
    ("badchar", "#{{\x01}}", [(T.TEXT, "#"), LEFT, (T.ERROR, "unrecognized character in action: U+0001")]),
    ("badchar non-ascii", "{{\u00e9\u00e0\u2028}}", [LEFT, (T.ERROR, "bad character U+2028")]),
    (
        "invalid byte in action",
        "{{\udcff}}",
        [LEFT, (T.ERROR, "unrecognized character in action: U+FFFD '\ufffd'")],
    ),
    (
        "non-ascii symbol",
        "{{\u00a7}}",
        [LEFT, (T.ERROR, "unrecognized character in action: U+00A7 '\u00a7'")],
    ),
    ("unclosed action", "{{", [LEFT, (T.ERROR, "unclosed action")]),
    ("EOF in action", "{{range", [LEFT, RANGE, (T.ERROR, "unclosed action")]),
    ("unclosed quote", '{{"\n"}}', [LEFT, (T.ERROR, "unterminated quoted string")]),
    ("unclosed quote at EOF", '{{"\\', [LEFT, (T.ERROR, "unterminated quoted string")]),
    ("unclosed raw quote", "{{`xx}}", [LEFT, (T.ERROR, "unterminated raw quoted string")]),
    ("unclosed char constant", "{{'\n}}", [LEFT, (T.ERROR, "unterminated character constant")]),
    ("unclosed char constant escape", "{{'\\\n'}}", [LEFT, (T.ERROR, "unterminated character constant")]),
    ("bad number", "{{3k}}", [LEFT, (T.ERROR, 'bad number syntax: "3k"')]),
    ("bad complex", "{{1+2}}", [LEFT, (T.ERROR, 'bad number syntax: "1+2"')]),
    ("bad complex suffix", "{{1+2x}}", [LEFT, (T.ERROR, 'bad number syntax: "1+2x"')]),
    ("bad identifier", "{{a#}}", [LEFT, (T.ERROR, "bad character U+0023 '#'")]),
    ("bad field", "{{.a#}}", [LEFT, (T.ERROR, "bad character U+0023 '#'")]),
    ("bad variable", "{{$a+2}}", [LEFT, (T.ERROR, "bad character U+002B '+'")]),
    ("expected declare", "{{$a :x}}", [LEFT, (T.VARIABLE, "$a"), SPACE, (T.ERROR, "expected :=")]),
    ("unclosed paren", "{{(3}}", [LEFT, LPAR, n("3"), (T.ERROR, "unclosed left paren")]),
    ("extra right paren", "{{3)}}", [LEFT, n("3"), RPAR, (T.ERROR, "unexpected right paren U+0029 ')'")]),
    ("long pipeline deadlock", "{{|||||}}", [LEFT, PIPE, PIPE, PIPE, PIPE, PIPE, RIGHT, EOF]),
    ("text with bad comment", "hello-{{/*/}}-world", [(T.TEXT, "hello-"), (T.ERROR, "unclosed comment")]),
    (
        "text with comment close separated from delim",
        "hello-{{/* */ }}-world",
        [(T.TEXT, "hello-"), (T.ERROR, "comment ends before closing delimiter")],
    ),
    # An error Go cannot catch because it breaks templates with minimized JavaScript.
    ("unmatched right delimiter", "hello-{.}}-world", [(T.TEXT, "hello-{.}}-world"), EOF]),
    # A lone "." at the end of input scans as a number, as in Go; the parser rejects it.
    ("dot at end of input", "{{.", [LEFT, n("."), (T.ERROR, "unclosed action")]),
]


def collect(text: str, left: str = "", right: str = "") -> list[tuple[TokenType, str]]:
    return [(t.type, t.value) for t in lex(text, left, right, emit_comment=True)]


@pytest.mark.parametrize(("text", "expected"), [t[1:] for t in LEX_TESTS], ids=[t[0] for t in LEX_TESTS])
def test_lex(text: str, expected: list[tuple[TokenType, str]]) -> None:
    assert collect(text) == expected


def test_comments_are_skipped_unless_asked_for() -> None:
    assert [(t.type, t.value) for t in lex("a{{/* c */}}b")] == [(T.TEXT, "a"), (T.TEXT, "b"), EOF]


LEX_DELIM_TESTS = [
    (
        "punctuation",
        "$$,@%{{}}@@",
        [
            (T.LEFT_DELIM, "$$"),
            *[(T.CHAR, c) for c in ",@%{{}}"],
            (T.RIGHT_DELIM, "@@"),
            EOF,
        ],
    ),
    ("empty action", "$$@@", [(T.LEFT_DELIM, "$$"), (T.RIGHT_DELIM, "@@"), EOF]),
    ("for", "$$for@@", [(T.LEFT_DELIM, "$$"), (T.IDENTIFIER, "for"), (T.RIGHT_DELIM, "@@"), EOF]),
    ("quote", '$$"abc \\n\\t\\" "@@', [(T.LEFT_DELIM, "$$"), QUOTE, (T.RIGHT_DELIM, "@@"), EOF]),
    ("raw quote", "$$" + RAW + "@@", [(T.LEFT_DELIM, "$$"), (T.RAW_STRING, RAW), (T.RIGHT_DELIM, "@@"), EOF]),
]


@pytest.mark.parametrize(
    ("text", "expected"), [t[1:] for t in LEX_DELIM_TESTS], ids=[t[0] for t in LEX_DELIM_TESTS]
)
def test_delims(text: str, expected: list[tuple[TokenType, str]]) -> None:
    assert collect(text, "$$", "@@") == expected


def test_delims_alphanumeric() -> None:
    assert collect("{{hub .host hub}}", "{{hub", "hub}}") == [
        (T.LEFT_DELIM, "{{hub"),
        SPACE,
        (T.FIELD, ".host"),
        SPACE,
        (T.RIGHT_DELIM, "hub}}"),
        EOF,
    ]


LEX_POS_TESTS = [
    ("empty", "", [Token(T.EOF, "", 0, 1)]),
    (
        "punctuation",
        "{{,@%#}}",
        [
            Token(T.LEFT_DELIM, "{{", 0, 1),
            Token(T.CHAR, ",", 2, 1),
            Token(T.CHAR, "@", 3, 1),
            Token(T.CHAR, "%", 4, 1),
            Token(T.CHAR, "#", 5, 1),
            Token(T.RIGHT_DELIM, "}}", 6, 1),
            Token(T.EOF, "", 8, 1),
        ],
    ),
    (
        "sample",
        "0123{{hello}}xyz",
        [
            Token(T.TEXT, "0123", 0, 1),
            Token(T.LEFT_DELIM, "{{", 4, 1),
            Token(T.IDENTIFIER, "hello", 6, 1),
            Token(T.RIGHT_DELIM, "}}", 11, 1),
            Token(T.TEXT, "xyz", 13, 1),
            Token(T.EOF, "", 16, 1),
        ],
    ),
    (
        "trimafter",
        "{{x -}}\n{{y}}",
        [
            Token(T.LEFT_DELIM, "{{", 0, 1),
            Token(T.IDENTIFIER, "x", 2, 1),
            Token(T.RIGHT_DELIM, "}}", 5, 1),
            Token(T.LEFT_DELIM, "{{", 8, 2),
            Token(T.IDENTIFIER, "y", 10, 2),
            Token(T.RIGHT_DELIM, "}}", 11, 2),
            Token(T.EOF, "", 13, 2),
        ],
    ),
    (
        "trimbefore",
        "{{x}}\n{{- y}}",
        [
            Token(T.LEFT_DELIM, "{{", 0, 1),
            Token(T.IDENTIFIER, "x", 2, 1),
            Token(T.RIGHT_DELIM, "}}", 3, 1),
            Token(T.LEFT_DELIM, "{{", 6, 2),
            Token(T.IDENTIFIER, "y", 10, 2),
            Token(T.RIGHT_DELIM, "}}", 11, 2),
            Token(T.EOF, "", 13, 2),
        ],
    ),
    (
        "lines across text, raw strings and spaces",
        "a\nb{{`x\ny`\n.z}}\n",
        [
            Token(T.TEXT, "a\nb", 0, 1),
            Token(T.LEFT_DELIM, "{{", 3, 2),
            Token(T.RAW_STRING, "`x\ny`", 5, 2),
            Token(T.SPACE, "\n", 10, 3),
            Token(T.FIELD, ".z", 11, 4),
            Token(T.RIGHT_DELIM, "}}", 13, 4),
            Token(T.TEXT, "\n", 15, 4),
            Token(T.EOF, "", 16, 5),
        ],
    ),
    (
        "positions count characters",
        "é{{.}}",
        [
            Token(T.TEXT, "é", 0, 1),
            Token(T.LEFT_DELIM, "{{", 1, 1),
            Token(T.DOT, ".", 3, 1),
            Token(T.RIGHT_DELIM, "}}", 4, 1),
            Token(T.EOF, "", 6, 1),
        ],
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [t[1:] for t in LEX_POS_TESTS], ids=[t[0] for t in LEX_POS_TESTS]
)
def test_positions(text: str, expected: list[Token]) -> None:
    assert list(lex(text)) == expected


@pytest.mark.parametrize(
    ("token", "text"),
    [
        (Token(T.EOF, "", 0, 1), "EOF"),
        (Token(T.ERROR, "boom", 0, 1), "boom"),
        (Token(T.RANGE, "range", 0, 1), "<range>"),
        (Token(T.DOT, ".", 0, 1), "<.>"),
        (Token(T.STRING, '"a"', 0, 1), '"\\"a\\""'),
        (Token(T.TEXT, "0123456789abc", 0, 1), '"0123456789"...'),
    ],
)
def test_token_str(token: Token, text: str) -> None:
    # Go's item.String(), as the parser's error messages show tokens.
    assert str(token) == text


def test_lexing_is_lazy() -> None:
    tokens = lex("{{.}}" + "x" * 10)
    assert next(tokens) == Token(T.LEFT_DELIM, "{{", 0, 1)
