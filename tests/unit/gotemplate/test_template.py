"""Tests of the public Template API: Go 1.19's text/template.Template semantics."""

from __future__ import annotations

import pytest

from muster.errors import TemplateExecError, TemplateSyntaxError
from muster.golang.values import GoFunc
from muster.gotemplate import BUILTIN_NAMES, Template, funcs


def test_parse_returns_the_template_and_executes() -> None:
    tmpl = Template("t")
    assert tmpl.parse("hello {{.}}") is tmpl
    assert tmpl.execute("world") == "hello world"
    assert tmpl.execute() == "hello <no value>"


def test_definitions_join_the_set() -> None:
    tmpl = Template("main").parse('{{define "a"}}A{{.}}{{end}}{{block "b" .}}B{{end}}[{{template "a" 1}}]')
    assert sorted(t.name for t in tmpl.templates) == ["a", "b", "main"]
    assert tmpl.execute(2) == "B[A1]"
    assert tmpl.execute_template("a", 3) == "A3"
    a = tmpl.lookup("a")
    assert a is not None
    assert a.name == "a"
    assert repr(a) == "<Template 'a'>"
    assert a.execute("x") == "Ax"
    assert a.tree is not None
    assert str(a.tree) == "A{{.}}"
    assert tmpl.lookup("missing") is None


def test_templates_defined_in_later_parses_see_each_other() -> None:
    tmpl = Template("main").parse('{{template "part" .}}!')
    with pytest.raises(TemplateExecError, match='template "part" not defined'):
        tmpl.execute(1)
    tmpl.parse('{{define "part"}}part {{.}}{{end}}')
    assert tmpl.execute(1) == "part 1!"


def test_redefinition_in_a_later_parse_replaces() -> None:
    tmpl = Template("main").parse('{{define "a"}}old{{end}}{{template "a"}}')
    tmpl.parse('{{define "a"}}new{{end}}')
    assert tmpl.execute() == "new"


def test_empty_body_does_not_replace() -> None:
    # Go: a body of only space and comments does not replace an existing template,
    # so Parse can add definitions without wiping the main body.
    tmpl = Template("main").parse("body")
    tmpl.parse('  {{/* only definitions */}}\n{{define "x"}}X{{end}}\n')
    assert tmpl.execute() == "body"
    tmpl.parse("new body")
    assert tmpl.execute() == "new body"


def test_empty_template_executes_to_nothing() -> None:
    assert Template("t").parse("").execute() == ""
    assert Template("t").parse('{{define "x"}}X{{end}}').execute() == ""


def test_a_parse_error_leaves_the_set_unchanged() -> None:
    tmpl = Template("main").parse("good")
    with pytest.raises(TemplateSyntaxError) as info:
        tmpl.parse('{{define "a"}}A{{end}}\n{{.x')
    assert str(info.value) == "template: main:2: unclosed action"
    assert (info.value.name, info.value.line) == ("main", 2)
    assert tmpl.lookup("a") is None
    assert tmpl.execute() == "good"


def test_an_unparsed_template_cannot_execute() -> None:
    with pytest.raises(TemplateExecError) as info:
        Template("x").execute()
    assert str(info.value) == 'template: x: "x" is an incomplete or empty template'


def test_execute_template_of_an_unknown_name() -> None:
    tmpl = Template("x").parse("x")
    with pytest.raises(TemplateExecError) as info:
        tmpl.execute_template("y", None)
    assert str(info.value) == 'template: no template "y" associated with template "x"'


def test_new_template_shares_the_set() -> None:
    main = Template("main").parse('{{template "other" .}}')
    other = main.new("other")
    assert other.tree is None
    assert main.lookup("other") is None
    other.parse("other {{.}}")
    assert main.execute(1) == "other 1"
    assert sorted(t.name for t in other.templates) == ["main", "other"]


def test_user_functions() -> None:
    upper = GoFunc(str.upper, ("string",), name="upper")
    tmpl = Template("t", funcs={"upper": upper}).parse('{{upper .}} {{"b" | upper}}')
    assert tmpl.execute("a") == "A B"
    with pytest.raises(TemplateSyntaxError, match='function "upper" not defined'):
        Template("t").parse("{{upper .}}")


def test_user_functions_override_builtins() -> None:
    shout = GoFunc(lambda s: s + "!", ("string",), name="len")
    assert Template("t", funcs={"len": shout}).parse('{{len "a"}}').execute() == "a!"


def test_delims() -> None:
    tmpl = Template("t").delims("[[", "]]")
    assert tmpl.parse("[[.]] {{.}}").execute(1) == "1 {{.}}"
    tmpl.delims()
    assert tmpl.parse("{{.}}").execute(2) == "2"


def test_builtin_names_are_the_executors_builtins() -> None:
    assert set(funcs.BUILTINS) == BUILTIN_NAMES


def test_errors_keep_gos_shape() -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        Template("nginx.tmpl").parse("upstream {\n{{range .}}\n")
    assert str(info.value) == "template: nginx.tmpl:3: unexpected EOF"


def test_exports() -> None:
    import muster.gotemplate as package

    assert package.__all__ == ["BUILTIN_NAMES", "Template"]
    for name in package.__all__:
        assert getattr(package, name) is not None
