"""Go 1.19 ``fmt/format.go``: the formatter that pads and lays out one operand.

``Formatter`` holds the flags, width and precision of one verb and writes into a
list of string pieces.  Go strings are bytes; a template string is a ``str`` decoded
with ``surrogateescape``, so ``len`` counts one per rune and one per invalid byte,
exactly as Go's ``utf8.RuneCountInString`` does for widths and precisions.
"""

from __future__ import annotations

from typing import Final

from muster.golang.strconv import (
    MAX_RUNE,
    RUNE_ERROR,
    can_backquote,
    format_float,
    is_print,
    quote,
    quote_rune,
    quote_rune_to_ascii,
    quote_to_ascii,
)

__all__ = ["Formatter", "LDIGITS", "UDIGITS"]

LDIGITS: Final = "0123456789abcdefx"
UDIGITS: Final = "0123456789ABCDEFX"


class Formatter:
    """Go's ``fmt`` struct: flags for the current verb plus the output buffer."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.clearflags()

    def clearflags(self) -> None:
        self.wid_present = self.prec_present = False
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.plus_v = self.sharp_v = False
        self.wid = self.prec = 0

    def text(self) -> str:
        return "".join(self.buf)

    def write_padding(self, n: int) -> None:
        if n > 0:
            self.buf.append(("0" if self.zero else " ") * n)

    def pad(self, s: str) -> None:
        """Go's pad and padString: ``s`` padded to the width, counting runes."""
        if not self.wid_present or self.wid == 0:
            self.buf.append(s)
            return
        width = self.wid - len(s)
        if not self.minus:
            self.write_padding(width)
            self.buf.append(s)
        else:
            self.buf.append(s)
            self.write_padding(width)

    def pad_nozero(self, s: str) -> None:
        old, self.zero = self.zero, False
        self.pad(s)
        self.zero = old

    def fmt_boolean(self, v: bool) -> None:
        self.pad("true" if v else "false")

    def fmt_unicode(self, u: int) -> None:
        prec = self.prec if self.prec_present and self.prec > 4 else 4
        tail = ""
        if self.sharp and u <= MAX_RUNE and is_print(u):
            tail = " '" + chr(u) + "'"
        self.pad_nozero("U+" + f"{u:X}".rjust(prec, "0") + tail)

    def fmt_integer(self, u: int, base: int, signed: bool, verb: str, digits: str) -> None:
        """Go's fmt.fmtInteger; ``u`` is the value as a uint64."""
        negative = signed and u >= 1 << 63
        if negative:
            u = (1 << 64) - u
        prec = 0
        if self.prec_present:
            prec = self.prec
            if prec == 0 and u == 0:
                # Precision 0 and value 0 print nothing but padding.
                old, self.zero = self.zero, False
                self.write_padding(self.wid)
                self.zero = old
                return
        elif self.zero and self.wid_present:
            prec = self.wid
            if negative or self.plus or self.space:
                prec -= 1  # leave room for the sign
        if base == 10:
            s = str(u)
        elif base == 16:
            s = f"{u:x}" if digits is LDIGITS else f"{u:X}"
        elif base == 8:
            s = f"{u:o}"
        else:
            s = f"{u:b}"
        if len(s) < prec:
            s = "0" * (prec - len(s)) + s
        if self.sharp:
            if base == 2:
                s = "0b" + s
            elif base == 8:
                if s[0] != "0":
                    s = "0" + s
            elif base == 16:
                s = "0" + digits[16] + s
        if verb == "O":
            s = "0o" + s
        if negative:
            s = "-" + s
        elif self.plus:
            s = "+" + s
        elif self.space:
            s = " " + s
        # Zero padding was done above as precision, or is off because of a precision.
        self.pad_nozero(s)

    def truncate(self, s: str) -> str:
        if self.prec_present:
            return s[: self.prec]
        return s

    def fmt_s(self, s: str) -> None:
        self.pad(self.truncate(s))

    def fmt_sbx(self, b: bytes, digits: str) -> None:
        """Go's fmtSbx: hex of bytes, ``% x`` separated, ``#`` for 0x."""
        length = len(b)
        if self.prec_present and self.prec < length:
            length = self.prec
        width = 2 * length
        if width > 0:
            if self.space:
                if self.sharp:
                    width *= 2
                width += length - 1
            elif self.sharp:
                width += 2
        else:
            if self.wid_present:
                self.write_padding(self.wid)
            return
        if self.wid_present and self.wid > width and not self.minus:
            self.write_padding(self.wid - width)
        prefix = "0" + digits[16]
        out = [prefix] if self.sharp else []
        for i in range(length):
            if self.space and i > 0:
                out.append(" ")
                if self.sharp:
                    out.append(prefix)
            c = b[i]
            out.append(digits[c >> 4] + digits[c & 0xF])
        self.buf.append("".join(out))
        if self.wid_present and self.wid > width and self.minus:
            self.write_padding(self.wid - width)

    def fmt_q(self, s: str) -> None:
        s = self.truncate(s)
        if self.sharp and can_backquote(s):
            self.pad("`" + s + "`")
        elif self.plus:
            self.pad(quote_to_ascii(s))
        else:
            self.pad(quote(s))

    def fmt_c(self, c: int) -> None:
        r = RUNE_ERROR if c > MAX_RUNE or 0xD800 <= c <= 0xDFFF else c
        self.pad(chr(r))

    def fmt_qc(self, c: int) -> None:
        r = RUNE_ERROR if c > MAX_RUNE else c
        self.pad(quote_rune_to_ascii(r) if self.plus else quote_rune(r))

    def fmt_float_raw(self, v: float, size: int, verb: str, prec: int) -> None:
        """Go's fmt.fmtFloat: sign, ``#``, zero padding around strconv's digits."""
        if self.prec_present:
            prec = self.prec
        num = format_float(v, verb, prec, size)
        if num[0] not in "+-":
            num = "+" + num
        if self.space and num[0] == "+" and not self.plus:
            num = " " + num[1:]
        if num[1] in "IN":
            # Infinities and NaN are not padded with zeros; NaN loses its sign.
            if num[1] == "N" and not self.space and not self.plus:
                num = num[1:]
            self.pad_nozero(num)
            return
        if self.sharp and verb != "b":
            num = self._sharp_float(num, verb, prec)
        if self.plus or num[0] != "+":
            # Zero padding goes between the sign and the digits.
            if self.zero and self.wid_present and self.wid > len(num):
                self.buf.append(num[0])
                self.write_padding(self.wid - len(num))
                self.buf.append(num[1:])
                return
            self.pad(num)
            return
        self.pad(num[1:])

    @staticmethod
    def _sharp_float(num: str, verb: str, prec: int) -> str:
        # '#' forces a decimal point and keeps trailing zeros (%#g keeps prec digits).
        digits = 0
        if verb in ("v", "g", "G", "x"):  # not 'X': Go 1.19 quirk kept as is
            digits = 6 if prec == -1 else prec
        tail = ""
        has_point = saw_nonzero = False
        for i in range(1, len(num)):
            c = num[i]
            if c == ".":
                has_point = True
            elif c in "pP" or (c in "eE" and verb not in ("x", "X")):
                tail = num[i:]
                num = num[:i]
                break
            else:
                if c != "0":
                    saw_nonzero = True
                if saw_nonzero:
                    digits -= 1
        if not has_point:
            if len(num) == 2 and num[1] == "0":
                digits -= 1  # a leading 0 counts once
            num += "."
        if digits > 0:
            num += "0" * digits
        return num + tail
