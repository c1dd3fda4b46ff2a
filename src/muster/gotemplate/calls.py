"""Function and method calls for the executor: Go 1.19 ``exec.go``'s evalCall family.

``Calls`` is the part of the execution state that checks a call's arity, evaluates
each argument for its parameter's Go type (``evalArg``: untyped constants take the
parameter's type, so ``1.5`` for an ``int`` is an error), validates values against
the types (``validateType``), short-circuits the builtin ``and``/``or`` and turns a
function's exception into Go's ``error calling NAME: ...``. The executor state in
``exec.py`` inherits it; the split only keeps each module readable beside Go's file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn, Protocol

from muster.golang import fmt as gofmt
from muster.golang.types import can_be_nil, go_kind, make_int, zero_value
from muster.golang.values import (
    NO_VALUE,
    GoFunc,
    GoSlice,
    GoStruct,
    go_type_name,
)
from muster.gotemplate.alias import INDEX, Ref, alias_index
from muster.gotemplate.funcs import BUILTINS, InterfaceValue, truth as is_true
from muster.gotemplate.nodes import (
    BoolNode,
    ChainNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    VariableNode,
)
from muster.gotemplate.plan import MISSING_FINAL

__all__ = ["Calls"]

_MISSING: Final = MISSING_FINAL

# Parameter types every value is assignable to as it is.
_PASS_TYPES: Final = frozenset({None, "interface {}", "reflect.Value", "any"})


class _Host(Protocol):
    """What ``Calls`` needs of the executor state it is mixed into."""

    node: Node
    funcs: Mapping[str, GoFunc]
    dot_iface: bool
    alias: bool

    def errorf(self, msg: str) -> NoReturn: ...

    def eval_pipeline(self, dot: Any, pipe: PipeNode | None) -> Any: ...

    def eval_field_chain(
        self,
        dot: Any,
        receiver: Any,
        node: Node,
        ident: tuple[str, ...],
        args: tuple[Node, ...] | None,
        final: Any,
        iface: bool,
    ) -> Any: ...

    def eval_variable_node(
        self, dot: Any, variable: VariableNode, args: tuple[Node, ...] | None, final: Any
    ) -> Any: ...

    def eval_chain_node(
        self, dot: Any, chain: ChainNode, args: tuple[Node, ...] | None, final: Any
    ) -> Any: ...

    def ideal_constant(self, constant: NumberNode) -> Any: ...

    def eval_call(
        self,
        dot: Any,
        fn: Callable[..., Any],
        params: tuple[str, ...],
        variadic: str | None,
        is_builtin: bool,
        node: Node,
        name: str,
        args: tuple[Node, ...] | None,
        final: Any,
        results: int = 1,
    ) -> Any: ...

    def validate_type(self, value: Any, typ: str | None) -> Any: ...

    def eval_arg(self, dot: Any, typ: str | None, n: Node) -> Any: ...

    def eval_function(
        self, dot: Any, node: IdentifierNode, cmd: Node, args: tuple[Node, ...] | None, final: Any
    ) -> Any: ...

    def eval_empty_interface(self, dot: Any, n: Node) -> Any: ...

    def is_interface_arg(self, n: Node) -> bool: ...


class Calls:
    """Calls and argument conversion; mixed into the executor's ``_State``."""

    node: Node  # the node being evaluated, for error messages (set by the state)

    def ideal_constant(self: _Host, constant: NumberNode) -> Any:
        """A number literal's value where no type is known: its syntax decides the kind."""
        self.node = constant
        text = constant.text
        if constant.is_complex:
            return constant.complex_value
        if (
            constant.is_float
            and not _is_hex_int(text)
            and not text.startswith("'")
            and any(c in text for c in ".eEpP")
        ):
            return constant.float_value
        if constant.is_int:
            return constant.int_value
        if constant.is_uint:
            self.errorf(f"{text} overflows int")
        return NO_VALUE

    def eval_function(
        self: _Host, dot: Any, node: IdentifierNode, cmd: Node, args: tuple[Node, ...] | None, final: Any
    ) -> Any:
        self.node = node
        name = node.ident
        fn = self.funcs.get(name)
        is_builtin = False
        if fn is None:
            fn = BUILTINS.get(name)
            if fn is None:
                self.errorf(f"{gofmt.quote(name)} is not a defined function")
            is_builtin = True
        return self.eval_call(dot, fn.fn, fn.params, fn.variadic, is_builtin, cmd, name, args, final)

    def eval_call(
        self: _Host,
        dot: Any,
        fn: Callable[..., Any],
        params: tuple[str, ...],
        variadic: str | None,
        is_builtin: bool,
        node: Node,
        name: str,
        args: tuple[Node, ...] | None,
        final: Any,
        results: int = 1,
    ) -> Any:
        """Call a function or bound method: check arity, evaluate and convert the
        arguments against the Go signature, and turn an exception into Go's
        ``error calling NAME: ...``. ``args[0]`` is the function's own node."""
        argn: tuple[Node, ...] = args[1:] if args is not None else ()
        has_final = final is not _MISSING
        num_in = len(argn) + has_final
        nparams = len(params)
        if variadic is not None:
            if num_in < nparams:
                self.errorf(f"wrong number of args for {name}: want at least {nparams} got {len(argn)}")
        elif num_in != nparams:
            self.errorf(f"wrong number of args for {name}: want {nparams} got {num_in}")
        if results != 1:
            # Go's goodFunc: one result, or a result and an error.
            self.errorf(f"can't call method/function {gofmt.quote(name)} with {results} results")

        if is_builtin and (name == "and" or name == "or"):
            # Builtin and/or short-circuit: later arguments are never evaluated.
            want = name == "or"
            v: Any = NO_VALUE
            for arg in argn:
                v = self.eval_arg(dot, "reflect.Value", arg)
                if is_true(v) == want:
                    return v
            if has_final:
                # Not short-circuited, so the pipeline's value is the result.
                v = self.validate_type(final, "reflect.Value")
            return v

        eval_arg = self.eval_arg
        if is_builtin and name == "slice" and argn:
            # Go hands slice its indexes as reflect.Values keeping their static
            # type; an index read from an interface {} slot is rejected as such.
            argv = [eval_arg(dot, "reflect.Value", argn[0])]
            for arg in argn[1:]:
                v = eval_arg(dot, "reflect.Value", arg)
                if isinstance(v, Ref):
                    v = v.get()  # an element of a typed slice: not an interface value
                if v is not None and v is not NO_VALUE and self.is_interface_arg(arg):
                    v = InterfaceValue(v)
                argv.append(v)
        elif variadic is None:
            argv = [eval_arg(dot, typ, arg) for typ, arg in zip(params, argn, strict=False)]
        else:
            argv = [eval_arg(dot, params[i] if i < nparams else variadic, arg) for i, arg in enumerate(argn)]
        if has_final:
            # The final argument fills the next fixed parameter, or the variadic part.
            last = len(argv)
            argv.append(self.validate_type(final, params[last] if last < nparams else variadic))
        if self.alias:
            # Go's Call reads the arguments now: element references give their
            # current element. Alias mode's index takes them as they are (alias.py).
            if is_builtin and fn is INDEX:
                fn = alias_index
            else:
                argv = [v.get() if isinstance(v, Ref) else v for v in argv]
        try:
            return fn(*argv)
        except RecursionError:
            raise  # Python's stack, not the function, ran out: execute reruns deeper
        except Exception as exc:
            self.node = node
            self.errorf(f"error calling {name}: {exc}")

    def validate_type(self: _Host, value: Any, typ: str | None) -> Any:
        """``value`` checked against parameter type ``typ`` (None: no constraint)."""
        if typ in _PASS_TYPES and value is not NO_VALUE:
            return value
        if typ == "string" and type(value) is str:
            return value
        if isinstance(value, Ref):
            # An element reference stays one (the call reads it) if its element fits.
            self.validate_type(value.get(), typ)
            return value
        if value is NO_VALUE:
            if typ is None or typ == "reflect.Value":
                return NO_VALUE
            if can_be_nil(typ):
                return zero_value(typ)
            self.errorf(f"invalid value; expected {typ}")
        if value is None:
            vt = "interface {}"  # a nil interface value is assignable only to interfaces
        else:
            vt = go_type_name(value)
            if vt == typ:
                return value
            # A pointer to a struct dereferences to the struct parameter.
            if isinstance(value, GoStruct) and value.go_pointer and value.go_type == typ:
                return value
            # A named slice type is assignable to its unnamed underlying type.
            if isinstance(value, GoSlice) and value.name and typ == "[]" + value.elem:
                return value
        self.errorf(f"wrong type for value; expected {typ}; got {vt}")

    def eval_arg(self: _Host, dot: Any, typ: str | None, n: Node) -> Any:
        """An argument node's value for a parameter of type ``typ``."""
        self.node = n
        t = type(n)
        if t is VariableNode:
            return self.validate_type(self.eval_variable_node(dot, n, None, _MISSING), typ)  # type: ignore[arg-type]
        if t is StringNode and (typ == "string" or typ in _PASS_TYPES):
            return n.text  # type: ignore[attr-defined]
        match n:
            case FieldNode():
                return self.validate_type(
                    self.eval_field_chain(dot, dot, n, n.ident, (n,), _MISSING, self.dot_iface), typ
                )
            case DotNode():
                return self.validate_type(dot, typ)
            case PipeNode():
                return self.validate_type(self.eval_pipeline(dot, n), typ)
            case IdentifierNode():
                return self.validate_type(self.eval_function(dot, n, n, None, _MISSING), typ)
            case ChainNode():
                return self.validate_type(self.eval_chain_node(dot, n, None, _MISSING), typ)
            case NilNode():
                assert typ is not None
                if can_be_nil(typ):
                    return zero_value(typ)
                self.errorf(f"cannot assign nil to {typ}")
        assert typ is not None  # the parser never chains from a literal
        match go_kind(typ):
            case "string":
                # (A string literal took the fast path above.)
                self.errorf(f"expected string; found {n}")
            case "interface" | "reflect.Value":
                return self.eval_empty_interface(dot, n)
            case "int":
                if isinstance(n, NumberNode) and n.is_int:
                    return make_int(typ, n.int_value)
                self.errorf(f"expected integer; found {n}")
            case "float":
                if isinstance(n, NumberNode) and n.is_float:
                    return n.float_value
                self.errorf(f"expected float; found {n}")
            case "bool":
                if isinstance(n, BoolNode):
                    return n.value
                self.errorf(f"expected bool; found {n}")
            case "uint":
                if isinstance(n, NumberNode) and n.is_uint:
                    return make_int(typ, n.uint_value)
                self.errorf(f"expected unsigned integer; found {n}")
            case "complex":
                if isinstance(n, NumberNode) and n.is_complex:
                    return n.complex_value
                self.errorf(f"expected complex; found {n}")
        self.errorf(f"can't handle {n} for arg of type {typ}")

    def eval_empty_interface(self: _Host, dot: Any, n: Node) -> Any:
        """A literal's value for an ``interface {}`` parameter (evalArg handled the rest)."""
        self.node = n
        match n:
            case NumberNode():
                return self.ideal_constant(n)
            case BoolNode():
                return n.value
        self.errorf(f"can't handle assignment of {n} to empty interface argument")


def _is_hex_int(s: str) -> bool:
    return len(s) > 2 and s[0] == "0" and s[1] in "xX" and "p" not in s and "P" not in s
