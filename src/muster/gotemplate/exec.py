"""The executor: walks a parse tree over data, like Go 1.19's ``text/template/exec.go``.

Read this beside Go's ``exec.go``: the functions keep Go's names and order
(``walk``, ``walk_if_or_with``, ``walk_range``, ``eval_pipeline``, ``eval_field``...);
the call machinery (``eval_call``, ``eval_arg``, ``validate_type``) is in ``calls.py``,
field access (``eval_field``...) in ``fields.py``, the per-execution fast paths for
list nodes in ``plan.py`` and memoised execution (a ``Memo``) in ``memowalk.py``. Go's ``reflect.Value``
maps onto the value model of ``values.py``; two details of reflection survive because
templates can see them:

* **Interface-typed values.** An element read out of a ``map[string]interface {}`` or
  ``[]interface {}`` is a Go interface value. A nil one is Python ``None`` and differs
  from a missing key (``NO_VALUE``): ``.a.b`` through a ``null`` is an error while
  through a missing key it stays ``<no value>``. Pipelines "dig" interfaces, so a
  pipeline's result is never ``None``. Whether dot or a range variable is
  interface-typed is tracked only to name ``interface {}`` in error messages.
* **Untyped constants.** A literal argument is converted to the parameter's type
  (``evalArg``), so ``1.5`` for an ``int`` parameter is an error.

Control flow uses exceptions as Go uses panics: ``_Break``/``_Continue`` for
``{{break}}``/``{{continue}}`` and ``TemplateExecError`` for errors, which unwind
the whole execution; ``execute`` then returns nothing, so no partial output leaks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

from muster.errors import TemplateExecError
from muster.golang import fmt as gofmt
from muster.golang.types import sorted_keys
from muster.golang.values import (
    NO_VALUE,
    GoFunc,
)
from muster.gotemplate.alias import Ref, element_refs, uses_mutators
from muster.gotemplate.calls import Calls
from muster.gotemplate.control import Break as _Break, Continue as _Continue
from muster.gotemplate.deepstack import in_deep_run, run_deep
from muster.gotemplate.fields import Fields, holds_interfaces
from muster.gotemplate.funcs import printable, truth as is_true
from muster.gotemplate.memo import UNFROZEN, Memo, freeze
from muster.gotemplate.memowalk import MemoWalks
from muster.gotemplate.nodes import (
    ActionNode,
    BoolNode,
    BreakNode,
    ChainNode,
    CommandNode,
    CommentNode,
    ContinueNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    Tree,
    VariableNode,
    WithNode,
)
from muster.gotemplate.plan import MISSING_FINAL, CallOp, Plan, build_call, build_plan, format_printed

__all__ = ["MAX_EXEC_DEPTH", "execute", "is_true"]

# Go's maxExecDepth: how deep {{template}} calls may nest. Python's own recursion
# limit is usually reached first; that is reported as the same error.
MAX_EXEC_DEPTH: Final = 100000


_MISSING: Final = MISSING_FINAL


def execute(
    templates: Mapping[str, Tree], name: str, data: Any, funcs: Mapping[str, GoFunc], memo: Memo | None = None
) -> str:
    """Execute template ``name`` of ``templates`` with dot set to ``data``.

    ``templates`` holds every template reachable by ``{{template}}``; ``funcs`` are the
    user's functions, looked up before the builtins. Returns the whole output, or
    raises ``TemplateExecError`` (Go's message shape) and returns nothing. With a
    ``memo`` (memo.py), bodies whose inputs and reads did not change since an earlier
    execution print their earlier output instead of running again.
    """
    tree = templates.get(name)
    if tree is None:
        q = gofmt.quote(name)
        raise TemplateExecError(f"no template {q} associated with template {q}")
    # reflect.ValueOf(nil) is the invalid Value: a nil data prints <no value>.
    value = NO_VALUE if data is None else data
    out: list[str] = []
    alias = uses_mutators(templates, funcs)
    if alias:
        memo = None  # in-place writes are effects a memoised body could not replay
    elif memo is not None:
        memo.start(templates, funcs)
    state = _State(tree, templates, funcs, out, 0, value, False, {}, {}, alias, memo)
    try:
        state.walk(value, tree.root)
    except RecursionError:
        # Go's stack grows; Python's does not: rerun on a deep stack, where nested
        # {{template}} calls are reported as they happen, in walk_template.
        if not in_deep_run():
            return run_deep(lambda: execute(templates, name, data, funcs, memo))
        raise TemplateExecError("nested too deeply for Python's stack", name=name) from None
    return "".join(out)


class _State(Calls, Fields, MemoWalks):
    """One template's execution state (Go's ``state``); ``{{template}}`` makes a new one."""

    __slots__ = (
        "tree",
        "templates",
        "funcs",
        "out",
        "depth",
        "vars",
        "node",
        "dot_iface",
        "plans",
        "calls",
        "last_parent",
        "last_name",
        "alias",
        "memo",
    )

    def __init__(
        self,
        tree: Tree,
        templates: Mapping[str, Tree],
        funcs: Mapping[str, GoFunc],
        out: list[str],
        depth: int,
        dollar: Any,
        dollar_iface: bool,
        plans: dict[int, Plan],
        calls: dict[int, CallOp | None],
        alias: bool,
        memo: Memo | None = None,
    ) -> None:
        self.tree = tree
        self.memo = memo
        # Alias mode (alias.py): a template of the set writes slices in place, so
        # index and range yield element references, which calls read.
        self.alias = alias
        # Plans of the list nodes and function commands met so far in this
        # execution, by id(node): see plan.py.
        self.plans = plans
        self.calls = calls
        # The container and key of the last field looked up (see is_interface_arg).
        self.last_parent: Any = None
        self.last_name = ""
        self.templates = templates
        self.funcs = funcs
        self.out = out
        self.depth = depth
        # The variable stack: [name, value, is-interface-typed]; "$" is always first.
        self.vars: list[list[Any]] = [["$", dollar, dollar_iface]]
        self.node: Node = tree.root  # the node being executed, for errors (Go's s.at)
        # Whether the current dot is an interface-typed value (only for messages).
        self.dot_iface = dollar_iface

    # -- variables -------------------------------------------------------------

    def set_var(self, name: str, value: Any) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                entry[2] = False
                return
        self.errorf(f"undefined variable: {name}")

    def var_entry(self, name: str) -> list[Any]:
        entry: list[Any]
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry
        self.errorf(f"undefined variable: {name}")

    # -- errors ----------------------------------------------------------------

    def errorf(self, msg: str) -> NoReturn:
        """Raise Go's ExecError for the current node: ``template: LOC: executing...``."""
        tree = self.tree
        parse_name, line, col = tree.error_context(self.node)
        message = f"executing {gofmt.quote(tree.name)} at <{self.node}>: {msg}"
        err = TemplateExecError(message, name=parse_name, line=line, col=col)
        # Go always prints the column of an exec error, even 0.
        err.args = (f"template: {parse_name}:{line}:{col}: {message}",)
        raise err

    # -- walking ---------------------------------------------------------------

    def walk(self, dot: Any, node: Node) -> None:
        """Execute any node (Go's walk). Lists run their plan, which sends text,
        actions and control structures straight to their code; the rest is here."""
        if type(node) is ListNode:
            self.walk_list(dot, node)
            return
        self.node = node
        match node:
            case BreakNode():
                raise _Break
            case ContinueNode():
                raise _Continue
            case CommentNode():
                pass
            case _:
                self.errorf(f"unknown node: {node}")

    def walk_list(self, dot: Any, lst: ListNode) -> None:
        plan = self.plans.get(id(lst))
        if plan is None:
            plan = self.plans[id(lst)] = build_plan(lst, _CONTROL, self.funcs, self.alias)
        out = self.out
        for op in plan:
            t = type(op)
            if t is str:
                out.append(op)  # type: ignore[arg-type]
            elif t is tuple:
                op[0](self, dot, op[1])  # type: ignore[index,operator]
            else:
                op(self, dot)  # type: ignore[operator]

    def walk_action(self, dot: Any, node: ActionNode) -> None:
        # Variables declared by an action persist until the enclosing {{end}};
        # a declaration prints nothing.
        pipe = node.pipe
        assert pipe is not None
        val = self.eval_pipeline(dot, pipe)
        if not pipe.decl:
            self.print_value(node, val)

    def walk_if_or_with(self, dot: Any, node: IfNode | WithNode) -> None:
        """``if`` and ``with`` are alike except that ``with`` sets dot."""
        mark = len(self.vars)
        lst, else_list = node.list, node.else_list
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if is_true(val):
                assert lst is not None
                if type(node) is IfNode:
                    # The taken branch's plan, run inline (walk_list's loop).
                    plan = self.plans.get(id(lst))
                    if plan is None:
                        plan = self.plans[id(lst)] = build_plan(lst, _CONTROL, self.funcs, self.alias)
                    out = self.out
                    for op in plan:
                        t = type(op)
                        if t is str:
                            out.append(op)  # type: ignore[arg-type]
                        elif t is tuple:
                            op[0](self, dot, op[1])  # type: ignore[index,operator]
                        else:
                            op(self, dot)  # type: ignore[operator]
                else:
                    saved = self.dot_iface
                    self.dot_iface = False  # a pipeline's value is concrete
                    try:
                        if self.memo is None:
                            self.walk_list(val, lst)
                        else:
                            self._with_memo(self.memo, val, lst)
                    finally:
                        self.dot_iface = saved
            elif else_list is not None:
                self.walk_list(dot, else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, r: RangeNode) -> None:
        self.node = r
        outer = len(self.vars)
        saved_iface = self.dot_iface
        try:
            pipe = r.pipe
            assert pipe is not None and r.list is not None
            val = self.eval_pipeline(dot, pipe)
            # Mark the stack after the range's own variables, before the body's.
            mark = len(self.vars)
            ndecl = len(pipe.decl)
            body = r.list
            items: Any = None
            if isinstance(val, Ref):
                val = val.get()  # an element reference (alias mode): the element it refers to now
            if isinstance(val, list):
                if val:
                    # Go binds val.Index(i): a reference in alias mode (alias.py).
                    items = element_refs(val) if self.alias else enumerate(val)
            elif isinstance(val, dict):
                if val:
                    items = ((k, val[k]) for k in sorted_keys(val))
            elif val is not NO_VALUE:
                # An invalid value is likely a nil map and acts like an empty one.
                self.errorf(f"range can't iterate over {gofmt.format_value(val)}")
            if items is None:
                if r.else_list is not None:
                    self.walk_list(dot, r.else_list)
                return
            # One iteration per element (Go's oneIteration), inlined to save a Python
            # frame per nesting level. The last declared variable gets the element,
            # the one before it the index.
            iface = holds_interfaces(val)
            self.dot_iface = iface
            vars_ = self.vars
            elem_var = vars_[mark - 1] if ndecl > 0 else None
            index_var = vars_[mark - 2] if ndecl > 1 else None
            if elem_var is not None:
                elem_var[2] = iface
            if index_var is not None:
                index_var[2] = False
            # The body's plan, run inline (walk_list's loop): no call per element.
            plan = self.plans.get(id(body))
            if plan is None:
                plan = self.plans[id(body)] = build_plan(body, _CONTROL, self.funcs, self.alias)
            memo = self.memo
            if memo is not None and not pipe.is_assign:
                unit = memo.unit(body, self.templates)
                inputs = self._outer_key(unit, {v.ident[0] for v in pipe.decl}) if unit.safe else UNFROZEN
                if inputs is not UNFROZEN:
                    table = memo.table((id(body), inputs, iface))
                    self._range_memo(memo, table, plan, val, items, elem_var, index_var, mark)
                    return
            out = self.out
            for index, elem in items:
                if elem_var is not None:
                    elem_var[1] = elem
                    elem_var[2] = iface  # the body may have assigned it a value of a concrete type
                if index_var is not None:
                    index_var[1] = index
                try:
                    for op in plan:
                        t = type(op)
                        if t is str:
                            out.append(op)  # type: ignore[arg-type]
                        elif t is tuple:
                            op[0](self, elem, op[1])  # type: ignore[index,operator]
                        else:
                            op(self, elem)  # type: ignore[operator]
                except _Continue:
                    pass
                finally:
                    del vars_[mark:]
        except _Break:
            pass
        finally:
            self.dot_iface = saved_iface
            del self.vars[outer:]

    def walk_template(self, dot: Any, t: TemplateNode) -> None:
        self.node = t
        tmpl = self.templates.get(t.name)
        if tmpl is None:
            self.errorf(f"template {gofmt.quote(t.name)} not defined")
        if self.depth == MAX_EXEC_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_EXEC_DEPTH})")
        # Variables declared by the pipeline persist.
        dot = self.eval_pipeline(dot, t.pipe)
        # No dynamic scoping: template invocations inherit no variables.
        new = _State(
            tmpl,
            self.templates,
            self.funcs,
            self.out,
            self.depth + 1,
            dot,
            False,
            self.plans,
            self.calls,
            self.alias,
            self.memo,
        )
        try:
            memo = self.memo
            unit = None if memo is None else memo.unit(tmpl.root, self.templates)
            key = UNFROZEN if unit is None or not unit.safe else freeze(dot)
            if key is UNFROZEN:
                new.walk_list(dot, tmpl.root)
            else:
                assert memo is not None
                # The depth is part of the key: a deeper call may exceed MAX_EXEC_DEPTH.
                table = memo.table((id(tmpl.root), self.depth))
                self._memo_unit(memo, table, key, lambda: new.walk_list(dot, tmpl.root))
        except RecursionError:
            if not in_deep_run():
                raise  # execute reruns on a deep stack
            # Even the deep stack is shallower than Go's: report it as Go reports depth.
            self.node = t
            self.errorf(f"exceeded maximum template depth ({MAX_EXEC_DEPTH})")

    # -- evaluation ------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode | None) -> Any:
        """The pipeline's value; declared variables are pushed (the caller pops them)."""
        if pipe is None:
            return NO_VALUE
        self.node = pipe
        cmds = pipe.cmds
        value: Any
        if len(cmds) == 1:
            cmd = cmds[0]
            first = cmd.args[0]
            if type(first) is VariableNode and len(first.ident) == 1 and len(cmd.args) == 1:
                # A lone $x, the commonest if/range/with pipeline: eval_variable_node inlined.
                self.node = first
                value = self.var_entry(first.ident[0])[1]
            else:
                value = self.eval_command(dot, cmd, _MISSING)
        else:
            value = _MISSING
            for cmd in cmds:
                value = self.eval_command(dot, cmd, value)  # previous value is this one's final arg
                if value is None:
                    value = NO_VALUE
        # A nil interface{} digs down to the invalid value.
        if value is None:
            value = NO_VALUE
        if pipe.decl:
            for variable in pipe.decl:
                if pipe.is_assign:
                    self.set_var(variable.ident[0], value)
                else:
                    self.vars.append([variable.ident[0], value, False])
        return value

    def not_a_function(self, args: tuple[Node, ...], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        t = type(first)
        if t is VariableNode:
            return self.eval_variable_node(dot, first, cmd.args, final)  # type: ignore[arg-type]
        if t is IdentifierNode:
            # Must be a function.
            if final is _MISSING:
                call = self.calls.get(id(cmd), _NO_PLAN)
                if call is _NO_PLAN:
                    call = self.calls[id(cmd)] = build_call(cmd, self.funcs, self.alias)
                if call is not None:
                    return call(self, dot)  # type: ignore[operator]
            return self.eval_function(dot, first, cmd, cmd.args, final)  # type: ignore[arg-type]
        match first:
            case FieldNode():
                self.node = first
                return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final, self.dot_iface)
            case ChainNode():
                return self.eval_chain_node(dot, first, cmd.args, final)
            case PipeNode():
                # Parenthesized pipeline: its arguments are all inside; final must be absent.
                self.not_a_function(cmd.args, final)
                return self.eval_pipeline(dot, first)
        self.node = first
        self.not_a_function(cmd.args, final)
        match first:
            case StringNode():
                return first.text
            case DotNode():
                return dot
            case NumberNode():
                return self.ideal_constant(first)
            case BoolNode():
                return first.value
            case NilNode():
                self.errorf("nil is not a command")
        self.errorf(f"can't evaluate command {gofmt.quote(str(first))}")

    def print_value(self, n: Node, v: Any) -> None:
        """Write an action's value as ``fmt.Fprint`` would (printValue)."""
        if type(v) is str:
            self.out.append(v)
        elif v is NO_VALUE:
            self.out.append("<no value>")
        elif isinstance(v, Ref):
            self.print_value(n, v.get())  # printing reads an element reference (alias.py)
        elif isinstance(v, GoFunc):
            self.node = n
            self.errorf(f"can't print {n} of type {v.signature}")
        else:
            try:
                text = format_printed(printable(v))
            except RecursionError:
                if not in_deep_run():
                    raise  # execute reruns on a deep stack
                self.node = n
                self.errorf("value nested too deeply to print")
            self.out.append(text)


_NO_PLAN: Final = object()


# Control structures run straight from a plan as (method, node): no closure frame,
# so deeper template recursion fits in Python's stack.
_CONTROL: Final[dict[type[Node], Callable[[Any, Any, Any], None]]] = {
    IfNode: _State.walk_if_or_with,
    WithNode: _State.walk_if_or_with,
    RangeNode: _State.walk_range,
    TemplateNode: _State.walk_template,
}
