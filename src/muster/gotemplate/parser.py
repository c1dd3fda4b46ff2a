"""The template parser: a port of Go 1.19's ``text/template/parse/parse.go``.

:func:`parse` turns source text into parse trees, one per template it defines
(the top-level one plus every ``{{define}}`` and ``{{block}}``), by recursive
descent over the lexer's tokens. As in Go, it checks at parse time what Go
checks there: that functions exist, that variables are declared before use,
that ``break``/``continue`` sit inside ``range``, and that number and string
literals are valid. Errors raise :class:`~muster.errors.TemplateSyntaxError`
with Go's message, ``template: NAME:LINE: ...``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass

from muster.errors import TemplateSyntaxError
from muster.golang.literals import unquote
from muster.golang.strconv import NumError, quote
from muster.gotemplate import nodes
from muster.gotemplate.deepstack import in_deep_run, run_deep
from muster.gotemplate.lexer import Token, TokenType, lex
from muster.gotemplate.numbers import new_number

__all__ = ["is_empty_tree", "parse"]

T = TokenType

# Node classes a pipeline stage after the first may not start with (Go's checkPipeline).
_NON_EXECUTABLE = (nodes.BoolNode, nodes.DotNode, nodes.NilNode, nodes.NumberNode, nodes.StringNode)
# Tokens that can start an operand.
_OPERAND_START = frozenset(
    {
        T.BOOL,
        T.CHAR_CONSTANT,
        T.COMPLEX,
        T.DOT,
        T.FIELD,
        T.IDENTIFIER,
        T.NUMBER,
        T.NIL,
        T.RAW_STRING,
        T.STRING,
        T.VARIABLE,
        T.LEFT_PAREN,
    }
)
# Go's unicode.IsSpace, which bytes.TrimSpace uses (Python's isspace also has \x1c-\x1f).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(
    map(chr, range(0x2000, 0x200B))
)


@dataclass(frozen=True, slots=True)
class _End(nodes.Node):
    """``{{end}}``: ends a list; never in a finished tree."""

    def __str__(self) -> str:
        return "{{end}}"


@dataclass(frozen=True, slots=True)
class _Else(nodes.Node):
    """``{{else}}``: ends a list; never in a finished tree."""

    line: int = 0

    def __str__(self) -> str:
        return "{{else}}"


class _Shared:
    """State every tree of one parse shares: the token source, functions, the result."""

    def __init__(self, tokens: Iterator[Token], text: str, parse_name: str, funcs: Collection[str]) -> None:
        self.tokens = tokens
        self.text = text
        self.parse_name = parse_name
        self.funcs = funcs
        self.tree_set: dict[str, nodes.Tree] = {}
        self.line = 1  # line of the last token lexed


class _TreeParser:
    """Parses one template (Go's ``Tree`` while parsing).

    Each ``define``/``block`` gets its own ``_TreeParser`` on the shared token
    source, with its own lookahead buffer, variables and range depth, as in Go;
    the buffer matters only for which line an error reports.
    """

    def __init__(self, name: str, shared: _Shared) -> None:
        self.name = name
        self.shared = shared
        self.token: list[Token] = [Token(T.EOF, "", 0, 0)] * 3  # three-token lookahead
        self.peek_count = 0
        self.vars = ["$"]  # variables defined at the moment
        self.action_line = 0  # line of the left delim starting the current action
        self.range_depth = 0
        self.called: set[str] = set()  # function names met, for Tree.called

    # -- token stream ----------------------------------------------------------------------------

    def _lexed(self) -> Token:
        # The lexer always ends with EOF or ERROR and the parser never reads past them.
        token = next(self.shared.tokens)
        self.shared.line = token.line
        return token

    def next(self) -> Token:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self._lexed()
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: Token) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: Token, t1: Token) -> None:  # reverse order: we're pushing back
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> Token:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self._lexed()
        return self.token[0]

    def next_non_space(self) -> Token:
        while True:
            token = self.next()
            if token.type is not T.SPACE:
                return token

    def peek_non_space(self) -> Token:
        token = self.next_non_space()
        self.backup()
        return token

    # -- errors ----------------------------------------------------------------------------------

    def error(self, message: str) -> TemplateSyntaxError:
        """The error to raise; Go reports the line of the last token it lexed."""
        return TemplateSyntaxError(message, name=self.shared.parse_name, line=self.token[0].line)

    def expect(self, expected: TokenType, context: str) -> Token:
        token = self.next_non_space()
        if token.type is not expected:
            raise self.unexpected(token, context)
        return token

    def unexpected(self, token: Token, context: str) -> TemplateSyntaxError:
        if token.type is T.ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != token.line:
                extra = f" in action started at {self.shared.parse_name}:{self.action_line}"
                if token.value.endswith(" action"):
                    extra = extra[len(" in action") :]  # avoid "action in action"
            return self.error(f"{token}{extra}")
        return self.error(f"unexpected {token} in {context}")

    # -- trees -----------------------------------------------------------------------------------

    def add(self, root: nodes.ListNode) -> None:
        """Install the finished tree in the set, following Go's redefinition rule."""
        tree_set = self.shared.tree_set
        old = tree_set.get(self.name)
        if old is None or is_empty_tree(old.root):
            tree_set[self.name] = nodes.Tree(
                self.name, root, self.shared.parse_name, self.shared.text, frozenset(self.called)
            )
        elif not is_empty_tree(root):
            raise self.error(f"template: multiple definition of template {quote(self.name)}")

    def parse_top(self) -> None:
        """The top-level template: like ``item_list`` but it also takes ``{{define}}``."""
        items: list[nodes.Node] = []
        pos = self.peek().pos
        while self.peek().type is not T.EOF:
            if self.peek().type is T.LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().type is T.DEFINE:
                    _TreeParser("definition", self.shared).parse_definition()
                    continue
                self.backup2(delim)
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                raise self.error(f"unexpected {node}")
            items.append(node)
        self.add(nodes.ListNode(pos, tuple(items)))

    def parse_definition(self) -> None:
        """``{{define "name"}} ... {{end}}``; the ``define`` keyword has been scanned."""
        context = "define clause"
        token = self.next_non_space()
        if token.type not in (T.STRING, T.RAW_STRING):
            raise self.unexpected(token, context)
        self.name = self._unquote(token.value)
        self.expect(T.RIGHT_DELIM, context)
        root, end = self.item_list()
        if not isinstance(end, _End):
            raise self.error(f"unexpected {end} in {context}")
        self.add(root)

    def item_list(self) -> tuple[nodes.ListNode, nodes.Node]:
        """``textOrAction*`` up to ``{{end}}`` or ``{{else}}``, which is returned separately."""
        pos = self.peek_non_space().pos
        items: list[nodes.Node] = []
        while self.peek_non_space().type is not T.EOF:
            node = self.text_or_action()
            if isinstance(node, _End | _Else):
                return nodes.ListNode(pos, tuple(items)), node
            items.append(node)
        raise self.error("unexpected EOF")

    def text_or_action(self) -> nodes.Node:
        token = self.next_non_space()
        if token.type is T.TEXT:
            return nodes.TextNode(token.pos, token.value)
        if token.type is T.LEFT_DELIM:
            self.action_line = token.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        if token.type is T.COMMENT:
            return nodes.CommentNode(token.pos, token.value)
        raise self.unexpected(token, "input")

    # -- actions ---------------------------------------------------------------------------------

    def action(self) -> nodes.Node:
        """A control structure, or a pipeline; the left delimiter is past."""
        token = self.next_non_space()
        match token.type:
            case T.BLOCK:
                return self.block_control()
            case T.BREAK:
                return self.loop_control(token, nodes.BreakNode, "break")
            case T.CONTINUE:
                return self.loop_control(token, nodes.ContinueNode, "continue")
            case T.ELSE:
                return self.else_control()
            case T.END:
                return _End(self.expect(T.RIGHT_DELIM, "end").pos)
            case T.IF:
                return self.if_control()
            case T.RANGE:
                return nodes.RangeNode(*self.parse_control(False, "range"))
            case T.TEMPLATE:
                return self.template_control()
            case T.WITH:
                return nodes.WithNode(*self.parse_control(False, "with"))
        self.backup()
        token = self.peek()
        # Do not pop variables; they persist until "end".
        return nodes.ActionNode(token.pos, token.line, self.pipeline("command", T.RIGHT_DELIM))

    def loop_control(
        self, keyword: Token, cls: type[nodes.BreakNode | nodes.ContinueNode], word: str
    ) -> nodes.Node:
        token = self.next_non_space()
        if token.type is not T.RIGHT_DELIM:
            raise self.unexpected(token, "{{" + word + "}}")
        if self.range_depth == 0:
            raise self.error("{{" + word + "}} outside {{range}}")
        return cls(keyword.pos, keyword.line)

    def pipeline(self, context: str, end: TokenType) -> nodes.PipeNode:
        """``declarations? command ('|' command)*``."""
        token = self.peek_non_space()
        decl: list[nodes.VariableNode] = []
        is_assign = False
        cmds: list[nodes.CommandNode] = []
        # Are there declarations or assignments?
        while (v := self.peek_non_space()).type is T.VARIABLE:
            self.next()
            # Space is a token, so in "$x foo" we must read "foo" (as opposed to ":=")
            # to know $x is an argument: keep the token after the variable to push back.
            token_after_variable = self.peek()
            nxt = self.peek_non_space()
            if nxt.type in (T.ASSIGN, T.DECLARE):
                is_assign = nxt.type is T.ASSIGN
                self.next_non_space()
                decl.append(nodes.VariableNode(v.pos, tuple(v.value.split("."))))
                self.vars.append(v.value)
            elif nxt.type is T.CHAR and nxt.value == ",":
                self.next_non_space()
                decl.append(nodes.VariableNode(v.pos, tuple(v.value.split("."))))
                self.vars.append(v.value)
                if context == "range" and len(decl) < 2:
                    if self.peek_non_space().type in (T.VARIABLE, T.RIGHT_DELIM, T.RIGHT_PAREN):
                        continue  # second initialized variable in a range pipeline
                    raise self.error("range can only initialize variables")
                raise self.error(f"too many declarations in {context}")
            elif token_after_variable.type is T.SPACE:
                self.backup3(v, token_after_variable)
            else:
                self.backup2(v)
            break
        while True:
            tok = self.next_non_space()
            if tok.type is end:
                # At this point, the pipeline is complete.
                pipe = nodes.PipeNode(token.pos, token.line, is_assign, tuple(decl), tuple(cmds))
                self.check_pipeline(pipe, context)
                return pipe
            if tok.type not in _OPERAND_START:
                raise self.unexpected(tok, context)
            self.backup()
            cmds.append(self.command())

    def check_pipeline(self, pipe: nodes.PipeNode, context: str) -> None:
        if not pipe.cmds:
            raise self.error(f"missing value for {context}")
        # Only the first command of a pipeline can start with a non-executable operand.
        for i, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], _NON_EXECUTABLE):
                raise self.error(f"non executable command in pipeline stage {i + 2}")

    def parse_control(
        self, allow_else_if: bool, context: str
    ) -> tuple[int, int, nodes.PipeNode, nodes.ListNode, nodes.ListNode | None]:
        n_vars = len(self.vars)
        try:
            pipe = self.pipeline(context, T.RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, _Else):
                # "{{else if b}}" is "{{else}}{{if b}}...{{end}}{{end}}" with one {{end}}:
                # else_control left the "if" pending, so parse it here and stop at its end.
                if allow_else_if and self.peek().type is T.IF:
                    self.next()
                    else_list = nodes.ListNode(nxt.pos, (self.if_control(),))
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, _End):
                        raise self.error(f"expected end; found {nxt}")
            return pipe.pos, pipe.line, pipe, lst, else_list
        finally:
            del self.vars[n_vars:]

    def if_control(self) -> nodes.IfNode:
        return nodes.IfNode(*self.parse_control(True, "if"))

    def else_control(self) -> nodes.Node:
        peek = self.peek_non_space()
        if peek.type is T.IF:
            # We see "{{else if ... " but in effect rewrite it to {{else}}{{if ... ".
            return _Else(peek.pos, peek.line)
        token = self.expect(T.RIGHT_DELIM, "else")
        return _Else(token.pos, token.line)

    def block_control(self) -> nodes.Node:
        """``{{block "name" pipeline}} ... {{end}}``: defines a template and calls it."""
        context = "block clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = self.pipeline(context, T.RIGHT_DELIM)
        block = _TreeParser(name, self.shared)
        root, end = block.item_list()
        if not isinstance(end, _End):
            raise self.error(f"unexpected {end} in {context}")
        block.add(root)
        return nodes.TemplateNode(token.pos, token.line, name, pipe)

    def template_control(self) -> nodes.Node:
        """``{{template "name" pipeline?}}``."""
        context = "template clause"
        token = self.next_non_space()
        name = self.parse_template_name(token, context)
        pipe = None
        if self.next_non_space().type is not T.RIGHT_DELIM:
            self.backup()
            # Do not pop variables; they persist until "end".
            pipe = self.pipeline(context, T.RIGHT_DELIM)
        return nodes.TemplateNode(token.pos, token.line, name, pipe)

    def parse_template_name(self, token: Token, context: str) -> str:
        if token.type not in (T.STRING, T.RAW_STRING):
            raise self.unexpected(token, context)
        return self._unquote(token.value)

    def _unquote(self, literal: str) -> str:
        try:
            return unquote(literal)
        except NumError as exc:
            raise self.error(str(exc)) from None

    # -- commands and operands -------------------------------------------------------------------

    def command(self) -> nodes.CommandNode:
        """Space-separated operands up to a pipe character or right delimiter; the pipe
        is consumed, the delimiter is left to end the action."""
        pos = self.peek_non_space().pos
        args: list[nodes.Node] = []
        while True:
            self.peek_non_space()  # skip leading spaces
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            token = self.next()
            if token.type is T.SPACE:
                continue
            if token.type in (T.RIGHT_DELIM, T.RIGHT_PAREN):
                self.backup()
            elif token.type is not T.PIPE:
                raise self.unexpected(token, "operand")
            break
        # Go also rejects an empty command here, but pipeline() calls command() only
        # at a token that starts an operand, so there is always one.
        return nodes.CommandNode(pos, tuple(args))

    def operand(self) -> nodes.Node | None:
        """A term possibly followed by field accesses; None if no operand is next."""
        node = self.term()
        if node is None or self.peek().type is not T.FIELD:
            return node
        pos = self.peek().pos
        fields: list[str] = []
        while self.peek().type is T.FIELD:
            fields.append(self.next().value[1:])
        chain = nodes.ChainNode(pos, node, tuple(fields))
        # Compatibility with Go's original API: fields on a field or variable extend
        # it (at the chain's position); obvious errors on literals are caught here.
        match node:
            case nodes.FieldNode():
                return nodes.FieldNode(pos, tuple(str(chain)[1:].split(".")))
            case nodes.VariableNode():
                return nodes.VariableNode(pos, tuple(str(chain).split(".")))
            case _ if isinstance(node, _NON_EXECUTABLE):  # literals have no fields
                raise self.error(f"unexpected . after term {quote(str(node))}")
        return chain

    def term(self) -> nodes.Node | None:
        """A literal, function name, ``.``, ``.Field``, ``$x`` or ``( pipeline )``;
        None (with nothing consumed) if the next token is none of these."""
        token = self.next_non_space()
        match token.type:
            case T.IDENTIFIER:
                if token.value not in self.shared.funcs:
                    raise self.error(f"function {quote(token.value)} not defined")
                self.called.add(token.value)
                return nodes.IdentifierNode(token.pos, token.value)
            case T.DOT:
                return nodes.DotNode(token.pos)
            case T.NIL:
                return nodes.NilNode(token.pos)
            case T.VARIABLE:
                return self.use_var(token)
            case T.FIELD:
                return nodes.FieldNode(token.pos, tuple(token.value[1:].split(".")))
            case T.BOOL:
                return nodes.BoolNode(token.pos, token.value == "true")
            case T.CHAR_CONSTANT | T.COMPLEX | T.NUMBER:
                try:
                    return new_number(token.pos, token.value, token.type)
                except NumError as exc:
                    raise self.error(str(exc)) from None
            case T.LEFT_PAREN:
                return self.pipeline("parenthesized pipeline", T.RIGHT_PAREN)
            case T.STRING | T.RAW_STRING:
                return nodes.StringNode(token.pos, token.value, self._unquote(token.value))
        self.backup()
        return None

    def use_var(self, token: Token) -> nodes.VariableNode:
        v = nodes.VariableNode(token.pos, tuple(token.value.split(".")))
        if v.ident[0] not in self.vars:
            raise self.error(f"undefined variable {quote(v.ident[0])}")
        return v


def is_empty_tree(node: nodes.Node | None) -> bool:
    """Whether ``node`` holds nothing but space and comments (Go's ``IsEmptyTree``).

    An empty definition never replaces a non-empty one of the same name.
    """
    match node:
        case None | nodes.CommentNode():
            return True
        case nodes.ListNode():
            return all(is_empty_tree(n) for n in node.nodes)
        case nodes.TextNode():
            return not node.text.strip(_GO_SPACE)
    return False


def parse(
    name: str,
    text: str,
    funcs: Collection[str],
    *,
    left_delim: str = "",
    right_delim: str = "",
    parse_comments: bool = False,
) -> dict[str, nodes.Tree]:
    """Parse ``text`` as template ``name``: Go's ``parse.Parse``.

    Returns every tree defined, by name: ``name`` itself plus each ``define`` and
    ``block``. ``funcs`` is the set of function names calls may use (builtins
    included). Raises :class:`TemplateSyntaxError` on the first error, and also
    (unlike Go, whose stacks grow) for nesting deeper than Python's recursion limit
    allows, some 150 levels of parentheses or control structures.
    """
    tokens = lex(text, left_delim, right_delim, emit_comment=parse_comments)
    shared = _Shared(tokens, text, name, funcs)
    try:
        _TreeParser(name, shared).parse_top()
    except RecursionError:
        # Go's stack grows; Python's does not: rerun on a deep stack before giving up.
        if not in_deep_run():
            return run_deep(
                lambda: parse(
                    name,
                    text,
                    funcs,
                    left_delim=left_delim,
                    right_delim=right_delim,
                    parse_comments=parse_comments,
                )
            )
        raise TemplateSyntaxError("template nested too deeply", name=name, line=shared.line) from None
    return shared.tree_set
