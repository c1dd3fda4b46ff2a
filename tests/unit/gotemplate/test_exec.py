"""Executor behaviour the Go goldens cannot reach: hand-built trees, limits, the API.

Go's own messages are checked by ``test_exec_golden.py``; these tests cover the
executor's defensive paths (trees the parser never builds), its depth limit and the
contract of ``execute`` itself.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import pytest

from muster.errors import TemplateExecError
from muster.golang.values import GoFunc, GoMap, GoSlice
from muster.gotemplate import Template, deepstack, exec as go_exec
from muster.gotemplate.nodes import (
    ActionNode,
    ChainNode,
    CommandNode,
    CommentNode,
    DotNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    TextNode,
    Tree,
    VariableNode,
)


def _run(*nodes: Node, text: str = "{{x}}", data: Any = None, funcs: dict[str, GoFunc] | None = None) -> str:
    tree = Tree("t", ListNode(0, nodes), "t", text)
    return go_exec.execute({"t": tree}, "t", data, funcs or {})


def _action(*args: Node, decl: tuple[VariableNode, ...] = (), is_assign: bool = False) -> ActionNode:
    pipe = PipeNode(2, 1, is_assign, decl, (CommandNode(2, args),))
    return ActionNode(2, 1, pipe)


def _render(src: str, data: Any = None, funcs: dict[str, GoFunc] | None = None) -> str:
    return Template("t", funcs=funcs).parse(src).execute(data)


def test_execute_names_a_missing_template() -> None:
    with pytest.raises(TemplateExecError, match='no template "nope" associated with template "nope"'):
        go_exec.execute({}, "nope", None, {})


def test_comments_print_nothing() -> None:
    assert _run(TextNode(0, "a"), CommentNode(0, "/* c */"), TextNode(0, "b")) == "ab"


def test_assigning_an_undeclared_variable_is_an_error() -> None:
    node = _action(
        NumberNode(2, "1", is_int=True, int_value=1), decl=(VariableNode(2, ("$x",)),), is_assign=True
    )
    with pytest.raises(
        TemplateExecError, match=r"template: t:1:2: executing \"t\" at <.*>: undefined variable: \$x"
    ):
        _run(node)


def test_reading_an_undeclared_variable_is_an_error() -> None:
    with pytest.raises(TemplateExecError, match=r"undefined variable: \$y"):
        _run(_action(VariableNode(2, ("$y",))))


def test_an_unknown_command_is_an_error() -> None:
    with pytest.raises(TemplateExecError, match='can\'t evaluate command "x"'):
        _run(_action(TextNode(2, "x")))


def test_an_unknown_node_is_an_error() -> None:
    with pytest.raises(TemplateExecError, match="unknown node: ."):
        _run(DotNode(0))


def test_a_number_of_no_kind_has_no_value() -> None:
    assert _run(_action(NumberNode(2, "1"))) == "<no value>"


def test_a_chain_without_fields_is_an_internal_error() -> None:
    with pytest.raises(TemplateExecError, match="internal error: no fields in evalChainNode"):
        _run(_action(ChainNode(2, DotNode(2), ())))


def test_a_chain_from_nil_is_an_error() -> None:
    with pytest.raises(TemplateExecError, match=r"indirection through explicit nil in nil\.a"):
        _run(_action(ChainNode(2, NilNode(2), ("a",))))


def test_an_undefined_function_is_an_error_at_run_time_too() -> None:
    with pytest.raises(TemplateExecError, match='"nope" is not a defined function'):
        _run(_action(IdentifierNode(2, "nope")))


def test_a_non_literal_for_an_interface_parameter_is_an_error() -> None:
    echo = {"echo": GoFunc(lambda a: a, ("interface {}",))}
    with pytest.raises(TemplateExecError, match="can't handle assignment of x to empty interface argument"):
        _run(_action(IdentifierNode(2, "echo"), TextNode(2, "x")), funcs=echo)


def test_user_functions_override_builtins_and_lose_short_circuit() -> None:
    seen: list[Any] = []

    def my_and(*args: Any) -> str:
        seen.extend(args)
        return "mine"

    funcs = {"and": GoFunc(my_and, variadic="interface {}")}
    assert _render("{{and 0 1}}", funcs=funcs) == "mine"
    assert seen == [0, 1]  # both evaluated: only the builtin short-circuits


def test_depth_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(go_exec, "MAX_EXEC_DEPTH", 3)
    src = '{{define "r"}}x{{template "r"}}{{end}}{{template "r"}}'
    with pytest.raises(TemplateExecError, match=r"exceeded maximum template depth \(3\)"):
        _render(src)
    # Below the limit, recursion works.
    src = '{{define "r"}}{{if .}}{{len .}}{{template "r" slice . 1}}{{end}}{{end}}{{template "r" .}}'
    assert _render(src, [1, 2]) == "21"


def test_python_recursion_limit_reports_the_depth_error() -> None:
    src = '{{define "r"}}{{template "r" .}}{{end}}{{template "r" .}}'
    with pytest.raises(TemplateExecError) as info:
        _render(src, 1)
    assert str(info.value).endswith(
        'executing "r" at <{{template "r" .}}>: exceeded maximum template depth (100000)'
    )


def test_errors_carry_go_position_parts() -> None:
    with pytest.raises(TemplateExecError) as info:
        _render("a\nb {{.a.b}}", {"a": None})
    err = info.value
    # Go places a field chain at its last field.
    assert (err.name, err.line, err.col) == ("t", 2, 6)
    assert str(err) == 'template: t:2:6: executing "t" at <.a.b>: nil pointer evaluating interface {}.b'


def test_column_zero_is_printed() -> None:
    with pytest.raises(TemplateExecError) as info:
        _run(_action(VariableNode(0, ("$y",))))
    assert str(info.value) == 'template: t:1:0: executing "t" at <$y>: undefined variable: $y'


def test_no_partial_output_on_error() -> None:
    tmpl = Template("t").parse("lots of text {{.a.b}}")
    with pytest.raises(TemplateExecError):
        tmpl.execute({"a": None})
    assert tmpl.execute({"a": {"b": 1}}) == "lots of text 1"


def test_templates_execute_many_times_independently() -> None:
    tmpl = Template("t").parse("{{range $i, $v := .}}{{$i}}{{$v}}{{end}}")
    assert tmpl.execute(["a", "b"]) == "0a1b"
    assert tmpl.execute(GoMap({2: "x", 1: "y"}, "int", "string")) == "1y2x"


def test_range_over_typed_slice_sets_element_type() -> None:
    # A []string's elements are strings, not interfaces: Go names the type in errors.
    with pytest.raises(TemplateExecError, match="can't evaluate field x in type string"):
        _render("{{range .}}{{.x}}{{end}}", GoSlice(["a"], "string"))
    with pytest.raises(TemplateExecError, match=r"can't evaluate field x in type interface \{\}"):
        _render("{{range .}}{{.x}}{{end}}", GoSlice(["a"], "interface {}"))


def test_nested_fields_of_typed_maps() -> None:
    data = {"m": GoMap({"k": {"x": "deep"}}, "string", "interface {}")}
    assert _render("{{.m.k.x}}", data) == "deep"
    with pytest.raises(TemplateExecError, match=r"can't evaluate field y in type interface \{\}"):
        _render("{{.m.k.x.y}}", data)
    typed = GoMap({"k": "v"}, "string", "string")
    with pytest.raises(TemplateExecError, match="can't evaluate field y in type string"):
        _render("{{.k.y}}", typed)


def test_field_of_data_with_unknown_python_type() -> None:
    with pytest.raises(TemplateExecError, match="can't evaluate field a in type tuple"):
        _render("{{.a}}", (1, 2))


def test_and_or_without_final_return_last_argument() -> None:
    assert _render("{{and 1 2 3}}|{{or 0 0 0}}|{{or 0 .x}}", {"x": []}) == "3|0|[]"


def test_functions_do_not_print() -> None:
    fn = GoFunc(lambda: "f", name="f", result="string")
    with pytest.raises(TemplateExecError, match=r"can't print \{\{\.f\}\} of type func\(\) string"):
        _render("{{.f}}", {"f": fn})


def test_an_undefined_variable_argument_is_reported_by_the_executor() -> None:
    one_arg = {"oneArg": GoFunc(lambda a: a, ("string",))}
    with pytest.raises(TemplateExecError, match=r"at <\$nope>: undefined variable: \$nope"):
        _run(_action(IdentifierNode(2, "oneArg"), VariableNode(2, ("$nope",))), funcs=one_arg)


def _deep(n: int) -> Any:
    value: Any = "x"
    for _ in range(n):
        value = {"a": value}
    return value


def test_printing_a_deeply_nested_value_reruns_on_a_deep_stack() -> None:
    assert _render("{{.}}", _deep(5000)) == "map[a:" * 5000 + "x" + "]" * 5000  # as Go prints it
    limit = sys.getrecursionlimit()
    with pytest.raises(TemplateExecError, match=r"at <\{\{\.\}\}>: value nested too deeply to print"):
        _render("{{.}}", _deep(60_000))  # beyond even the deep stack
    assert sys.getrecursionlimit() == limit


def test_recursion_beyond_pythons_stack_reruns_on_a_deep_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    src = "{{if 1}}" * 400 + "x" + "{{end}}" * 400
    tmpl = Template("t").parse(src)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(250)  # less than 400 nested ifs need
    try:
        assert tmpl.execute(None) == "x"
        assert sys.getrecursionlimit() == 250  # the deep run's limit is undone
        monkeypatch.setattr(deepstack, "DEEP_RECURSION_LIMIT", 300)  # still too few frames
        with pytest.raises(TemplateExecError, match="nested too deeply for Python's stack"):
            tmpl.execute(None)
    finally:
        sys.setrecursionlimit(limit)
    assert tmpl.execute(None) == "x"


def test_deep_runs_hand_back_results_and_errors() -> None:
    assert deepstack.run_deep(lambda: deepstack.in_deep_run()) is True
    assert deepstack.run_deep(lambda: deepstack.run_deep(lambda: 7)) == 7  # nested: runs in place
    with pytest.raises(ValueError, match="boom"):
        deepstack.run_deep(lambda: int("boom"))
    assert not deepstack.in_deep_run()


class _Interrupted(Exception):
    pass


def test_a_deep_run_keeps_its_limit_when_the_caller_is_interrupted() -> None:
    # A signal handler's exception ends the caller's wait while the deep thread runs on
    # (fuzz.py's timeout did): lowering the limit under it would abort the process.
    started, release = threading.Event(), threading.Event()
    results: list[int] = []

    def depth(n: int) -> int:
        return 0 if n == 0 else 1 + depth(n - 1)

    def deep() -> int:
        started.set()
        time.sleep(0.05)  # let the caller reach its join
        os.kill(os.getpid(), signal.SIGALRM)  # handled in the main thread: the caller
        release.wait(30)
        results.append(depth(5_000))  # more frames than the default limit allows
        return 0

    def interrupt(signum: int, frame: object) -> None:
        raise _Interrupted

    limit = sys.getrecursionlimit()
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(_Interrupted):
            deepstack.run_deep(deep)
        assert started.is_set()
        assert sys.getrecursionlimit() == deepstack.DEEP_RECURSION_LIMIT  # still running
        release.set()
        for _ in range(300):
            if sys.getrecursionlimit() == limit:
                break
            time.sleep(0.1)
    finally:
        signal.signal(signal.SIGALRM, previous)
        release.set()
    assert results == [5_000]
    assert sys.getrecursionlimit() == limit  # undone once the thread ended


def test_dict_and_list_subclasses_are_json_values() -> None:
    from collections import OrderedDict

    data = OrderedDict(b=OrderedDict(x="deep"), a=[OrderedDict(y=1.0)])
    assert _render("{{.b.x}}|{{range $k, $v := .}}{{$k}};{{end}}|{{(index .a 0).y}}", data) == "deep|a;b;|1"
    with pytest.raises(TemplateExecError, match=r"can't evaluate field z in type interface \{\}"):
        _render("{{.b.x.z}}", data)


def test_a_function_out_of_stack_reruns_then_fails_as_a_template_error() -> None:
    def deep(*_: Any) -> str:
        raise RecursionError("maximum recursion depth exceeded")

    funcs = {"deep": GoFunc(deep, (), variadic="interface {}", name="deep")}
    # One argument (the one-argument closure), none (the general closure), a dot
    # argument (the executor's eval_call): each lets RecursionError through.
    for src in ("{{$x := 1}}{{deep $x}}", "{{deep}}", "{{deep .}}"):
        with pytest.raises(TemplateExecError, match="nested too deeply for Python's stack"):
            Template("t", funcs=funcs).parse(src).execute(None)


def test_a_high_recursion_limit_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(deepstack.DEEP_RECURSION_LIMIT + 5)
    try:
        assert deepstack.run_deep(sys.getrecursionlimit) == deepstack.DEEP_RECURSION_LIMIT + 5
        assert sys.getrecursionlimit() == deepstack.DEEP_RECURSION_LIMIT + 5
    finally:
        sys.setrecursionlimit(limit)


def test_an_undefined_variable_among_several_arguments_is_reported_by_the_executor() -> None:
    two_args = {"twoArgs": GoFunc(lambda a, b: a + b, ("string", "string"))}
    with pytest.raises(TemplateExecError, match=r"at <\$nope>: undefined variable: \$nope"):
        _run(
            _action(IdentifierNode(2, "twoArgs"), VariableNode(2, ("$nope",)), VariableNode(2, ("$no",))),
            funcs=two_args,
        )


def test_concurrent_deep_runs_share_the_raised_limit() -> None:
    import threading

    limit = sys.getrecursionlimit()
    barrier = threading.Barrier(2)

    def both_inside() -> int:
        barrier.wait(timeout=10)  # both deep runs hold the raised limit at once
        return sys.getrecursionlimit()

    results: list[int] = []
    other = threading.Thread(target=lambda: results.append(deepstack.run_deep(both_inside)))
    other.start()
    results.append(deepstack.run_deep(both_inside))
    other.join(timeout=10)
    assert results == [deepstack.DEEP_RECURSION_LIMIT] * 2
    assert sys.getrecursionlimit() == limit
