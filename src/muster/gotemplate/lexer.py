"""The template scanner: a port of Go 1.19's ``text/template/parse/lex.go``.

Theory of operation: as in Go, the lexer is a state machine whose states are
functions; each state scans some input, emits tokens and returns the next state
(``None`` ends the scan). Go runs it in a goroutine feeding a channel; here
:func:`lex` is a generator that runs one state at a time and yields what it
emitted, so the parser pulls tokens lazily and the scan stops where parsing does.

Positions are character offsets into the Python source string (Go counts bytes;
:meth:`muster.gotemplate.nodes.Tree.error_context` converts), lines start at 1.
Trim markers (``{{- `` and `` -}}``) are handled here entirely: the parser never
sees the trimmed space. Errors are an ``ERROR`` token whose value is the message,
and end the scan.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from typing import NamedTuple

from muster.golang.strconv import is_print, quote
from muster.golang.unicode import is_letter_or_digit

__all__ = ["KEYWORDS", "Token", "TokenType", "lex"]


class TokenType(enum.Enum):
    """Go's ``itemType``; the members after ``BLOCK`` are keywords."""

    ERROR = enum.auto()  # value is the text of the error
    BOOL = enum.auto()  # boolean constant
    CHAR = enum.auto()  # printable ASCII character; grab bag for comma etc.
    CHAR_CONSTANT = enum.auto()  # character constant
    COMMENT = enum.auto()  # comment text
    COMPLEX = enum.auto()  # complex constant (1+2i); imaginary is just a number
    ASSIGN = enum.auto()  # equals ('=') introducing an assignment
    DECLARE = enum.auto()  # colon-equals (':=') introducing a declaration
    EOF = enum.auto()
    FIELD = enum.auto()  # alphanumeric identifier starting with '.'
    IDENTIFIER = enum.auto()  # alphanumeric identifier not starting with '.'
    LEFT_DELIM = enum.auto()  # left action delimiter
    LEFT_PAREN = enum.auto()  # '(' inside action
    NUMBER = enum.auto()  # simple number, including imaginary
    PIPE = enum.auto()  # pipe symbol
    RAW_STRING = enum.auto()  # raw quoted string (includes quotes)
    RIGHT_DELIM = enum.auto()  # right action delimiter
    RIGHT_PAREN = enum.auto()  # ')' inside action
    SPACE = enum.auto()  # run of spaces separating arguments
    STRING = enum.auto()  # quoted string (includes quotes)
    TEXT = enum.auto()  # plain text
    VARIABLE = enum.auto()  # variable starting with '$', such as '$' or '$1' or '$hello'
    # Keywords.
    BLOCK = enum.auto()
    BREAK = enum.auto()
    CONTINUE = enum.auto()
    DOT = enum.auto()  # the cursor, spelled '.'
    DEFINE = enum.auto()
    ELSE = enum.auto()
    END = enum.auto()
    IF = enum.auto()
    NIL = enum.auto()  # the untyped nil constant, easiest to treat as a keyword
    RANGE = enum.auto()
    TEMPLATE = enum.auto()
    WITH = enum.auto()


KEYWORDS: dict[str, TokenType] = {
    ".": TokenType.DOT,
    "block": TokenType.BLOCK,
    "break": TokenType.BREAK,
    "continue": TokenType.CONTINUE,
    "define": TokenType.DEFINE,
    "else": TokenType.ELSE,
    "end": TokenType.END,
    "if": TokenType.IF,
    "range": TokenType.RANGE,
    "nil": TokenType.NIL,
    "template": TokenType.TEMPLATE,
    "with": TokenType.WITH,
}
_KEYWORD_TYPES = frozenset(KEYWORDS.values())


class Token(NamedTuple):
    """One scanned item: Go's ``item``."""

    type: TokenType
    value: str
    pos: int  # character offset of the token's start in the source
    line: int  # line number at the start of the token

    def __str__(self) -> str:
        # Go's item.String(), which the parser puts in "unexpected ..." errors.
        if self.type is TokenType.EOF:
            return "EOF"
        if self.type is TokenType.ERROR:
            return self.value
        if self.type in _KEYWORD_TYPES:
            return f"<{self.value}>"
        if len(self.value) > 10:
            return quote(self.value[:10]) + "..."
        return quote(self.value)


_EOF = ""  # what _Lexer.next returns at the end of input
_SPACE_CHARS = " \t\r\n"  # the space characters defined by Go itself
_TRIM_MARKER_LEN = 2  # marker plus space before or after
_LEFT_COMMENT = "/*"
_RIGHT_COMMENT = "*/"
_TERMINATORS = frozenset(" \t\r\n.,|:)(")

_State = Callable[[], "_State | None"]


def _is_space(ch: str) -> bool:
    return ch != _EOF and ch in _SPACE_CHARS


def _is_alphanumeric(ch: str) -> bool:
    # Go: '_' || unicode.IsLetter || unicode.IsDigit, with Go 1.19's Unicode 13
    # tables beyond ASCII (Python's str methods follow the interpreter's Unicode).
    if ch < "\x80":
        return ch == "_" or ch.isalnum()
    return is_letter_or_digit(ord(ch))


def _has_left_trim_marker(s: str) -> bool:
    return len(s) >= 2 and s[0] == "-" and s[1] in _SPACE_CHARS


def _has_right_trim_marker(s: str) -> bool:
    return len(s) >= 2 and s[0] in _SPACE_CHARS and s[1] == "-"


def _format_rune(ch: str) -> str:
    """Go's ``%#U``: ``U+0041 'A'``, or just ``U+0007`` when not printable."""
    r = ord(ch)
    if 0xDC80 <= r <= 0xDCFF:  # an invalid UTF-8 byte decodes as U+FFFD in Go
        ch, r = "\ufffd", 0xFFFD
    if is_print(r):
        return f"U+{r:04X} '{ch}'"
    return f"U+{r:04X}"


class _Lexer:
    """Scanner state; the methods named ``lex_*`` are Go's state functions."""

    def __init__(self, text: str, left_delim: str, right_delim: str, emit_comment: bool) -> None:
        self.input = text
        self.left_delim = left_delim
        self.right_delim = right_delim
        self.emit_comment = emit_comment
        self.pos = 0  # current position in the input
        self.start = 0  # start position of this item
        self.at_eof = False  # we have hit the end of input and returned _EOF
        self.paren_depth = 0  # nesting depth of ( ) exprs
        self.line = 1  # 1 + number of newlines seen
        self.start_line = 1  # start line of this item
        self.items: list[Token] = []

    # -- scanning primitives ---------------------------------------------------------------------

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.at_eof = True
            return _EOF
        ch = self.input[self.pos]
        self.pos += 1
        if ch == "\n":
            self.line += 1
        return ch

    def peek(self) -> str:
        ch = self.next()
        self.backup()
        return ch

    def backup(self) -> None:
        # Go never steps back once it has returned EOF: at_eof is sticky.
        if not self.at_eof and self.pos > 0:
            self.pos -= 1
            if self.input[self.pos] == "\n":
                self.line -= 1

    def emit(self, typ: TokenType) -> None:
        self.items.append(Token(typ, self.input[self.start : self.pos], self.start, self.start_line))
        self.start = self.pos
        self.start_line = self.line

    def ignore(self) -> None:
        self.line += self.input.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def accept(self, valid: str) -> bool:
        ch = self.next()
        if ch != _EOF and ch in valid:
            return True
        self.backup()
        return False

    def accept_run(self, valid: str) -> None:
        while True:
            ch = self.next()
            if ch == _EOF or ch not in valid:
                break
        self.backup()

    def errorf(self, message: str) -> None:
        self.items.append(Token(TokenType.ERROR, message, self.start, self.start_line))

    def at_right_delim(self) -> tuple[bool, bool]:
        """(at a right delimiter, it has a trim marker)."""
        rest = self.input[self.pos : self.pos + len(self.right_delim) + _TRIM_MARKER_LEN]
        if _has_right_trim_marker(rest) and rest[_TRIM_MARKER_LEN:].startswith(self.right_delim):
            return True, True
        if rest.startswith(self.right_delim):
            return True, False
        return False, False

    def at_terminator(self) -> bool:
        """Whether the input is at a character that may follow an identifier.

        This splits ``.X.Y`` in two and rejects ``$x+2`` (no arithmetic).
        """
        ch = self.peek()
        if ch == _EOF or ch in _TERMINATORS:
            return True
        return self.input.startswith(self.right_delim, self.pos)

    # -- state functions -------------------------------------------------------------------------

    def lex_text(self) -> _State | None:
        x = self.input.find(self.left_delim, self.pos)
        if x >= 0:
            trim_length = 0
            after = x + len(self.left_delim)
            if _has_left_trim_marker(self.input[after : after + 2]):
                text = self.input[self.start : x]
                trim_length = len(text) - len(text.rstrip(_SPACE_CHARS))
            self.pos = x - trim_length
            if self.pos > self.start:
                self.line += self.input.count("\n", self.start, self.pos)
                self.emit(TokenType.TEXT)
            self.pos += trim_length
            self.ignore()
            return self.lex_left_delim
        self.pos = len(self.input)
        if self.pos > self.start:  # correctly reached EOF
            self.line += self.input.count("\n", self.start, self.pos)
            self.emit(TokenType.TEXT)
        self.emit(TokenType.EOF)
        return None

    def lex_left_delim(self) -> _State | None:
        self.pos += len(self.left_delim)
        trim_space = _has_left_trim_marker(self.input[self.pos : self.pos + 2])
        after_marker = _TRIM_MARKER_LEN if trim_space else 0
        if self.input.startswith(_LEFT_COMMENT, self.pos + after_marker):
            self.pos += after_marker
            self.ignore()
            return self.lex_comment
        self.emit(TokenType.LEFT_DELIM)
        self.pos += after_marker
        self.ignore()
        self.paren_depth = 0
        return self.lex_inside_action

    def lex_comment(self) -> _State | None:
        self.pos += len(_LEFT_COMMENT)
        i = self.input.find(_RIGHT_COMMENT, self.pos)
        if i < 0:
            self.errorf("unclosed comment")
            return None
        self.pos = i + len(_RIGHT_COMMENT)
        delim, trim_space = self.at_right_delim()
        if not delim:
            self.errorf("comment ends before closing delimiter")
            return None
        if self.emit_comment:
            self.emit(TokenType.COMMENT)
        if trim_space:
            self.pos += _TRIM_MARKER_LEN
        self.pos += len(self.right_delim)
        if trim_space:
            self.pos = self._skip_left_space(self.pos)
        self.ignore()
        return self.lex_text

    def _skip_left_space(self, pos: int) -> int:
        rest = self.input[pos:]
        return pos + len(rest) - len(rest.lstrip(_SPACE_CHARS))

    def lex_right_delim(self) -> _State | None:
        trim_space = _has_right_trim_marker(self.input[self.pos : self.pos + 2])
        if trim_space:
            self.pos += _TRIM_MARKER_LEN
            self.ignore()
        self.pos += len(self.right_delim)
        self.emit(TokenType.RIGHT_DELIM)
        if trim_space:
            self.pos = self._skip_left_space(self.pos)
            self.ignore()
        return self.lex_text

    def lex_inside_action(self) -> _State | None:
        # Either number, quoted string, or identifier. Spaces separate arguments;
        # runs of spaces turn into SPACE. Pipe symbols separate and are emitted.
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self.lex_right_delim
            self.errorf("unclosed left paren")
            return None
        ch = self.next()
        if ch == _EOF:
            self.errorf("unclosed action")
            return None
        if _is_space(ch):
            self.backup()  # put space back in case we have " -}}"
            return self.lex_space
        if ch == "=":
            self.emit(TokenType.ASSIGN)
        elif ch == ":":
            if self.next() != "=":
                self.errorf("expected :=")
                return None
            self.emit(TokenType.DECLARE)
        elif ch == "|":
            self.emit(TokenType.PIPE)
        elif ch == '"':
            return self.lex_quote
        elif ch == "`":
            return self.lex_raw_quote
        elif ch == "$":
            return self.lex_variable
        elif ch == "'":
            return self.lex_char
        elif ch == "." and self.pos < len(self.input) and not "0" <= self.input[self.pos] <= "9":
            # Look ahead for ".field"; a digit after '.' starts a number instead.
            return self.lex_field
        elif ch in ".+-" or "0" <= ch <= "9":
            self.backup()
            return self.lex_number
        elif _is_alphanumeric(ch):
            self.backup()
            return self.lex_identifier
        elif ch == "(":
            self.emit(TokenType.LEFT_PAREN)
            self.paren_depth += 1
        elif ch == ")":
            self.emit(TokenType.RIGHT_PAREN)
            self.paren_depth -= 1
            if self.paren_depth < 0:
                self.errorf(f"unexpected right paren {_format_rune(ch)}")
                return None
        elif ch <= "\x7f" and is_print(ord(ch)):
            self.emit(TokenType.CHAR)
        else:
            self.errorf(f"unrecognized character in action: {_format_rune(ch)}")
            return None
        return self.lex_inside_action

    def lex_space(self) -> _State | None:
        """A run of spaces; the first is known to be present.

        Take care with a trim-marked right delimiter, which starts with a space.
        """
        while _is_space(self.peek()):
            self.next()
        # We know there is a space, so check for the '-' that might follow.
        rest = self.input[self.pos - 1 : self.pos - 1 + _TRIM_MARKER_LEN + len(self.right_delim)]
        if _has_right_trim_marker(rest) and rest[_TRIM_MARKER_LEN:].startswith(self.right_delim):
            # Leave the last space to the trim marker. (Go also checks for a single
            # space here, but lex_inside_action has already taken " -}}" as a delimiter.)
            self.backup()
        self.emit(TokenType.SPACE)
        return self.lex_inside_action

    def lex_identifier(self) -> _State | None:
        while _is_alphanumeric(self.next()):
            pass
        self.backup()
        word = self.input[self.start : self.pos]
        if not self.at_terminator():
            self.errorf(f"bad character {_format_rune(self.input[self.pos])}")
            return None
        if word in KEYWORDS:
            # Go 1.19 makes break/continue keywords unless a function of that name
            # exists, and text/template checks for one before any are installed.
            self.emit(KEYWORDS[word])
        elif word == "true" or word == "false":
            self.emit(TokenType.BOOL)
        else:
            self.emit(TokenType.IDENTIFIER)
        return self.lex_inside_action

    def lex_field(self) -> _State | None:
        return self._lex_field_or_variable(TokenType.FIELD)

    def lex_variable(self) -> _State | None:
        return self._lex_field_or_variable(TokenType.VARIABLE)

    def _lex_field_or_variable(self, typ: TokenType) -> _State | None:
        """A field or variable: ``[.$]Alphanumeric``; the ``.`` or ``$`` has been scanned."""
        if self.at_terminator():  # nothing interesting follows -> "." or "$"
            self.emit(typ if typ is TokenType.VARIABLE else TokenType.DOT)
            return self.lex_inside_action
        while _is_alphanumeric(self.next()):
            pass
        self.backup()
        if not self.at_terminator():
            self.errorf(f"bad character {_format_rune(self.input[self.pos])}")
            return None
        self.emit(typ)
        return self.lex_inside_action

    def lex_char(self) -> _State | None:
        """A character constant; the quote has been scanned. The parser checks the syntax."""
        while True:
            ch = self.next()
            if ch == "\\":
                ch = self.next()
                if ch != _EOF and ch != "\n":
                    continue
            if ch == _EOF or ch == "\n":
                self.errorf("unterminated character constant")
                return None
            if ch == "'":
                break
        self.emit(TokenType.CHAR_CONSTANT)
        return self.lex_inside_action

    def lex_number(self) -> _State | None:
        """A number. Like Go's, this accepts some invalid ones ("089", "0x0.2"); the
        parser's strconv rejects those."""
        if not self._scan_number():
            self.errorf(f"bad number syntax: {quote(self.input[self.start : self.pos])}")
            return None
        sign = self.peek()
        if sign in ("+", "-"):
            # Complex: 1+2i. No spaces, must end in 'i'.
            if not self._scan_number() or self.input[self.pos - 1] != "i":
                self.errorf(f"bad number syntax: {quote(self.input[self.start : self.pos])}")
                return None
            self.emit(TokenType.COMPLEX)
        else:
            self.emit(TokenType.NUMBER)
        return self.lex_inside_action

    def _scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            # Note: a leading 0 does not mean octal in floats.
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 10 + 1 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 16 + 6 + 1 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")  # imaginary
        if _is_alphanumeric(self.peek()):  # the next thing mustn't be alphanumeric
            self.next()
            return False
        return True

    def lex_quote(self) -> _State | None:
        while True:
            ch = self.next()
            if ch == "\\":
                ch = self.next()
                if ch != _EOF and ch != "\n":
                    continue
            if ch == _EOF or ch == "\n":
                self.errorf("unterminated quoted string")
                return None
            if ch == '"':
                break
        self.emit(TokenType.STRING)
        return self.lex_inside_action

    def lex_raw_quote(self) -> _State | None:
        end = self.input.find("`", self.pos)
        if end < 0:
            self.errorf("unterminated raw quoted string")
            return None
        self.line += self.input.count("\n", self.pos, end + 1)
        self.pos = end + 1
        self.emit(TokenType.RAW_STRING)
        return self.lex_inside_action


def lex(
    text: str, left_delim: str = "", right_delim: str = "", *, emit_comment: bool = False
) -> Iterator[Token]:
    """Scan ``text`` into tokens, ending with an ``EOF`` or ``ERROR`` token.

    Empty delimiters mean the defaults ``{{`` and ``}}``. Comments are skipped
    unless ``emit_comment`` (Go's ``ParseComments`` mode).
    """
    lexer = _Lexer(text, left_delim or "{{", right_delim or "}}", emit_comment)
    state: _State | None = lexer.lex_text
    while state is not None:
        state = state()
        if lexer.items:
            yield from lexer.items
            lexer.items.clear()
