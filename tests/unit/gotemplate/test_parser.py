"""Parser tests, ported from Go 1.19's text/template/parse/parse_test.go plus muster's own.

Trees print back to template source (``str(tree)``), as Go's ``String()`` does, so
most tests compare strings; error messages are the exact text Go 1.19 produces.
"""

# ruff: noqa: E501  (tables of Go source and messages read best one case per line)

from __future__ import annotations

import pytest

from muster.errors import TemplateSyntaxError
from muster.gotemplate import deepstack, nodes
from muster.gotemplate.lexer import TokenType
from muster.gotemplate.numbers import new_number
from muster.gotemplate.parser import is_empty_tree, parse
from muster.gotemplate.template import BUILTIN_NAMES

FUNCS = BUILTIN_NAMES | {"contains"}

# (name, source, str(tree)): Go's parse_test.go table plus muster's cases.
# Go prints assignments with ":="; muster prints "=" so the output re-parses the same.
PARSE_TESTS = [
    ("empty", "", ""),
    ("comment", "{{/*\n\n\n*/}}", ""),
    ("spaces", " \t\n", " \t\n"),
    ("text", "some text", "some text"),
    ("field", "{{.X}}", "{{.X}}"),
    ("simple command", "{{printf}}", "{{printf}}"),
    ("$ invocation", "{{$}}", "{{$}}"),
    ("variable invocation", "{{with $x := 3}}{{$x 23}}{{end}}", "{{with $x := 3}}{{$x 23}}{{end}}"),
    ("variable with fields", "{{$.I}}", "{{$.I}}"),
    ("multi-word command", "{{printf `%d` 23}}", "{{printf `%d` 23}}"),
    ("pipeline", "{{.X|.Y}}", "{{.X | .Y}}"),
    ("pipeline with decl", "{{$x := .X|.Y}}", "{{$x := .X | .Y}}"),
    ("nested pipeline", "{{.X (.Y .Z) (.A | .B .C) (.E)}}", "{{.X (.Y .Z) (.A | .B .C) (.E)}}"),
    ("field applied to parentheses", "{{(.Y .Z).Field}}", "{{(.Y .Z).Field}}"),
    ("simple if", "{{if .X}}hello{{end}}", "{{if .X}}hello{{end}}"),
    ("if with else", "{{if .X}}true{{else}}false{{end}}", "{{if .X}}true{{else}}false{{end}}"),
    (
        "if with else if",
        "{{if .X}}true{{else if .Y}}false{{end}}",
        "{{if .X}}true{{else}}{{if .Y}}false{{end}}{{end}}",
    ),
    (
        "if else chain",
        "+{{if .X}}X{{else if .Y}}Y{{else if .Z}}Z{{end}}+",
        "+{{if .X}}X{{else}}{{if .Y}}Y{{else}}{{if .Z}}Z{{end}}{{end}}{{end}}+",
    ),
    ("simple range", "{{range .X}}hello{{end}}", "{{range .X}}hello{{end}}"),
    ("chained field range", "{{range .X.Y.Z}}hello{{end}}", "{{range .X.Y.Z}}hello{{end}}"),
    (
        "nested range",
        "{{range .X}}hello{{range .Y}}goodbye{{end}}{{end}}",
        "{{range .X}}hello{{range .Y}}goodbye{{end}}{{end}}",
    ),
    ("range with else", "{{range .X}}true{{else}}false{{end}}", "{{range .X}}true{{else}}false{{end}}"),
    (
        "range over pipeline",
        "{{range .X|.M}}true{{else}}false{{end}}",
        "{{range .X | .M}}true{{else}}false{{end}}",
    ),
    ("range 1 var", "{{range $x := .SI}}{{.}}{{end}}", "{{range $x := .SI}}{{.}}{{end}}"),
    ("range 2 vars", "{{range $x, $y := .SI}}{{.}}{{end}}", "{{range $x, $y := .SI}}{{.}}{{end}}"),
    ("range with break", "{{range .SI}}{{.}}{{break}}{{end}}", "{{range .SI}}{{.}}{{break}}{{end}}"),
    ("range with continue", "{{range .SI}}{{.}}{{continue}}{{end}}", "{{range .SI}}{{.}}{{continue}}{{end}}"),
    (
        "constants",
        "{{range .SI 1 -3.2i true false 'a' nil}}{{end}}",
        "{{range .SI 1 -3.2i true false 'a' nil}}{{end}}",
    ),
    ("template", "{{template `x`}}", '{{template "x"}}'),
    ("template with arg", "{{template `x` .Y}}", '{{template "x" .Y}}'),
    ("with", "{{with .X}}hello{{end}}", "{{with .X}}hello{{end}}"),
    ("with with else", "{{with .X}}hello{{else}}goodbye{{end}}", "{{with .X}}hello{{else}}goodbye{{end}}"),
    ("trim left", "x \r\n\t{{- 3}}", "x{{3}}"),
    ("trim right", "{{3 -}}\n\n\ty", "{{3}}y"),
    ("trim left and right", "x \r\n\t{{- 3 -}}\n\n\ty", "x{{3}}y"),
    ("trim with extra spaces", "x\n{{-  3   -}}\ny", "x{{3}}y"),
    ("comment trim left", "x \r\n\t{{- /* hi */}}", "x"),
    ("comment trim right", "{{/* hi */ -}}\n\n\ty", "y"),
    ("comment trim left and right", "x \r\n\t{{- /* */ -}}\n\n\ty", "xy"),
    ("block definition", '{{block "foo" .}}hello{{end}}', '{{template "foo" .}}'),
    ("newline in assignment", "{{ $x \n := \n 1 \n }}", "{{$x := 1}}"),
    ("newline in pipeline", '{{\n"x"\n|\nprintf\n}}', '{{"x" | printf}}'),
    ("newline in comment", "{{/*\nhello\n*/}}", ""),
    ("newline in trimmed comment", "{{-\n/*\nhello\n*/\n-}}", ""),
    (
        "spaces around continue",
        "{{range .SI}}{{.}}{{ continue }}{{end}}",
        "{{range .SI}}{{.}}{{continue}}{{end}}",
    ),
    ("spaces around break", "{{range .SI}}{{.}}{{ break }}{{end}}", "{{range .SI}}{{.}}{{break}}{{end}}"),
    ("bug0a", "{{$x := 0}}{{$x}}", "{{$x := 0}}{{$x}}"),
    ("bug1c", "{{$x:=.}}{{$x +2}}", "{{$x := .}}{{$x +2}}"),
    ("assignment", "{{$x := 1}}{{$x = 2}}", "{{$x := 1}}{{$x = 2}}"),
    (
        "range assignment",
        "{{$i := 0}}{{$v := 0}}{{range $i, $v = .}}{{end}}",
        "{{$i := 0}}{{$v := 0}}{{range $i, $v = .}}{{end}}",
    ),
    ("variable chain", "{{$x := .}}{{$x.a.b}}", "{{$x := .}}{{$x.a.b}}"),
    ("dollar chain", "{{$.a.b}}", "{{$.a.b}}"),
    ("field chain", "{{.a.b.c}}", "{{.a.b.c}}"),
    ("identifier chain", "{{printf.a}}", "{{printf.a}}"),
    ("paren chain", "{{(printf).a.b}}", "{{(printf).a.b}}"),
    ("nil argument", "{{printf nil}}", "{{printf nil}}"),
    ("parenthesized argument", "{{printf (1)}}", "{{printf (1)}}"),
    ("raw string", "{{`a\\n`}}", "{{`a\\n`}}"),
    ("string escapes", '{{"a\\n\\x41\\u00e9"}}', '{{"a\\n\\x41\\u00e9"}}'),
    (
        "numbers kept as written",
        "{{print 0x1F 1_000 1e3 0x1p4 .5 1. 'x' 1i 1+2i -0}}",
        "{{print 0x1F 1_000 1e3 0x1p4 .5 1. 'x' 1i 1+2i -0}}",
    ),
    (
        "else if inside with becomes nested",
        "{{with .}}{{else}}{{if .}}{{end}}{{end}}",
        "{{with .}}{{else}}{{if .}}{{end}}{{end}}",
    ),
    ("define removed from body", '{{define "x"}}X{{end}}body', "body"),
    ("template names are quoted like Go", '{{template "a\\tb\\x01\\u00e9"}}', '{{template "a\\tb\\x01é"}}'),
    ("comment inside if", "{{if .}}{{/* c */}}{{end}}", "{{if .}}{{end}}"),
    ("declare in paren", "{{($x := 1)}}", "{{($x := 1)}}"),
]

# (name, source, message): Go's parse_test.go error tables plus muster's cases; the
# messages are Go 1.19's own, produced by text/template.
ERROR_TESTS = [
    ("emptyAction", "{{}}", "template: t:1: missing value for command"),
    ("newline in empty action", "{{\n}}", "template: t:2: missing value for command"),
    ("unclosed action", "hello{{range", "template: t:1: unclosed action"),
    ("unmatched end", "{{end}}", "template: t:1: unexpected {{end}}"),
    ("unmatched else", "{{else}}", "template: t:1: unexpected {{else}}"),
    ("unmatched else after if", "{{if .X}}hello{{end}}{{else}}", "template: t:1: unexpected {{else}}"),
    ("multiple else", "{{if .X}}1{{else}}2{{else}}3{{end}}", "template: t:1: expected end; found {{else}}"),
    ("missing end", "hello{{range .x}}", "template: t:1: unexpected EOF"),
    ("missing end after else", "hello{{range .x}}{{else}}", "template: t:1: unexpected EOF"),
    ("undefined function", "hello{{undefined}}", 'template: t:1: function "undefined" not defined'),
    ("undefined variable", "{{$x}}", 'template: t:1: undefined variable "$x"'),
    (
        "variable undefined after end",
        "{{with $x := 4}}{{end}}{{$x}}",
        'template: t:1: undefined variable "$x"',
    ),
    (
        "variable undefined in template",
        "{{template $v}}",
        'template: t:1: unexpected "$v" in template clause',
    ),
    ("declare with field", "{{with $x.Y := 4}}{{end}}", 'template: t:1: undefined variable "$x"'),
    ("template with field ref", "{{template .X}}", 'template: t:1: unexpected ".X" in template clause'),
    ("invalid punctuation", "{{printf 3, 4}}", 'template: t:1: unexpected "," in operand'),
    (
        "multidecl outside range",
        "{{with $v, $u := 3}}{{end}}",
        "template: t:1: too many declarations in with",
    ),
    (
        "too many decls in range",
        "{{range $u, $v, $w := 3}}{{end}}",
        "template: t:1: too many declarations in range",
    ),
    ("dot applied to parentheses", "{{printf (printf .).}}", "template: t:1: unexpected <.> in operand"),
    ("adjacent args", "{{printf 3`x`}}", 'template: t:1: unexpected "`x`" in operand'),
    ("adjacent args with .", "{{printf `x`.}}", "template: t:1: unexpected <.> in operand"),
    ("extra end after if", "{{if .X}}a{{else if .Y}}b{{end}}{{end}}", "template: t:1: unexpected {{end}}"),
    ("break outside range", "{{range .}}{{end}} {{break}}", "template: t:1: {{break}} outside {{range}}"),
    (
        "continue outside range",
        "{{range .}}{{end}} {{continue}}",
        "template: t:1: {{continue}} outside {{range}}",
    ),
    (
        "break in range else",
        "{{range .}}{{else}}{{break}}{{end}}",
        "template: t:1: {{break}} outside {{range}}",
    ),
    (
        "continue in range else",
        "{{range .}}{{else}}{{continue}}{{end}}",
        "template: t:1: {{continue}} outside {{range}}",
    ),
    ("bug0b", "{{$x += 1}}{{$x}}", 'template: t:1: undefined variable "$x"'),
    ("bug0c", "{{$x ! 2}}{{$x}}", 'template: t:1: undefined variable "$x"'),
    ("bug0d", "{{$x % 3}}{{$x}}", 'template: t:1: undefined variable "$x"'),
    ("bug0e", "{{range $x := $y := 3}}{{end}}", 'template: t:1: undefined variable "$y"'),
    ("bug1a", "{{$x:=.}}{{$x!2}}", "template: t:1: bad character U+0021 '!'"),
    ("bug1b", "{{$x:=.}}{{$x+2}}", "template: t:1: bad character U+002B '+'"),
    ("dot after integer", "{{1.E}}", 'template: t:1: illegal number syntax: "1.E"'),
    ("dot after float", "{{0.1.E}}", 'template: t:1: unexpected . after term "0.1"'),
    ("dot after boolean", "{{true.E}}", 'template: t:1: unexpected . after term "true"'),
    ("dot after char", "{{'a'.any}}", "template: t:1: unexpected . after term \"'a'\""),
    ("dot after string", '{{"hello".guys}}', 'template: t:1: unexpected . after term "\\"hello\\""'),
    ("dot after dot", "{{..E}}", 'template: t:1: unexpected . after term "."'),
    ("dot after nil", "{{nil.E}}", 'template: t:1: unexpected . after term "nil"'),
    ("wrong pipeline dot", "{{12|.}}", "template: t:1: non executable command in pipeline stage 2"),
    ("wrong pipeline number", "{{.|12|printf}}", "template: t:1: non executable command in pipeline stage 2"),
    (
        "wrong pipeline string",
        '{{.|printf|"error"}}',
        "template: t:1: non executable command in pipeline stage 3",
    ),
    ("wrong pipeline char", "{{12|printf|'e'}}", "template: t:1: non executable command in pipeline stage 3"),
    ("wrong pipeline boolean", "{{.|true}}", "template: t:1: non executable command in pipeline stage 2"),
    ("wrong pipeline nil", "{{'c'|nil}}", "template: t:1: non executable command in pipeline stage 2"),
    ("empty pipeline", '{{printf "%d" ( ) }}', "template: t:1: missing value for parenthesized pipeline"),
    (
        "block without pipeline",
        '{{block "foo"}}hello{{end}}',
        "template: t:1: missing value for block clause",
    ),
    ("unclosed1", "line1\n{{", "template: t:2: unclosed action"),
    ("unclosed2", "line1\n{{define `x`}}line2\n{{", "template: t:3: unclosed action"),
    ("unclosed3", 'line1\n{{"x"\n"y"\n', "template: t:4: unclosed action started at t:2"),
    ("unclosed4", "{{\n\n\n\n\n", "template: t:6: unclosed action started at t:1"),
    ("var1", "line1\n{{\nx\n}}", 'template: t:3: function "x" not defined'),
    ("function", "{{foo}}", 'template: t:1: function "foo" not defined'),
    ("comment1", "{{/*}}", "template: t:1: unclosed comment"),
    ("comment2", "{{/*\nhello\n}}", "template: t:1: unclosed comment"),
    ("lparen", "{{.X (1 2 3}}", "template: t:1: unclosed left paren"),
    ("rparen", "{{.X 1 2 3 ) }}", 'template: t:1: unexpected ")" in command'),
    ("rparen2", "{{(.X 1 2 3", "template: t:1: unclosed action"),
    ("space", "{{`x`3}}", 'template: t:1: unexpected "3" in operand'),
    ("idchar", "{{a#}}", "template: t:1: bad character U+0023 '#'"),
    ("charconst", "{{'a}}", "template: t:1: unterminated character constant"),
    ("stringconst", '{{"a}}', "template: t:1: unterminated quoted string"),
    ("rawstringconst", "{{`a}}", "template: t:1: unterminated raw quoted string"),
    ("number", "{{0xi}}", 'template: t:1: illegal number syntax: "0xi"'),
    (
        "multidefine",
        "{{define `a`}}a{{end}}{{define `a`}}b{{end}}",
        'template: t:1: template: multiple definition of template "a"',
    ),
    ("eof", "{{range .X}}", "template: t:1: unexpected EOF"),
    (
        "variable",
        "{{$x := 23}}{{with $x.y := 3}}{{$x 23}}{{end}}",
        'template: t:1: unexpected ":=" in operand',
    ),
    ("multidecl", "{{$a,$b,$c := 23}}", "template: t:1: too many declarations in command"),
    ("undefvar", "{{$a}}", 'template: t:1: undefined variable "$a"'),
    ("wrongdot", "{{true.any}}", 'template: t:1: unexpected . after term "true"'),
    ("wrongpipeline", "{{12|false}}", "template: t:1: non executable command in pipeline stage 2"),
    ("emptypipeline", "{{ ( ) }}", "template: t:1: missing value for parenthesized pipeline"),
    ("multilinerawstring", "{{ $v := `\n` }} {{", "template: t:2: unclosed action"),
    ("rangeundefvar", "{{range $k}}{{end}}", 'template: t:1: undefined variable "$k"'),
    ("rangeundefvars", "{{range $k, $v}}{{end}}", 'template: t:1: undefined variable "$v"'),
    ("rangemissingvalue1", "{{range $k,}}{{end}}", "template: t:1: missing value for range"),
    ("rangemissingvalue2", "{{range $k, $v := }}{{end}}", "template: t:1: missing value for range"),
    ("rangenotvariable1", "{{range $k, .}}{{end}}", "template: t:1: range can only initialize variables"),
    (
        "rangenotvariable2",
        "{{range $k, 123 := .}}{{end}}",
        "template: t:1: range can only initialize variables",
    ),
    ("else with", "{{with .}}{{else with .}}{{end}}", "template: t:1: unexpected <with> in else"),
    ("else if in range", "{{range .}}{{else if .}}{{end}}", "template: t:1: unexpected <if> in input"),
    ("octal-looking decimal", "{{09}}", 'template: t:1: integer overflow: "09"'),
    (
        "integer overflow",
        "{{99999999999999999999}}",
        'template: t:1: integer overflow: "99999999999999999999"',
    ),
    ("float overflow", "{{1e400}}", 'template: t:1: illegal number syntax: "1e400"'),
    ("illegal number", "{{0x1.8}}", 'template: t:1: illegal number syntax: "0x1.8"'),
    ("bad escape", '{{"\\q"}}', "template: t:1: invalid syntax"),
    ("bad raw define name", '{{define "\\q"}}{{end}}', "template: t:1: invalid syntax"),
    ("empty char", "{{''}}", "template: t:1: invalid syntax"),
    ("two chars", "{{'ab'}}", "template: t:1: malformed character constant: 'ab'"),
    ("bad char escape", "{{'\\q'}}", "template: t:1: invalid syntax"),
    ("complex syntax", "{{1+i}}", "template: t:1: syntax error scanning complex number"),
    ("complex real part", "{{+i+2i}}", 'template: t:1: strconv.ParseFloat: parsing "+i": invalid syntax'),
    ("define without name", "{{define}}{{end}}", 'template: t:1: unexpected "}}" in define clause'),
    ("define name not closed", '{{define "a" .}}{{end}}', "template: t:1: unexpected <.> in define clause"),
    (
        "define ended by else",
        '{{define "a"}}{{else}}{{end}}',
        "template: t:1: unexpected {{else}} in define clause",
    ),
    (
        "block ended by else",
        '{{block "a" .}}{{else}}{{end}}',
        "template: t:1: unexpected {{else}} in block clause",
    ),
    ("block unclosed", '{{block "a" .}}', "template: t:1: unexpected EOF"),
    ("template without name", "{{template}}", 'template: t:1: unexpected "}}" in template clause'),
    ("break with argument", "{{range .}}{{break 1}}{{end}}", 'template: t:1: unexpected "1" in {{break}}'),
    (
        "continue with argument",
        "{{range .}}{{continue 1}}{{end}}",
        'template: t:1: unexpected "1" in {{continue}}',
    ),
    ("end with argument", "{{if .}}{{end 1}}", 'template: t:1: unexpected "1" in end'),
    ("else with argument", "{{if .}}{{else 1}}{{end}}", 'template: t:1: unexpected "1" in else'),
    (
        "block redefined",
        '{{define "a"}}x{{end}}{{block "a" .}}y{{end}}',
        'template: t:1: template: multiple definition of template "a"',
    ),
    ("unexpected token in input", "{{if .}}{{else if .}}{{end}}{{end}}", "template: t:1: unexpected {{end}}"),
    ("error started earlier", "{{if\n.}}{{'\n}}", "template: t:2: unterminated character constant"),
    ("unexpected char after operand", "{{print 1,}}", 'template: t:1: unexpected "," in operand'),
    (
        "undefined function in define",
        '{{define "x"}}\n{{nope}}{{end}}',
        'template: t:2: function "nope" not defined',
    ),
    ("range keyword only", "{{range}}{{end}}", "template: t:1: missing value for range"),
    ("if keyword only", "{{if}}{{end}}", "template: t:1: missing value for if"),
    (
        "char error in multiline action",
        "{{\n'a}}",
        "template: t:2: unterminated character constant in action started at t:1",
    ),
    (
        "string error in multiline action",
        '{{\n"a\n}}',
        "template: t:2: unterminated quoted string in action started at t:1",
    ),
    (
        "complex with binary real part",
        "{{print 0b1+2i}}",
        "template: t:1: syntax error scanning complex number",
    ),
    (
        "complex with bad imaginary part",
        "{{print 1+0x1i}}",
        'template: t:1: strconv.ParseFloat: parsing "+0x1": invalid syntax',
    ),
]


def parse_one(text: str, name: str = "t") -> nodes.Tree:
    return parse(name, text, FUNCS)[name]


@pytest.mark.parametrize(("text", "expected"), [t[1:] for t in PARSE_TESTS], ids=[t[0] for t in PARSE_TESTS])
def test_parse(text: str, expected: str) -> None:
    assert str(parse_one(text)) == expected


@pytest.mark.parametrize(("text", "expected"), [t[1:] for t in PARSE_TESTS], ids=[t[0] for t in PARSE_TESTS])
def test_printed_tree_parses_to_itself(text: str, expected: str) -> None:
    assert str(parse_one(expected)) == expected


@pytest.mark.parametrize(("text", "message"), [t[1:] for t in ERROR_TESTS], ids=[t[0] for t in ERROR_TESTS])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        parse("t", text, FUNCS)
    assert str(info.value) == message
    assert info.value.name == "t"
    assert message.startswith(f"template: t:{info.value.line}: ")


def test_error_names_the_top_level_template_inside_a_define() -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        parse("main.tmpl", '{{define "inner"}}\n\n{{nope}}{{end}}', FUNCS)
    assert str(info.value) == 'template: main.tmpl:3: function "nope" not defined'
    assert (info.value.name, info.value.line, info.value.col) == ("main.tmpl", 3, 0)


def test_user_functions_are_known() -> None:
    assert str(parse_one("{{contains 1}}")) == "{{contains 1}}"
    with pytest.raises(TemplateSyntaxError, match='function "getv" not defined'):
        parse_one("{{getv 1}}")
    assert str(parse("t", "{{getv 1}}", {"getv"})["t"]) == "{{getv 1}}"


def test_break_and_continue_are_keywords_even_with_such_functions() -> None:
    # Go 1.19 checks for "break"/"continue" functions before installing any.
    with pytest.raises(TemplateSyntaxError, match="outside"):
        parse("t", "{{break}}", FUNCS | {"break"})


# (text, is_int, is_uint, is_float, is_complex, int, uint, float, complex): Go's numberTests.
NUMBER_TESTS: list[tuple[str, bool, bool, bool, bool, int, int, float, complex]] = [
    ("0", True, True, True, False, 0, 0, 0, 0),
    ("-0", True, True, True, False, 0, 0, 0, 0),  # check that -0 is a uint
    ("73", True, True, True, False, 73, 73, 73, 0),
    ("7_3", True, True, True, False, 73, 73, 73, 0),
    ("0b10_010_01", True, True, True, False, 73, 73, 73, 0),
    ("0B10_010_01", True, True, True, False, 73, 73, 73, 0),
    ("073", True, True, True, False, 0o73, 0o73, 0o73, 0),
    ("0o73", True, True, True, False, 0o73, 0o73, 0o73, 0),
    ("0O73", True, True, True, False, 0o73, 0o73, 0o73, 0),
    ("0x73", True, True, True, False, 0x73, 0x73, 0x73, 0),
    ("0X73", True, True, True, False, 0x73, 0x73, 0x73, 0),
    ("0x7_3", True, True, True, False, 0x73, 0x73, 0x73, 0),
    ("-73", True, False, True, False, -73, 0, -73, 0),
    ("+73", True, False, True, False, 73, 0, 73, 0),
    ("100", True, True, True, False, 100, 100, 100, 0),
    ("1e9", True, True, True, False, 10**9, 10**9, 1e9, 0),
    ("-1e9", True, False, True, False, -(10**9), 0, -1e9, 0),
    ("-1.2", False, False, True, False, 0, 0, -1.2, 0),
    ("1e19", False, True, True, False, 0, 10**19, 1e19, 0),
    ("1e1_9", False, True, True, False, 0, 10**19, 1e19, 0),
    ("1E19", False, True, True, False, 0, 10**19, 1e19, 0),
    ("-1e19", False, False, True, False, 0, 0, -1e19, 0),
    ("0x_1p4", True, True, True, False, 16, 16, 16, 0),
    ("0X_1P4", True, True, True, False, 16, 16, 16, 0),
    ("0x_1p-4", False, False, True, False, 0, 0, 1 / 16, 0),
    ("4i", False, False, False, True, 0, 0, 0, 4j),
    ("-1.2+4.2i", False, False, False, True, 0, 0, 0, -1.2 + 4.2j),
    ("073i", False, False, False, True, 0, 0, 0, 73j),  # not octal!
    # complex with 0 imaginary are float (and maybe integer)
    ("0i", True, True, True, True, 0, 0, 0, 0),
    ("-1.2+0i", False, False, True, True, 0, 0, -1.2, -1.2),
    ("-12+0i", True, False, True, True, -12, 0, -12, -12),
    ("13+0i", True, True, True, True, 13, 13, 13, 13),
    ("0x1p1+0x1p2i", False, False, False, True, 0, 0, 0, 2 + 4j),
    ("0x1.8p1-0x.8p1i", False, False, False, True, 0, 0, 0, 3 - 1j),
    # funny bases
    ("0123", True, True, True, False, 0o123, 0o123, 0o123, 0),
    ("-0x0", True, True, True, False, 0, 0, 0, 0),
    ("0xdeadbeef", True, True, True, False, 0xDEADBEEF, 0xDEADBEEF, 0xDEADBEEF, 0),
    # character constants
    ("'a'", True, True, True, False, 97, 97, 97, 0),
    ("'\\n'", True, True, True, False, 10, 10, 10, 0),
    ("'\\\\'", True, True, True, False, 92, 92, 92, 0),
    ("'\\''", True, True, True, False, 39, 39, 39, 0),
    ("'\\xFF'", True, True, True, False, 0xFF, 0xFF, 0xFF, 0),
    ("'パ'", True, True, True, False, 0x30D1, 0x30D1, 0x30D1, 0),
    ("'\\u30d1'", True, True, True, False, 0x30D1, 0x30D1, 0x30D1, 0),
    ("'\\U000030d1'", True, True, True, False, 0x30D1, 0x30D1, 0x30D1, 0),
    ("'\\101'", True, True, True, False, 65, 65, 65, 0),
    ("'\\a'", True, True, True, False, 7, 7, 7, 0),
    ("'\udcff'", True, True, True, False, 0xFFFD, 0xFFFD, 0xFFFD, 0),  # an invalid byte is U+FFFD
    # Issue 8622 - 0xe parsed as floating point.
    ("0xef", True, True, True, False, 0xEF, 0xEF, 0xEF, 0),
    # muster: limits of int64 and uint64
    ("9223372036854775807", True, True, True, False, 2**63 - 1, 2**63 - 1, 2.0**63, 0),
    ("9223372036854775808", False, True, True, False, 0, 2**63, 2.0**63, 0),
    ("-9223372036854775808", True, False, True, False, -(2**63), 0, -(2.0**63), 0),
    ("18446744073709551615", False, True, True, False, 0, 2**64 - 1, 2.0**64, 0),
    ("-0.0", True, True, True, False, 0, 0, -0.0, 0),
    ("1e-400", True, True, True, False, 0, 0, 0, 0),  # underflow is zero, not an error
    ("1_2.5_0e1_0", True, True, True, False, 125 * 10**9, 125 * 10**9, 1.25e11, 0),
    ("0x_1.8p1", True, True, True, False, 3, 3, 3, 0),
]

BROKEN_NUMBERS = [
    "+-2",
    "0x123.",
    "1e.",
    "0xi.",
    "1+2.",
    "'x",
    "'xx'",
    "'433937734937734969526500969526500'",  # integer too large - issue 10634
    "18446744073709551616",
    "-9223372036854775809",
    "0x1p1024",
    "1_",
    "0_x1",
    "1__2",
    "0b",
    "0x",
    "0b2",
]


def _kind(text: str) -> TokenType:
    if text.startswith("'"):
        return TokenType.CHAR_CONSTANT
    if "+" in text[1:] or "-" in text[1:] and "e-" not in text and "p-" not in text:
        return TokenType.COMPLEX
    return TokenType.NUMBER


@pytest.mark.parametrize("case", NUMBER_TESTS, ids=[t[0] for t in NUMBER_TESTS])
def test_number_parse(case: tuple[str, bool, bool, bool, bool, int, int, float, complex]) -> None:
    text, is_int, is_uint, is_float, is_complex, int_value, uint_value, float_value, complex_value = case
    number = new_number(0, text, _kind(text))
    assert (number.is_int, number.is_uint, number.is_float, number.is_complex) == (
        is_int,
        is_uint,
        is_float,
        is_complex,
    )
    assert number.text == str(number) == text
    if is_int:
        assert number.int_value == int_value
    if is_uint:
        assert number.uint_value == uint_value
    if is_float:
        assert number.float_value == float_value
    if is_complex:
        assert number.complex_value == complex_value


@pytest.mark.parametrize("text", BROKEN_NUMBERS)
def test_broken_numbers(text: str) -> None:
    with pytest.raises(TemplateSyntaxError):
        parse_one("{{print " + text + "}}")


@pytest.mark.parametrize(
    ("text", "empty"),
    [
        ("", True),
        ("hello", False),
        (" \t\n \t\n", True),
        ("\u00a0\u2003\u3000", True),
        ("\x1c", False),  # Python's isspace() is wider than Go's unicode.IsSpace
        ("{{/* comment */}}", True),
        ('{{define "x"}}something{{end}}', True),
        ("{{define `x`}}something{{end}}\n\n{{define `y`}}something{{end}}\n\n", True),
        ("{{define `x`}}something{{end}}\nx\n{{define `y`}}something{{end}}\ny\n", False),
        ("{{define `x`}}something{{end}}{{if 3}}foo{{end}}", False),
        ("{{.}}", False),
    ],
)
def test_is_empty(text: str, empty: bool) -> None:
    assert is_empty_tree(parse_one(text, "root").root) is empty


def test_is_empty_tree_of_nothing_and_of_comments() -> None:
    assert is_empty_tree(None)
    comment = parse("t", "{{/* c */}}", FUNCS, parse_comments=True)["t"].root
    assert isinstance(comment.nodes[0], nodes.CommentNode)
    assert is_empty_tree(comment)


def test_block() -> None:
    trees = parse("outer", 'a{{block "inner" .}}bar{{.}}baz{{end}}b', FUNCS)
    assert str(trees["outer"]) == 'a{{template "inner" .}}b'
    assert str(trees["inner"]) == "bar{{.}}baz"
    assert trees["inner"].parse_name == "outer"


def test_definitions_share_the_source_text() -> None:
    text = '{{define "a"}}A{{end}}{{define "b"}}B{{end}}c'
    trees = parse("t", text, FUNCS)
    assert sorted(trees) == ["a", "b", "t"]
    assert {tree.text for tree in trees.values()} == {text}
    assert [tree.name for tree in trees.values()] == list(trees)


def test_empty_definition_does_not_replace_and_is_replaced() -> None:
    trees = parse("t", '{{define "a"}}A{{end}}{{define "a"}} {{/* c */}} {{end}}', FUNCS)
    assert str(trees["a"]) == "A"
    trees = parse("t", '{{define "a"}} {{end}}{{define "a"}}A{{end}}', FUNCS)
    assert str(trees["a"]) == "A"


def test_body_named_like_a_definition() -> None:
    # The top-level tree is added last: an empty body keeps the definition.
    trees = parse("a", '{{define "a"}}A{{end}}  ', FUNCS)
    assert str(trees["a"]) == "A"
    with pytest.raises(TemplateSyntaxError, match='multiple definition of template "a"'):
        parse("a", '{{define "a"}}A{{end}}body', FUNCS)


def test_line_numbers() -> None:
    tree = parse_one("{{printf 1234}}\n" * 100)
    for i, node in enumerate(tree.root.nodes[::2]):
        assert isinstance(node, nodes.ActionNode)
        assert node.pipe is not None
        assert node.line == node.pipe.line == i + 1


def test_parse_with_comments() -> None:
    tests = [
        ("{{/*\n\n\n*/}}", "{{/*\n\n\n*/}}"),
        ("x \r\n\t{{- /* hi */}}", "x{{/* hi */}}"),
        ("{{/* hi */ -}}\n\n\ty", "{{/* hi */}}y"),
        ("x \r\n\t{{- /* */ -}}\n\n\ty", "x{{/* */}}y"),
    ]
    for text, expected in tests:
        assert str(parse("t", text, FUNCS, parse_comments=True)["t"]) == expected


def test_delimiters() -> None:
    tree = parse("t", "<<.a>> {{.b}} <<- if .c ->> x <<end>>", FUNCS, left_delim="<<", right_delim=">>")["t"]
    assert str(tree) == "{{.a}} {{.b}}{{if .c}}x {{end}}"


def _positions(tree: nodes.Tree) -> list[tuple[str, int, int]]:
    found: list[tuple[str, int, int]] = []

    def walk(node: nodes.Node | None) -> None:
        if node is None:
            return
        found.append((type(node).__name__, *tree.error_context(node)[1:]))
        match node:
            case nodes.ListNode():
                for child in node.nodes:
                    walk(child)
            case nodes.ActionNode():
                walk(node.pipe)
            case nodes.PipeNode():
                for part in (*node.decl, *node.cmds):
                    walk(part)
            case nodes.CommandNode():
                for arg in node.args:
                    walk(arg)
            case nodes.ChainNode():
                walk(node.node)
            case nodes.BranchNode():
                walk(node.pipe)
                walk(node.list)
                walk(node.else_list)

    walk(tree.root)
    return found


def test_node_positions_match_go() -> None:
    # Expected values come from Go's Tree.ErrorContext on the same source: columns
    # are 0-based bytes, and fields after a term sit where the first field starts.
    tree = parse_one("é{{$x := .a.b}}\n{{if (print $x).c}}{{$x.d}}{{end}}")
    assert _positions(tree) == [
        ("ListNode", 1, 0),
        ("TextNode", 1, 0),
        ("ActionNode", 1, 4),
        ("PipeNode", 1, 4),
        ("VariableNode", 1, 4),
        ("CommandNode", 1, 10),
        ("FieldNode", 1, 12),
        ("TextNode", 1, 16),
        ("IfNode", 2, 5),
        ("PipeNode", 2, 5),
        ("CommandNode", 2, 5),
        ("ChainNode", 2, 15),
        ("PipeNode", 2, 6),
        ("CommandNode", 2, 6),
        ("IdentifierNode", 2, 6),
        ("VariableNode", 2, 12),
        ("ListNode", 2, 19),
        ("ActionNode", 2, 21),
        ("PipeNode", 2, 21),
        ("CommandNode", 2, 21),
        ("VariableNode", 2, 23),
    ]


@pytest.mark.parametrize(
    "text",
    ["{{" + "(" * 1000 + "1" + ")" * 1000 + "}}", "{{if 1}}\n" * 1000 + "{{end}}" * 1000],
    ids=["parentheses", "ifs"],
)
def test_deep_nesting_parses_on_a_deep_stack(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Go's parser has no depth limit either (printing the tree back recurses too).
    assert deepstack.run_deep(lambda: str(parse_one(text))) == text
    monkeypatch.setattr(deepstack, "DEEP_RECURSION_LIMIT", 500)  # a deep stack too shallow
    with pytest.raises(TemplateSyntaxError, match=r"^template: t:\d+: template nested too deeply$") as info:
        parse_one(text)
    assert info.value.line >= 1


def test_moderate_nesting_parses() -> None:
    text = "{{if 1}}" * 50 + "{{" + "(" * 50 + "1" + ")" * 50 + "}}" + "{{end}}" * 50
    assert str(parse_one(text)) == text
