"""Memoised execution (gotemplate/memo.py): reuse only what cannot have changed."""

from __future__ import annotations

import pytest

from muster.errors import TemplateExecError
from muster.golang.values import NO_VALUE, GoFunc, GoMap, GoSlice, Int64
from muster.gotemplate import Template
from muster.gotemplate.memo import UNFROZEN, Memo, freeze


class _World:
    """A function whose answer the test changes between executions, declared as a read
    (``get``: recorded, invalidated by the test) or not (``peek``: impure)."""

    def __init__(self, memo: Memo) -> None:
        self.memo = memo
        self.values: dict[str, str] = {}
        self.calls = 0

    def get(self, key: str) -> str:
        self.calls += 1
        self.memo.note(("get", key))
        return self.values.get(key, "")

    def peek(self, key: str) -> str:
        self.calls += 1
        return self.values.get(key, "")

    def template(self, source: str) -> Template:
        funcs = {
            "get": GoFunc(self.get, ("string",), name="get"),
            "peek": GoFunc(self.peek, ("string",), name="peek"),
            "reverse": GoFunc(lambda s: s, ("interface {}",), name="reverse", mutates=True),
        }
        return Template("t", funcs=funcs).parse(source)

    def change(self, key: str, value: str) -> None:
        self.values[key] = value
        self.memo.advance()
        self.memo.invalidate([("get", key)])


def _world() -> _World:
    return _World(Memo(["get"]))


def test_freeze_tells_apart_what_templates_tell_apart() -> None:
    assert freeze("a") == "a"
    assert freeze(1) != freeze(1.0) != freeze(True)
    assert freeze(0.0) != freeze(-0.0)
    assert freeze(Int64(1)) != freeze(1)
    assert freeze(None) != freeze(NO_VALUE)
    assert freeze(GoSlice(["a"], "string")) != freeze(["a"])
    assert freeze(GoSlice(["a"], "string")) != freeze(GoSlice(["a"], "string", tail=("",)))
    assert freeze(GoSlice([], "string", nil=True)) != freeze(GoSlice([], "string"))
    assert freeze({"a": [1.0]}) == freeze({"a": [1.0]}) != freeze(GoMap({"a": [1.0]}))
    assert freeze({1: "x"}) is UNFROZEN
    assert freeze(object()) is UNFROZEN
    assert freeze(list(range(300_000))) is UNFROZEN


def test_a_range_body_is_reused_until_its_read_changes() -> None:
    w = _world()
    t = w.template("{{range .}}[{{.}}={{get .}}]{{end}}")
    w.values = {"a": "1", "b": "2"}
    assert t.execute(["a", "b"], memo=w.memo) == "[a=1][b=2]"
    assert w.calls == 2
    assert t.execute(["a", "b"], memo=w.memo) == "[a=1][b=2]"
    assert w.calls == 2  # both iterations reused
    w.change("b", "3")
    assert t.execute(["a", "b"], memo=w.memo) == "[a=1][b=3]"
    assert w.calls == 3  # only b ran again
    assert t.execute(["b", "c", "a"], memo=w.memo) == "[b=3][c=][a=1]"
    assert w.calls == 4


def test_a_range_over_an_equal_list_of_values_go_tells_apart_runs_again() -> None:
    # Python's == holds for each neighbour pair; Go prints them differently (the
    # differential fuzzer found [1, 2, 3] then [true, 2, 3] replaying "123").
    t = Template("t").parse("{{range .}}{{.}} {{end}}")
    memo = Memo()
    sequence: list[list[object]] = [
        [1.0, 2.0],
        [True, 2.0],
        [1, 2.0],
        [0.0],
        [-0.0],
        [[1.0]],
        [[True]],
        [{"a": 1.0}],
        [{"a": True}],
        [Int64(1)],
        [1],
    ]
    for data in sequence:
        assert t.execute(data, memo=memo) == t.execute(data), data


def test_each_iteration_rebinds_the_element_as_an_interface_value() -> None:
    # The body assigns $v a string; the next element is an interface value again, which
    # Go's message names (exec_goldens.json: range-assigned-elem-rebinds-as-interface).
    t = Template("t").parse('{{range $i, $v := .}}{{if $i}}{{$v.Z}}{{end}}{{$v = "s"}}{{end}}')
    memo = Memo()
    for data in (["x", "y"], ["x", "y"], ["x", "z"], ["w", "x", "z"]):
        with pytest.raises(TemplateExecError, match=r"field Z in type interface \{\}"):
            t.execute(GoSlice(data, "interface {}"), memo=memo)


def test_an_impure_function_is_never_memoised() -> None:
    w = _world()
    t = w.template("{{range .}}{{peek .}}{{end}}")
    w.values = {"a": "1"}
    assert t.execute(["a"], memo=w.memo) == "1"
    w.values["a"] = "2"  # nobody invalidates: peek is not a declared read
    assert t.execute(["a"], memo=w.memo) == "2"


def test_a_nested_units_reads_count_for_the_outer_one() -> None:
    w = _world()
    t = w.template("{{range .}}<{{range $x := .}}{{get $x}}{{end}}>{{end}}")
    w.values = {"k": "1"}
    data = [["k"], ["j"]]
    assert t.execute(data, memo=w.memo) == "<1><>"
    w.change("k", "2")
    assert t.execute(data, memo=w.memo) == "<2><>"


def test_outer_variables_are_inputs_and_assigning_one_is_an_effect() -> None:
    w = _world()
    t = w.template("{{$p := .p}}{{range .l}}{{$p}}{{.}}{{end}}")
    assert t.execute({"p": "x", "l": ["a"]}, memo=w.memo) == "xa"
    assert t.execute({"p": "y", "l": ["a"]}, memo=w.memo) == "ya"
    t = w.template('{{$n := ""}}{{range .}}{{$n = .}}{{end}}{{$n}}')
    assert t.execute(["a", "b"], memo=w.memo) == "b"
    assert t.execute(["a", "b"], memo=w.memo) == "b"
    assert w.memo.entries == 0  # a new set starts over; the assigning body is never stored


def test_break_continue_and_errors() -> None:
    w = _world()
    t = w.template(
        '{{range .}}{{if eq . "c"}}{{continue}}{{end}}{{if eq . "s"}}{{break}}{{end}}{{.}}{{end}}!'
    )
    for _ in range(2):
        assert t.execute(["a", "c", "b", "s", "z"], memo=w.memo) == "ab!"
    t = w.template("{{range .}}{{.}}{{index . 5}}{{end}}")
    for _ in range(2):
        with pytest.raises(TemplateExecError):
            t.execute(["abc"], memo=w.memo)


def test_with_bodies_and_template_calls_are_units() -> None:
    w = _world()
    t = w.template('{{define "x"}}({{get .}}){{end}}{{with .}}{{template "x" .}}{{get "w"}}{{end}}')
    w.values = {"a": "1", "w": "2"}
    assert t.execute("a", memo=w.memo) == "(1)2"
    calls = w.calls
    assert t.execute("a", memo=w.memo) == "(1)2"
    assert w.calls == calls
    w.change("a", "9")
    assert t.execute("a", memo=w.memo) == "(9)2"


def test_mutating_functions_turn_memoisation_off() -> None:
    w = _world()
    t = w.template("{{range .}}{{get .}}{{end}}{{reverse .}}")
    t.execute(["a"], memo=w.memo)
    assert w.memo.entries == 0


def test_a_changed_template_set_starts_over_and_the_memo_is_bounded() -> None:
    w = _world()
    w.memo.max_entries = 3
    t = w.template("{{range .}}{{.}}{{end}}")
    t.execute(list("abcdef"), memo=w.memo)
    assert w.memo.entries == 6
    t.execute(list("abcdef"), memo=w.memo)
    assert w.memo.entries == 6  # reset, then filled again
    t.parse('{{define "y"}}{{end}}')
    t.execute(["a"], memo=w.memo)
    assert w.memo.entries == 1
    assert "entries=1" in repr(w.memo)


def test_entries_nobody_asks_for_are_bounded() -> None:
    memo = Memo(floor=0, slack=2)
    t = Template("t").parse("{{range .}}{{.}}{{end}}")
    t.execute(list("abcde"), memo=memo)
    assert memo.entries == 5  # the size of an execution from scratch
    t.execute(list("fghij"), memo=memo)
    assert memo.entries == 10  # a's to e's entries are stale, within the slack
    t.execute(list("klmno"), memo=memo)
    assert memo.entries == 15
    t.execute(list("pqrst"), memo=memo)
    assert memo.entries == 5  # over twice the size: started over


def test_a_body_printing_an_address_is_not_memoised() -> None:
    memo = Memo()
    t = Template("t").parse('{{range .}}{{printf "%p" .}}{{printf "%v" .}}{{end}}')
    t.execute([["a"]], memo=memo)
    assert memo.entries == 0
    Template("t").parse('{{range .}}{{printf "%5.2v%%p" .}}{{end}}').execute([["a"]], memo=memo)
    assert memo.entries == 1
