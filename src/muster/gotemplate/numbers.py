"""Number constants of templates: Go 1.19's ``parse.(*Tree).newNumber``.

A Go template number is untyped: one literal may be valid as an int, a uint and
a float at once (``1`` is all three, ``1.5`` only a float, ``-1`` no uint), and
the executor picks the kind the context needs. Character constants (``'a'``) are
numbers too. Which kinds a literal has follows Go exactly, including its quirks
(``09`` is "integer overflow", ``1e3`` is also an int).
"""

from __future__ import annotations

from muster.golang.literals import parse_float, unquote_char
from muster.golang.strconv import NumError, parse_int, parse_uint, quote
from muster.gotemplate import nodes
from muster.gotemplate.lexer import TokenType

__all__ = ["new_number"]


def _fits_int64(f: float) -> bool:
    # Go's float64(int64(f)) == f.
    return f.is_integer() and -(2**63) <= f < 2**63


def _fits_uint64(f: float) -> bool:
    # Go's float64(uint64(f)) == f; -0.0 passes, as in Go.
    return f.is_integer() and 0 <= f < 2**64


def _parse_float_part(s: str) -> float:
    """fmt's convertFloat, which is ParseFloat here: fmt's own decimal-mantissa ``p``
    exponent cannot occur, as the lexer lets ``p`` follow only a hex mantissa."""
    try:
        return parse_float(s)
    except NumError as exc:
        raise NumError(f"strconv.ParseFloat: parsing {quote(s)}: {exc}") from None


def _float_token(text: str, i: int) -> int:
    """fmt's ``floatToken`` from ``text[i]``: the end of the token it accepts.

    fmt first tries "nan" and "inf"; a lexed number never starts with "n" nor holds
    "in", but fmt's partial match of "inf" consumes an ``i`` right after the sign.
    """

    def accept(chars: str) -> bool:
        nonlocal i
        if i < len(text) and text[i] in chars:
            i += 1
            return True
        return False

    accept("+-")
    accept("i")
    digits, exp = "0123456789_", "eEpP"
    if accept("0") and accept("xX"):
        digits, exp = "0123456789aAbBcCdDeEfF_", "pP"
    while accept(digits):
        pass
    if accept("."):
        while accept(digits):
            pass
    if accept(exp):
        accept("+-")
        while accept("0123456789_"):
            pass
    return i


def _scan_complex(text: str) -> complex:
    """``fmt.Sscan(text, &complex128)`` for the ``1+2i`` literals the lexer produces."""
    real_end = _float_token(text, 0)
    if not text.startswith(("+", "-"), real_end):
        raise NumError("syntax error scanning complex number")
    imag_end = _float_token(text, real_end + 1)
    if not text.startswith("i", imag_end):
        raise NumError("syntax error scanning complex number")
    real = _parse_float_part(text[:real_end])
    return complex(real, _parse_float_part(text[real_end:imag_end]))


def _simplified(pos: int, text: str, value: complex) -> nodes.NumberNode:
    """A complex constant, also a float/int/uint when its imaginary part is zero."""
    if value.imag != 0:
        return nodes.NumberNode(pos, text, is_complex=True, complex_value=value)
    f = value.real
    return nodes.NumberNode(
        pos,
        text,
        is_int=_fits_int64(f),
        is_uint=_fits_uint64(f),
        is_float=True,
        is_complex=True,
        int_value=int(f) if _fits_int64(f) else 0,
        uint_value=int(f) if _fits_uint64(f) else 0,
        float_value=f,
        complex_value=value,
    )


def _char_constant(pos: int, text: str) -> nodes.NumberNode:
    rune, tail = unquote_char(text[1:], text[0])
    if tail != "'":
        raise NumError(f"malformed character constant: {text}")
    # A character is an int, a uint and (odd, but those are the rules) a float.
    return nodes.NumberNode(
        pos,
        text,
        is_int=True,
        is_uint=True,
        is_float=True,
        int_value=rune,
        uint_value=rune,
        float_value=float(rune),
    )


def new_number(pos: int, text: str, kind: TokenType) -> nodes.NumberNode:
    """The NumberNode for the literal ``text`` of lexer token kind ``kind``.

    Raises :class:`NumError` with Go's message when the literal is invalid.
    """
    if kind is TokenType.CHAR_CONSTANT:
        return _char_constant(pos, text)
    if kind is TokenType.COMPLEX:
        return _simplified(pos, text, _scan_complex(text))
    # Imaginary constants can only be complex unless they are zero.
    if text.endswith("i"):
        try:
            return _simplified(pos, text, complex(0, parse_float(text[:-1])))
        except NumError:
            pass
    is_int = is_uint = is_float = False
    int_value = uint_value = 0
    float_value = 0.0
    # Integer parsing comes first so that 0x123 etc. are ints.
    try:
        uint_value = parse_uint(text)  # fails for -0; fixed below
        is_uint = True
    except NumError:
        pass
    try:
        int_value = parse_int(text)
        is_int = True
        if int_value == 0:
            is_uint = True  # in case of -0
    except NumError:
        pass
    if is_int:
        is_float, float_value = True, float(int_value)
    elif is_uint:
        is_float, float_value = True, float(uint_value)
    else:
        try:
            f = parse_float(text)
        except NumError:
            raise NumError(f"illegal number syntax: {quote(text)}") from None
        # Parsed as a float but looks like an integer: too large for an int. Reject it.
        if not any(c in text for c in ".eEpP"):
            raise NumError(f"integer overflow: {quote(text)}")
        is_float, float_value = True, f
        # A float that is integral is also an int (and maybe a uint).
        if _fits_int64(f):
            is_int, int_value = True, int(f)
        if _fits_uint64(f):
            is_uint, uint_value = True, int(f)
    return nodes.NumberNode(
        pos,
        text,
        is_int=is_int,
        is_uint=is_uint,
        is_float=is_float,
        int_value=int_value,
        uint_value=uint_value,
        float_value=float_value,
    )
