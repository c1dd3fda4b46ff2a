"""Field access for the executor: Go 1.19 ``exec.go``'s evalField family.

``Fields`` is the part of the execution state that evaluates ``.a.b``, ``$x.a`` and
``(pipe).a``: map keys (a missing one is ``NO_VALUE``, and chaining from it stays
missing), struct fields and ``go_method`` calls, and Go's errors for everything else
(``nil pointer evaluating interface {}.b`` through a JSON ``null``). The executor
state in ``exec.py`` inherits it; the split keeps each module readable beside Go's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NoReturn, Protocol

from muster.golang.values import NO_VALUE, GoMap, GoSlice, GoStruct, go_type_name
from muster.gotemplate.alias import FieldRef, Ref
from muster.gotemplate.nodes import ChainNode, DotNode, FieldNode, NilNode, Node, VariableNode
from muster.gotemplate.plan import MISSING_FINAL

__all__ = ["Fields", "holds_interfaces"]

_MISSING: Final = MISSING_FINAL


class _Host(Protocol):
    """What ``Fields`` needs of the executor state it is mixed into."""

    node: Node
    dot_iface: bool
    last_parent: Any
    last_name: str

    def errorf(self, msg: str) -> NoReturn: ...

    def var_entry(self, name: str) -> list[Any]: ...

    def not_a_function(self, args: tuple[Node, ...], final: Any) -> None: ...

    def eval_arg(self, dot: Any, typ: str | None, n: Node) -> Any: ...

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

    def eval_field(
        self,
        dot: Any,
        name: str,
        node: Node,
        args: tuple[Node, ...] | None,
        final: Any,
        receiver: Any,
        iface: bool,
    ) -> Any: ...


class Fields:
    """Field, key and method access; mixed into the executor's ``_State``."""

    node: Node  # the node being evaluated, for error messages (set by the state)
    last_parent: Any
    last_name: str

    def eval_chain_node(
        self: _Host, dot: Any, chain: ChainNode, args: tuple[Node, ...] | None, final: Any
    ) -> Any:
        self.node = chain
        if not chain.field:
            self.errorf("internal error: no fields in evalChainNode")
        assert chain.node is not None
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        # (pipe).Field1.Field2 has pipe as .node, fields as .field.
        pipe = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.field, args, final, False)

    def eval_variable_node(
        self: _Host, dot: Any, variable: VariableNode, args: tuple[Node, ...] | None, final: Any
    ) -> Any:
        # $x.Field has $x as the first ident, Field as the second.
        self.node = variable
        ident = variable.ident
        entry = self.var_entry(ident[0])
        if len(ident) == 1:
            if args is not None:
                self.not_a_function(args, final)
            return entry[1]
        value = entry[1]
        if len(ident) == 2 and type(value) is dict and final is _MISSING and (args is None or len(args) == 1):
            self.last_parent, self.last_name = value, ident[1]
            return value.get(ident[1], NO_VALUE)  # the hot path: $x.key on a JSON object
        return self.eval_field_chain(dot, value, variable, ident[1:], args, final, entry[2])

    def eval_field_chain(
        self: _Host,
        dot: Any,
        receiver: Any,
        node: Node,
        ident: tuple[str, ...],
        args: tuple[Node, ...] | None,
        final: Any,
        iface: bool,
    ) -> Any:
        """Evaluate ``.X.Y.Z``: every name but the last takes no arguments."""
        last = len(ident) - 1
        for i in range(last):
            name = ident[i]
            nxt = self.eval_field(dot, name, node, None, _MISSING, receiver, iface)
            if isinstance(receiver, Ref):
                receiver = receiver.get()
            if isinstance(receiver, GoStruct):
                iface = receiver.go_field_types.get(name) == "interface {}"
            else:
                iface = holds_interfaces(receiver)
            receiver = nxt
        # Remember where the value came from: is_interface_arg asks.
        self.last_parent, self.last_name = receiver, ident[last]
        return self.eval_field(dot, ident[last], node, args, final, receiver, iface)

    def is_interface_arg(self: _Host, n: Node) -> bool:
        """Whether the argument just evaluated from ``n`` is an ``interface {}`` value.

        Go passes such a value to a ``reflect.Value`` parameter with its interface
        type, which ``slice`` rejects as an index.
        """
        match n:
            case DotNode():
                return self.dot_iface
            case VariableNode() if len(n.ident) == 1:
                return bool(self.var_entry(n.ident[0])[2])
            case FieldNode() | VariableNode() | ChainNode():
                parent, name = self.last_parent, self.last_name
                if isinstance(parent, Ref):
                    parent = parent.get()
                if isinstance(parent, GoStruct):
                    return parent.go_field_types.get(name) == "interface {}"
                return holds_interfaces(parent)
        return False

    def eval_field(
        self: _Host,
        dot: Any,
        name: str,
        node: Node,
        args: tuple[Node, ...] | None,
        final: Any,
        receiver: Any,
        iface: bool,
    ) -> Any:
        """``.name`` of ``receiver``: a map key, a struct field or a method call."""
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        if type(receiver) is dict:  # the hot path: JSON objects
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            return receiver.get(name, NO_VALUE)
        if receiver is NO_VALUE:
            return NO_VALUE  # chaining from a missing key stays missing
        if receiver is None:
            # A nil interface: Go cannot look up a method or field on it.
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, Ref):
            # An element reference (alias mode): look in the element it refers to
            # now; a struct field of it is addressable in Go, so a reference too.
            element = receiver.get()
            value = self.eval_field(dot, name, node, args, final, element, iface)
            if isinstance(element, GoStruct) and name in element.go_fields:
                return FieldRef(receiver, name)
            return value
        # Methods first, on any type that has them: structs, and named types such
        # as time.Month (a GoInt) or a GoSlice subclass.
        method = getattr(type(receiver), name, None)
        params = getattr(method, "__go_params__", None)
        if params is not None:
            bound = getattr(receiver, name)
            variadic = method.__go_variadic__  # type: ignore[union-attr]
            results = getattr(method, "__go_results__", 1)
            return self.eval_call(dot, bound, params, variadic, False, node, name, args, final, results)
        if isinstance(receiver, GoStruct):
            if name in receiver.go_fields:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return getattr(receiver, name)
        elif isinstance(receiver, dict) and (not isinstance(receiver, GoMap) or receiver.key == "string"):
            # Other dicts (subclasses such as OrderedDict) are map[string]interface {} too.
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            return NO_VALUE
        typ = "interface {}" if iface else go_type_name(receiver)
        self.errorf(f"can't evaluate field {name} in type {typ}")


def holds_interfaces(container: Any) -> bool:
    """Whether the container's elements are ``interface {}`` values."""
    if isinstance(container, (GoMap, GoSlice)):
        return container.elem == "interface {}"
    return isinstance(container, (dict, list))
