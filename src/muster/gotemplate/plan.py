"""Execution plans: a list node's children precompiled into text and fast closures.

Most of a real template is text and actions that print a variable or a key of one
(``{{ $service }}``, ``{{ $data.host }}``, ``{{ .name }}``). Walking those through the
general evaluator costs a dozen Python calls each; a plan turns the children of a
``ListNode`` into steps: text, a closure ``op(state, dot)`` per action that writes the
text before it and then handles the common, error-free case inline (otherwise it hands
the node to the executor, which does exactly what Go does, errors and their
positions included), or a direct ``(method, node)`` call for if/with/range/template. Plans are
built once per execution and list node, so the fast paths never change behaviour,
only the number of calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn, Protocol

from muster.golang import fmt as gofmt
from muster.golang.values import NO_VALUE, GoFunc
from muster.gotemplate.alias import INDEX, Ref, reading_refs
from muster.gotemplate.funcs import BUILTINS
from muster.gotemplate.nodes import (
    ActionNode,
    CommandNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    Node,
    PipeNode,
    StringNode,
    TextNode,
    VariableNode,
)

__all__ = ["CallOp", "Direct", "MISSING_FINAL", "Op", "Plan", "build_call", "build_plan", "format_printed"]


class _MissingFinal:
    """Go's ``missingVal``: "no final value from a previous pipeline command"."""


MISSING_FINAL = _MissingFinal()


class _Executor(Protocol):
    vars: list[list[Any]]
    out: list[str]
    node: Node

    def walk(self, dot: Any, node: Node) -> None: ...

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any: ...

    def walk_action(self, dot: Any, node: ActionNode) -> None: ...


Op = Callable[[Any, Any], None]
# A direct call: (function, node) runs function(state, dot, node).
Direct = tuple[Callable[[Any, Any, Any], None], Node]
Plan = tuple["str | Op | Direct", ...]


def format_printed(v: Any) -> str:
    """How an action prints a value other than a string (Go's printValue via fmt.Fprint)."""
    if type(v) is float and v.is_integer() and 0 < abs(v) < 1e6:
        # %v of an integral float64 below 1e6 is its integer digits: 8080, not 8080.0.
        return str(int(v))
    return gofmt.format_value(v)


def build_plan(
    lst: ListNode,
    control: Mapping[type[Node], Callable[[Any, Any, Any], None]],
    funcs: Mapping[str, GoFunc],
    alias: bool = False,
) -> Plan:
    """The plan of a list node: one entry per child, in order.

    ``control`` maps node classes (if, range...) to the executor functions that run
    them; their entries are direct ``(function, node)`` calls. ``funcs`` are the
    user's functions, for declarations that call one; ``alias`` is alias mode
    (alias.py), for their calls.
    """
    plan: list[str | Op | Direct] = []
    text = ""  # text not yet emitted: it becomes the prefix of the next action's op
    for n in lst.nodes:
        if type(n) is TextNode:
            text += n.text
        elif type(n) is ActionNode:
            # An action's op writes the text before it first: one plan step, not two.
            plan.append(_plan_action(n, funcs, text, alias))
            text = ""
        else:
            if text:
                plan.append(text)
                text = ""
            direct = control.get(type(n))
            plan.append(_walker(n) if direct is None else (direct, n))
    if text:
        plan.append(text)
    return tuple(plan)


def _walker(n: Node) -> Op:
    def op(st: _Executor, dot: Any) -> None:
        st.walk(dot, n)

    return op


def _general_action(n: ActionNode, prefix: str) -> Op:
    def op(st: _Executor, dot: Any) -> None:
        if prefix:
            st.out.append(prefix)
        st.node = n
        st.walk_action(dot, n)

    return op


def _plan_action(n: ActionNode, funcs: Mapping[str, GoFunc], prefix: str, alias: bool) -> Op:
    """The op of an action, writing ``prefix`` (the text before it) first."""
    pipe = n.pipe
    if pipe is None or len(pipe.cmds) != 1:
        return _general_action(n, prefix)
    if pipe.decl:
        if pipe.is_assign:
            return _general_action(n, prefix)
        cmd = pipe.cmds[0]
        call = build_call(cmd, funcs, alias) if type(cmd.args[0]) is IdentifierNode else None
        return _declare(pipe, cmd, call, tuple(v.ident[0] for v in pipe.decl), prefix)
    if len(pipe.cmds[0].args) != 1:
        return _general_action(n, prefix)
    arg = pipe.cmds[0].args[0]
    if type(arg) is VariableNode and len(arg.ident) <= 2:
        return _print_variable(n, arg.ident[0], arg.ident[1] if len(arg.ident) == 2 else None, prefix)
    if type(arg) is FieldNode and len(arg.ident) == 1:
        return _print_dot_key(n, arg.ident[0], prefix)
    if type(arg) is DotNode:
        return _print_dot(n, prefix)
    return _general_action(n, prefix)


def _declare(
    pipe: PipeNode, cmd: CommandNode, call: CallOp | None, names: tuple[str, ...], prefix: str
) -> Op:
    """``{{$x := command}}``: evaluate the one command and push the variables."""

    def op(st: _Executor, dot: Any) -> None:
        if prefix:
            st.out.append(prefix)
        st.node = pipe
        v = st.eval_command(dot, cmd, MISSING_FINAL) if call is None else call(st, dot)
        if v is None:
            v = NO_VALUE  # a nil interface digs to the invalid value
        for name in names:
            st.vars.append([name, v, False])

    return op


def _emit(st: _Executor, n: ActionNode, dot: Any, v: Any) -> None:
    """Print ``v`` unless it needs the executor (nil digging, funcs, structs...)."""
    if type(v) is str:
        st.out.append(v)
    elif v is NO_VALUE:
        st.out.append("<no value>")
    elif type(v) in (int, float, bool):
        st.out.append(format_printed(v))
    elif isinstance(v, Ref):
        _emit(st, n, dot, v.get())  # an element reference (alias mode) prints its element
    else:
        st.node = n
        st.walk_action(dot, n)


def _print_variable(n: ActionNode, name: str, key: str | None, prefix: str) -> Op:
    """``{{$x}}`` or ``{{$x.key}}``."""

    def op(st: _Executor, dot: Any) -> None:
        if prefix:
            st.out.append(prefix)
        for entry in reversed(st.vars):
            if entry[0] == name:
                v = entry[1]
                if key is not None:
                    if type(v) is not dict:
                        break
                    v = v.get(key, NO_VALUE)
                if type(v) is str:
                    st.out.append(v)
                elif type(v) is float and v and -1e6 < v < 1e6 and v.is_integer():
                    st.out.append(str(int(v)))  # a JSON port number: see format_printed
                else:
                    _emit(st, n, dot, v)
                return
        st.node = n
        st.walk_action(dot, n)

    return op


def _print_dot_key(n: ActionNode, key: str, prefix: str) -> Op:
    """``{{.key}}``."""

    def op(st: _Executor, dot: Any) -> None:
        if prefix:
            st.out.append(prefix)
        if type(dot) is dict:
            _emit(st, n, dot, dot.get(key, NO_VALUE))
        else:
            st.node = n
            st.walk_action(dot, n)

    return op


def _print_dot(n: ActionNode, prefix: str) -> Op:
    """``{{.}}``."""

    def op(st: _Executor, dot: Any) -> None:
        if prefix:
            st.out.append(prefix)
        _emit(st, n, dot, dot)

    return op


# -- function calls ------------------------------------------------------------------

CallOp = Callable[[Any, Any], Any]

_PASS_TYPES = frozenset({"interface {}", "reflect.Value", "any"})
_VAR, _LITERAL, _PIPE, _CALL = range(4)


class _Caller(_Executor, Protocol):
    def eval_pipeline(self, dot: Any, pipe: PipeNode | None) -> Any: ...

    def validate_type(self, value: Any, typ: str | None) -> Any: ...

    def errorf(self, msg: str) -> NoReturn: ...

    def eval_function(
        self, dot: Any, node: IdentifierNode, cmd: Node, args: tuple[Node, ...] | None, final: Any
    ) -> Any: ...


def build_call(cmd: CommandNode, funcs: Mapping[str, GoFunc], alias: bool = False) -> CallOp | None:
    """A fast closure for the command ``fn arg...`` without a piped final value.

    Only calls whose arity is right and whose arguments are variables, string
    literals or parenthesized pipelines get one; the builtins ``and``/``or`` (they
    short-circuit) and ``slice`` (it sees its indexes' static types) never do. The closure
    evaluates and validates arguments in Go's order, setting the executor's current
    node as ``evalArg`` does, and falls back to the executor for anything unusual.
    In alias mode (alias.py) arguments may be element references, which the
    function receives as the values they refer to when it is called.
    """
    ident = cmd.args[0]
    assert isinstance(ident, IdentifierNode)
    name = ident.ident
    fn = funcs.get(name)
    if fn is None:
        fn = BUILTINS.get(name)
        if fn is None or name in ("and", "or", "slice"):
            return None  # short-circuits, and slice's typed indexes, need eval_call
    params, variadic = fn.params, fn.variadic
    args = cmd.args[1:]
    if len(args) < len(params) or (variadic is None and len(args) != len(params)):
        return None  # the executor reports Go's arity error
    specs: list[tuple[int, Any, str, Node]] = []
    for i, arg in enumerate(args):
        typ = params[i] if i < len(params) else variadic
        assert typ is not None
        if type(arg) is VariableNode and len(arg.ident) == 1:
            specs.append((_VAR, arg.ident[0], typ, arg))
        elif type(arg) is StringNode and (typ == "string" or typ in _PASS_TYPES):
            specs.append((_LITERAL, arg.text, typ, arg))
        elif type(arg) is PipeNode:
            inner = None
            if not arg.decl and len(arg.cmds) == 1 and type(arg.cmds[0].args[0]) is IdentifierNode:
                inner = build_call(arg.cmds[0], funcs, alias)
            # A parenthesized call, as in getvs (printf ...), runs its call directly.
            specs.append((_PIPE, arg, typ, arg) if inner is None else (_CALL, inner, typ, arg))
        else:
            return None
    if len(specs) == 1 and specs[0][0] in (_VAR, _CALL):
        # One argument is read as soon as it is evaluated (nothing runs in between),
        # except by index, which keeps a reference as it is (alias.py).
        read = alias and fn.fn is not INDEX
        return _call_one(
            cmd, ident, name, reading_refs(fn.fn) if alias and not read else fn.fn, specs[0], read
        )
    call = reading_refs(fn.fn) if alias else fn.fn

    def op(st: _Caller, dot: Any) -> Any:
        argv = []
        for kind, payload, typ, node in specs:
            if kind == _VAR:
                for entry in reversed(st.vars):
                    if entry[0] == payload:
                        v = entry[1]
                        break
                else:
                    return st.eval_function(dot, ident, cmd, cmd.args, MISSING_FINAL)
                st.node = node
            elif kind == _LITERAL:
                st.node = node
                argv.append(payload)
                continue
            elif kind == _CALL:
                st.node = node  # as eval_pipeline does
                v = payload(st, dot)
                if v is None:
                    v = NO_VALUE  # a nil interface digs to the invalid value
            else:
                st.node = node
                v = st.eval_pipeline(dot, payload)
            if not ((typ == "string" and type(v) is str) or (typ in _PASS_TYPES and v is not NO_VALUE)):
                v = st.validate_type(v, typ)
            argv.append(v)
        try:
            return call(*argv)
        except RecursionError:
            raise  # Python's stack, not the function, ran out: execute reruns deeper
        except Exception as exc:
            st.node = cmd
            st.errorf(f"error calling {name}: {exc}")

    return op


def _call_one(
    cmd: CommandNode,
    ident: IdentifierNode,
    name: str,
    call: Callable[..., Any],
    spec: tuple[int, Any, str, Node],
    read: bool,
) -> CallOp:
    """``build_call``'s closure for the commonest shape, one variable or call argument
    (``json $server``, ``getvs (printf ...)``), without the loop over argument specs.
    ``read``: pass the element an element reference refers to (alias mode)."""
    kind, payload, typ, node = spec
    check = not (typ == "string" or typ in _PASS_TYPES)

    def op(st: _Caller, dot: Any) -> Any:
        if kind == _VAR:
            for entry in reversed(st.vars):
                if entry[0] == payload:
                    v = entry[1]
                    break
            else:
                return st.eval_function(dot, ident, cmd, cmd.args, MISSING_FINAL)
            st.node = node
        else:
            st.node = node  # as eval_pipeline does
            v = payload(st, dot)
            if v is None:
                v = NO_VALUE  # a nil interface digs to the invalid value
        if read and isinstance(v, Ref):
            v = v.get()
        if check or v is NO_VALUE or (typ == "string" and type(v) is not str):
            v = st.validate_type(v, typ)
        try:
            return call(v)
        except RecursionError:
            raise  # Python's stack, not the function, ran out: execute reruns deeper
        except Exception as exc:
            st.node = cmd
            st.errorf(f"error calling {name}: {exc}")

    return op
