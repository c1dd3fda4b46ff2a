"""Parse-tree nodes of Go's text/template (Go 1.19 ``text/template/parse/node.go``).

Every node is a frozen dataclass with ``pos``, the byte offset of the node in the
template source (Go's ``Pos``), used to compute ``NAME:LINE:COL`` in errors.
``str(node)`` prints template source again, as Go's ``String()`` does, so parser
tests compare strings. The executor dispatches on these classes with ``match``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from muster.golang.strconv import quote

__all__ = [
    "ActionNode",
    "BoolNode",
    "BranchNode",
    "BreakNode",
    "ChainNode",
    "CommandNode",
    "CommentNode",
    "ContinueNode",
    "DotNode",
    "FieldNode",
    "IdentifierNode",
    "IfNode",
    "ListNode",
    "NilNode",
    "Node",
    "NumberNode",
    "PipeNode",
    "RangeNode",
    "StringNode",
    "TemplateNode",
    "TextNode",
    "Tree",
    "VariableNode",
    "WithNode",
    "go_quote",
]


@dataclass(frozen=True, slots=True)
class Node:
    pos: int


@dataclass(frozen=True, slots=True)
class ListNode(Node):
    nodes: tuple[Node, ...] = ()

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


@dataclass(frozen=True, slots=True)
class TextNode(Node):
    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class CommentNode(Node):
    text: str = ""  # includes the /* */ delimiters

    def __str__(self) -> str:
        return "{{" + self.text + "}}"


@dataclass(frozen=True, slots=True)
class VariableNode(Node):
    ident: tuple[str, ...] = ()  # "$x", then field names: $x.a.b

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass(frozen=True, slots=True)
class CommandNode(Node):
    args: tuple[Node, ...] = ()

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, PipeNode) else str(a) for a in self.args)


@dataclass(frozen=True, slots=True)
class PipeNode(Node):
    line: int = 0
    is_assign: bool = False  # "=" rather than ":="
    decl: tuple[VariableNode, ...] = ()
    cmds: tuple[CommandNode, ...] = ()

    def __str__(self) -> str:
        head = ""
        if self.decl:
            head = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return head + " | ".join(str(c) for c in self.cmds)


@dataclass(frozen=True, slots=True)
class ActionNode(Node):
    line: int = 0
    pipe: PipeNode | None = None

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass(frozen=True, slots=True)
class IdentifierNode(Node):
    ident: str = ""  # a function name

    def __str__(self) -> str:
        return self.ident


@dataclass(frozen=True, slots=True)
class DotNode(Node):
    def __str__(self) -> str:
        return "."


@dataclass(frozen=True, slots=True)
class NilNode(Node):
    def __str__(self) -> str:
        return "nil"


@dataclass(frozen=True, slots=True)
class FieldNode(Node):
    ident: tuple[str, ...] = ()  # .a.b is ("a", "b")

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclass(frozen=True, slots=True)
class ChainNode(Node):
    """A field access on a non-field operand: ``(pipe).a.b`` or ``$x`` chains."""

    node: Node | None = None
    field: tuple[str, ...] = ()

    def __str__(self) -> str:
        base = f"({self.node})" if isinstance(self.node, PipeNode) else str(self.node)
        return base + "".join("." + f for f in self.field)


@dataclass(frozen=True, slots=True)
class BoolNode(Node):
    value: bool = False

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True, slots=True)
class NumberNode(Node):
    """A numeric constant. Like Go, one literal may be valid as several kinds
    (``1`` is an int, a uint and a float); ``text`` is the source spelling."""

    text: str = ""
    is_int: bool = False
    is_uint: bool = False
    is_float: bool = False
    is_complex: bool = False
    int_value: int = 0
    uint_value: int = 0
    float_value: float = 0.0
    complex_value: complex = 0j

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class StringNode(Node):
    quoted: str = ""  # the source spelling, with quotes
    text: str = ""  # the unquoted value

    def __str__(self) -> str:
        return self.quoted


@dataclass(frozen=True, slots=True)
class BranchNode(Node):
    line: int = 0
    pipe: PipeNode | None = None
    list: ListNode | None = None
    else_list: ListNode | None = None

    keyword: str = field(default="", init=False, repr=False)

    def __str__(self) -> str:
        out = "{{" + self.keyword + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            out += "{{else}}" + str(self.else_list)
        return out + "{{end}}"


@dataclass(frozen=True, slots=True)
class IfNode(BranchNode):
    keyword: str = field(default="if", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class RangeNode(BranchNode):
    keyword: str = field(default="range", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class WithNode(BranchNode):
    keyword: str = field(default="with", init=False, repr=False)


@dataclass(frozen=True, slots=True)
class BreakNode(Node):
    line: int = 0

    def __str__(self) -> str:
        return "{{break}}"


@dataclass(frozen=True, slots=True)
class ContinueNode(Node):
    line: int = 0

    def __str__(self) -> str:
        return "{{continue}}"


@dataclass(frozen=True, slots=True)
class TemplateNode(Node):
    line: int = 0
    name: str = ""
    pipe: PipeNode | None = None

    def __str__(self) -> str:
        if self.pipe is None:
            return "{{template " + go_quote(self.name) + "}}"
        return "{{template " + go_quote(self.name) + " " + str(self.pipe) + "}}"


@dataclass(slots=True)
class Tree:
    """One parsed template: Go's ``parse.Tree``.

    ``parse_name`` is the name of the top-level template being parsed (used in error
    messages for templates defined inside it); ``text`` is the full source, from which
    ``error_context`` computes line and column like Go's ``ErrorContext``.
    """

    name: str
    root: ListNode
    parse_name: str = ""
    text: str = ""
    # The function names the template calls (builtins included): the executor asks
    # whether any of them writes slices in place (alias.uses_mutators).
    called: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return str(self.root)

    def error_context(self, node: Node) -> tuple[str, int, int]:
        """``(parse_name, line, col)`` for ``node``; col is Go's 0-based byte column.

        ``pos`` counts characters of the Python source string; Go counts bytes, so the
        column is measured in UTF-8 bytes of the line up to the node.
        """
        before = self.text[: node.pos]
        line_start = before.rfind("\n") + 1
        col = len(before[line_start:].encode("utf-8", "surrogateescape"))
        return self.parse_name or self.name, 1 + before.count("\n"), col


def go_quote(s: str) -> str:
    """A double-quoted Go string literal, as ``strconv.Quote`` spells it."""
    return quote(s)
