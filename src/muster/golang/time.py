"""Go's ``time.Time`` as a template value: what confd's ``datetime`` returns.

``GoTime`` is an instant (Unix seconds + nanoseconds) in a location (``UTC`` or
``Local``) seen through that location's zone at the instant (name and offset), with
time.Time's methods: ``Format`` (Go's whole layout language, ported from
``time/format.go``), the calendar fields, ``Unix*``, ``UTC``/``Local``/``In``/
``Location``, ``Add``/``Sub``/``AddDate``, ``Before``/``After``/``Equal``/``IsZero``,
``Truncate``/``Round`` and ``String``; ``Date``/``Clock``/``Zone``/``ISOWeek`` have
several results, so templates cannot call them (as in Go). Like Go, a time read from
the clock carries a monotonic reading that ``String`` prints as ``m=+S.NNNNNNNNN``,
that comparisons and ``Sub`` prefer, ``Add`` keeps and the other methods drop.
``time.Duration`` (``Duration``) prints as Go's ``1h2m3.5s``.
"""

from __future__ import annotations

import os
import time as _time
from typing import ClassVar, Final

from muster.golang.values import GoInt, GoStruct, Int64, go_method

__all__ = ["Duration", "GoTime", "Location", "Month", "Weekday", "format_time", "local_location_name"]

_LONG_DAYS: Final = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_LONG_MONTHS: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Go's runtime measures monotonic time from process start.
_MONO_START: Final = _time.monotonic_ns()


class Month(GoInt):
    """``time.Month``: an int that prints as its English name."""

    go_type = "time.Month"

    @go_method()
    def String(self) -> str:  # noqa: N802 - Go method name
        if 1 <= self <= 12:
            return _LONG_MONTHS[self - 1]
        return f"%!Month({int(self)})"


class Weekday(GoInt):
    """``time.Weekday``: an int (Sunday = 0) that prints as its English name."""

    go_type = "time.Weekday"

    @go_method()
    def String(self) -> str:  # noqa: N802 - Go method name
        if 0 <= self <= 6:
            return _LONG_DAYS[self]
        return f"%!Weekday({int(self)})"


_MonthT = Month
_WeekdayT = Weekday

_NS: Final = 1_000_000_000
_RFC3339_NANO: Final = "2006-01-02T15:04:05.999999999Z07:00"
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
# Unix seconds of Go's zero Time, January 1, year 1, 00:00:00 UTC.
_ZERO_UNIX: Final = -62135596800


class Duration(GoInt):
    """``time.Duration``: nanoseconds as an int64 that prints as ``1h2m3.5s``."""

    go_type = "time.Duration"

    @go_method()
    def String(self) -> str:  # noqa: N802 - Go method name
        u = abs(int(self))
        sign = "-" if self < 0 else ""
        if u == 0:
            return "0s"
        if u < _NS:
            # Below a second: the largest unit that keeps an integer part (1.2ms).
            unit, prec = ("ns", 0) if u < 1000 else ("\u00b5s", 3) if u < 1_000_000 else ("ms", 6)
            return sign + str(u // 10**prec) + _frac(u % 10**prec, prec) + unit
        secs, frac = divmod(u, _NS)
        out = str(secs % 60) + _frac(frac, 9) + "s"
        mins = secs // 60
        if mins:
            out = str(mins % 60) + "m" + out
            if mins // 60:
                out = str(mins // 60) + "h" + out
        return sign + out

    @go_method()
    def Nanoseconds(self) -> Int64:  # noqa: N802
        return Int64(self)

    @go_method()
    def Microseconds(self) -> Int64:  # noqa: N802
        return Int64(_quo(self, 1000))

    @go_method()
    def Milliseconds(self) -> Int64:  # noqa: N802
        return Int64(_quo(self, 1_000_000))

    @go_method()
    def Seconds(self) -> float:  # noqa: N802
        return _units(self, _NS)

    @go_method()
    def Minutes(self) -> float:  # noqa: N802
        return _units(self, 60 * _NS)

    @go_method()
    def Hours(self) -> float:  # noqa: N802
        return _units(self, 3600 * _NS)

    @go_method("time.Duration")
    def Truncate(self, m: int) -> Duration:  # noqa: N802
        """Rounded toward zero to a multiple of ``m`` (unchanged for ``m <= 0``)."""
        if m <= 0:
            return self
        return Duration(self - _rem(self, m))

    @go_method("time.Duration")
    def Round(self, m: int) -> Duration:  # noqa: N802
        """Rounded to the nearest multiple of ``m``, halves away from zero, saturating."""
        if m <= 0:
            return self
        r = abs(_rem(self, m))
        if r + r < m:
            return Duration(self - r if self >= 0 else self + r)
        if self >= 0:
            return Duration(min(self + m - r, _INT64_MAX))
        return Duration(max(self - m + r, _INT64_MIN))

    @go_method()
    def Abs(self) -> Duration:  # noqa: N802
        """``|d|``; the most negative Duration gives the most positive one."""
        return Duration(min(abs(int(self)), _INT64_MAX))


def _quo(a: int, b: int) -> int:
    # Go's integer division truncates toward zero.
    q = abs(a) // b
    return q if a >= 0 else -q


def _rem(a: int, b: int) -> int:
    return a - _quo(a, b) * b


def _units(d: int, unit: int) -> float:
    # Go: float64(d / unit) + float64(d % unit) / unit, in that order of rounding.
    return float(_quo(d, unit)) + float(_rem(d, unit)) / unit


def _frac(v: int, prec: int) -> str:
    # fmtFrac: ".ddd" without trailing zeros, nothing for a zero fraction.
    digits = f"{v:0{prec}d}".rstrip("0") if prec else ""
    return "." + digits if digits else ""


class Location(GoStruct):
    """A ``*time.Location``: only ``UTC`` and ``Local`` reach templates."""

    go_type: ClassVar[str] = "time.Location"
    go_pointer: ClassVar[bool] = True
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    @go_method()
    def String(self) -> str:  # noqa: N802 - Go method name
        return self._name


_UTC_LOCATION: Final = Location("UTC")
# Where Go's LoadLocation looks for zone files on Unix (platformZoneSources).
_ZONE_DIRS: Final = ("/usr/share/zoneinfo/", "/usr/share/lib/zoneinfo/", "/usr/lib/locale/TZ/")


def local_location_name() -> str:
    """The name Go gives ``time.Local`` (``initLocal``): ``Local`` for /etc/localtime,
    the ``TZ`` variable's zone name when it names a zone file, else ``UTC``."""
    tz = os.environ.get("TZ")
    if tz is None:
        return "Local" if os.path.exists("/etc/localtime") else "UTC"
    tz = tz.removeprefix(":")
    if tz.startswith("/"):
        if os.path.isfile(tz):
            return "Local" if tz == "/etc/localtime" else tz
    elif tz and tz != "UTC" and any(os.path.isfile(d + tz) for d in _ZONE_DIRS):
        return tz
    return "UTC"


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (the inverse of _civil)."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _zone_of(loc: str, sec: int) -> tuple[str, int]:
    return ("UTC", 0) if loc == "UTC" else _local_zone(sec)


def _wall_to_unix(loc: str, wall: int) -> int:
    """Unix seconds of a wall-clock reading in ``loc``, as time.Date resolves it."""
    offset = _zone_of(loc, wall)[1]
    if offset:
        # Look the offset up again at the guessed instant when the guess crossed a
        # zone transition (Go checks the zone period's bounds).
        again = _zone_of(loc, wall - offset)[1]
        if again != offset:
            offset = again
    return wall - offset


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day count since 1970-01-01, proleptic Gregorian."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def _is_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


_CUM_DAYS: Final = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


class GoTime(GoStruct):
    """A ``time.Time``; immutable."""

    go_type: ClassVar[str] = "time.Time"
    go_fields: ClassVar[tuple[str, ...]] = ()
    __slots__ = ("_sec", "_nsec", "_zone", "_offset", "_mono", "_loc")

    def __init__(
        self,
        sec: int,
        nsec: int = 0,
        zone: str = "UTC",
        offset: int = 0,
        mono: int | None = None,
        loc: str | None = None,
    ) -> None:
        sec += nsec // _NS
        self._sec = sec
        self._nsec = nsec % _NS
        self._zone = zone
        self._offset = offset
        self._mono = mono
        # The Location: "UTC" for a UTC time unless said otherwise, else "Local".
        self._loc = loc or ("UTC" if zone == "UTC" and offset == 0 else "Local")

    @classmethod
    def now(cls) -> GoTime:
        """``time.Now()`` in the local zone, with a monotonic reading."""
        ns = _time.time_ns()
        sec, nsec = divmod(ns, _NS)
        zone, offset = _local_zone(sec)
        return cls(sec, nsec, zone, offset, _time.monotonic_ns() - _MONO_START, "Local")

    @classmethod
    def _at(cls, ns: int, loc: str, mono: int | None = None) -> GoTime:
        # The instant ``ns`` (Unix nanoseconds) in ``loc``, its zone looked up there.
        sec, nsec = divmod(ns, _NS)
        zone, offset = _zone_of(loc, sec)
        return cls(sec, nsec, zone, offset, mono, loc)

    def _ns(self) -> int:
        return self._sec * _NS + self._nsec

    def __repr__(self) -> str:
        return f"GoTime({self._sec}, {self._nsec}, {self._zone!r}, {self._offset})"

    def __eq__(self, other: object) -> bool:
        # Go's == on Time compares wall, ext and loc; equal instants in equal zones.
        return isinstance(other, GoTime) and (self._sec, self._nsec, self._zone, self._offset) == (
            other._sec,
            other._nsec,
            other._zone,
            other._offset,
        )

    def __hash__(self) -> int:
        return hash((self._sec, self._nsec))

    # -- calendar fields in the time's zone ---------------------------------

    def _local_days_secs(self) -> tuple[int, int]:
        return divmod(self._sec + self._offset, 86400)

    def _date(self) -> tuple[int, int, int]:
        return _civil(self._local_days_secs()[0])

    def _yday(self) -> int:
        y, m, d = self._date()
        return _CUM_DAYS[m - 1] + d + (1 if m > 2 and _is_leap(y) else 0)

    @go_method()
    def Year(self) -> int:  # noqa: N802 - Go method names throughout
        return self._date()[0]

    @go_method()
    def Month(self) -> _MonthT:  # noqa: N802
        return _MonthT(self._date()[1])

    @go_method()
    def Day(self) -> int:  # noqa: N802
        return self._date()[2]

    @go_method()
    def Hour(self) -> int:  # noqa: N802
        return self._local_days_secs()[1] // 3600

    @go_method()
    def Minute(self) -> int:  # noqa: N802
        return self._local_days_secs()[1] % 3600 // 60

    @go_method()
    def Second(self) -> int:  # noqa: N802
        return self._local_days_secs()[1] % 60

    @go_method()
    def Nanosecond(self) -> int:  # noqa: N802
        return self._nsec

    @go_method()
    def Weekday(self) -> _WeekdayT:  # noqa: N802
        return _WeekdayT((self._local_days_secs()[0] + 4) % 7)  # 1970-01-01 was a Thursday

    @go_method()
    def YearDay(self) -> int:  # noqa: N802
        return self._yday()

    @go_method()
    def Unix(self) -> Int64:  # noqa: N802
        return Int64(self._sec)

    @go_method()
    def UnixMilli(self) -> Int64:  # noqa: N802
        return Int64(self._sec * 1000 + self._nsec // 1_000_000)

    @go_method()
    def UnixMicro(self) -> Int64:  # noqa: N802
        return Int64(self._sec * 1_000_000 + self._nsec // 1000)

    @go_method()
    def UnixNano(self) -> Int64:  # noqa: N802
        return Int64(_wrap64(self._ns()))

    @go_method()
    def UTC(self) -> GoTime:  # noqa: N802
        return GoTime(self._sec, self._nsec, "UTC", 0, None, "UTC")

    @go_method()
    def Local(self) -> GoTime:  # noqa: N802
        return GoTime._at(self._ns(), "Local")

    @go_method("*time.Location")
    def In(self, loc: Location | None) -> GoTime:  # noqa: N802
        if loc is None:
            raise ValueError("time: missing Location in call to Time.In")
        return GoTime._at(self._ns(), loc._name)

    @go_method()
    def Location(self) -> Location:  # noqa: N802
        return _UTC_LOCATION if self._loc == "UTC" else Location(local_location_name())

    @go_method()
    def IsZero(self) -> bool:  # noqa: N802
        return self._sec == _ZERO_UNIX and self._nsec == 0

    def _cmp(self, u: GoTime) -> int:
        # Both with a monotonic reading: that decides, as in Go.
        if self._mono is not None and u._mono is not None:
            a, b = self._mono, u._mono
        else:
            a, b = self._ns(), u._ns()
        return (a > b) - (a < b)

    @go_method("time.Time")
    def Before(self, u: GoTime) -> bool:  # noqa: N802
        return self._cmp(u) < 0

    @go_method("time.Time")
    def After(self, u: GoTime) -> bool:  # noqa: N802
        return self._cmp(u) > 0

    @go_method("time.Time")
    def Equal(self, u: GoTime) -> bool:  # noqa: N802
        return self._cmp(u) == 0

    @go_method("time.Duration")
    def Add(self, d: int) -> GoTime:  # noqa: N802
        mono = self._mono
        if mono is not None:
            mono += d
            if not _INT64_MIN <= mono <= _INT64_MAX:
                mono = None  # the monotonic reading would overflow: Go drops it
        return GoTime._at(self._ns() + d, self._loc, mono)

    @go_method("time.Time")
    def Sub(self, u: GoTime) -> Duration:  # noqa: N802
        if self._mono is not None and u._mono is not None:
            d = self._mono - u._mono
        else:
            d = self._ns() - u._ns()
        return Duration(min(max(d, _INT64_MIN), _INT64_MAX))  # saturates, as Go's does

    @go_method("int", "int", "int")
    def AddDate(self, years: int, months: int, days: int) -> GoTime:  # noqa: N802
        y, m, d = self._date()
        m0 = m - 1 + months
        y += years + m0 // 12
        day = _days_from_civil(y, m0 % 12 + 1, 1) + d - 1 + days
        wall = day * 86400 + self._local_days_secs()[1]
        return GoTime._at(_wall_to_unix(self._loc, wall) * _NS + self._nsec, self._loc)

    def _since_zero(self) -> int:
        return (self._sec - _ZERO_UNIX) * _NS + self._nsec

    @go_method("time.Duration")
    def Truncate(self, d: int) -> GoTime:  # noqa: N802
        """Rounded down to a multiple of ``d`` since the zero time; drops the monotonic reading."""
        if d <= 0:
            return GoTime._at(self._ns(), self._loc)
        return GoTime._at(self._ns() - self._since_zero() % d, self._loc)

    @go_method("time.Duration")
    def Round(self, d: int) -> GoTime:  # noqa: N802
        """Rounded to the nearest multiple of ``d`` since the zero time, halves up."""
        if d <= 0:
            return GoTime._at(self._ns(), self._loc)
        r = self._since_zero() % d
        if r + r < d:
            return GoTime._at(self._ns() - r, self._loc)
        return GoTime._at(self._ns() + d - r, self._loc)

    @go_method(results=3)
    def Date(self) -> tuple[int, _MonthT, int]:  # noqa: N802
        y, m, d = self._date()
        return y, _MonthT(m), d

    @go_method(results=3)
    def Clock(self) -> tuple[int, int, int]:  # noqa: N802
        secs = self._local_days_secs()[1]
        return secs // 3600, secs % 3600 // 60, secs % 60

    @go_method(results=2)
    def Zone(self) -> tuple[str, int]:  # noqa: N802
        return self._zone, self._offset

    @go_method()
    def IsDST(self) -> bool:  # noqa: N802
        if self._loc == "UTC":
            return False
        try:
            return _time.localtime(self._sec).tm_isdst > 0
        except (OverflowError, OSError, ValueError):
            return False

    def _check_year(self, method: str) -> None:
        if not 0 <= self._date()[0] <= 9999:
            raise ValueError(f"Time.{method}: year outside of range [0,9999]")

    @go_method()
    def MarshalText(self) -> bytes:  # noqa: N802
        self._check_year("MarshalText")
        return format_time(self, _RFC3339_NANO).encode("utf-8", "surrogateescape")

    @go_method()
    def MarshalJSON(self) -> bytes:  # noqa: N802
        self._check_year("MarshalJSON")
        return b'"' + format_time(self, _RFC3339_NANO).encode("utf-8", "surrogateescape") + b'"'

    @go_method()
    def MarshalBinary(self) -> bytes:  # noqa: N802
        """Go's version 1 (or 2, for an offset with seconds) binary encoding."""
        version, extra = 1, b""
        if self._loc == "UTC":
            offset_min = -1
        else:
            offset = self._offset
            if offset % 60:
                version, extra = 2, (_rem(offset, 60) & 0xFF).to_bytes(1, "big")
            offset_min = _quo(offset, 60)
            if offset_min < -32768 or offset_min == -1 or offset_min > 32767:
                raise ValueError("Time.MarshalBinary: unexpected zone offset")
        sec = (self._sec - _ZERO_UNIX) & ((1 << 64) - 1)
        return (
            bytes([version])
            + sec.to_bytes(8, "big")
            + self._nsec.to_bytes(4, "big")
            + (offset_min & 0xFFFF).to_bytes(2, "big")
            + extra
        )

    @go_method()
    def GobEncode(self) -> bytes:  # noqa: N802
        return self.MarshalBinary()  # type: ignore[no-any-return]

    @go_method()
    def GoString(self) -> str:  # noqa: N802
        """What ``%#v`` prints: ``time.Date(2023, time.November, 14, 22, 13, 20, 0, time.UTC)``."""
        y, m, d = self._date()
        secs = self._local_days_secs()[1]
        where = "time.UTC" if self._loc == "UTC" else "time.Local"
        return (
            f"time.Date({y}, time.{_LONG_MONTHS[m - 1]}, {d}, {secs // 3600}, {secs % 3600 // 60}, "
            f"{secs % 60}, {self._nsec}, {where})"
        )

    @go_method(results=2)
    def ZoneBounds(self) -> tuple[GoTime, GoTime]:  # noqa: N802
        # Templates cannot call it (two results). UTC has no transitions, so Go
        # returns zero Times; Local's transitions are not tracked here: zero Times too.
        zero = GoTime(_ZERO_UNIX, 0, "UTC", 0, None, "UTC")
        return zero, zero

    @go_method(results=2)
    def ISOWeek(self) -> tuple[int, int]:  # noqa: N802
        # The ISO week belongs to the year of its Thursday.
        days = self._local_days_secs()[0]
        thursday = days - (days + 3) % 7 + 3  # 1970-01-01 was a Thursday
        y = _civil(thursday)[0]
        return y, (thursday - _days_from_civil(y, 1, 1)) // 7 + 1

    @go_method("string")
    def Format(self, layout: str) -> str:  # noqa: N802
        return format_time(self, layout)

    @go_method()
    def String(self) -> str:  # noqa: N802
        s = format_time(self, "2006-01-02 15:04:05.999999999 -0700 MST")
        if self._mono is not None:
            m = self._mono
            sign = "-" if m < 0 else "+"
            secs, frac = divmod(abs(m), 1_000_000_000)
            s += f" m={sign}{secs}.{frac:09d}"
        return s


def _local_zone(sec: int) -> tuple[str, int]:
    try:
        tm = _time.localtime(sec)
    except (OverflowError, OSError, ValueError):
        return "UTC", 0  # beyond the C library's range
    return tm.tm_zone or "", tm.tm_gmtoff or 0


def _wrap64(x: int) -> int:
    # Go's int64 arithmetic wraps around (UnixNano of a far date).
    x &= (1 << 64) - 1
    return x - (1 << 64) if x > _INT64_MAX else x


# -- Format: a port of time/format.go ---------------------------------------------

_STD0X: Final = ("01", "02", "03", "04", "05", "06")


def _starts_lower(s: str) -> bool:
    return bool(s) and "a" <= s[0] <= "z"


def _next_chunk(layout: str) -> tuple[str, str, str]:
    """nextStdChunk: (prefix, std, suffix); std is a token name or "" at the end."""
    n = len(layout)
    i = 0
    while i < n:
        c = layout[i]
        rest = layout[i:]
        if c == "J" and rest.startswith("Jan"):
            if rest.startswith("January"):
                return layout[:i], "January", layout[i + 7 :]
            if not _starts_lower(layout[i + 3 :]):
                return layout[:i], "Jan", layout[i + 3 :]
        elif c == "M" and n >= i + 3:
            if rest.startswith("Mon"):
                if rest.startswith("Monday"):
                    return layout[:i], "Monday", layout[i + 6 :]
                if not _starts_lower(layout[i + 3 :]):
                    return layout[:i], "Mon", layout[i + 3 :]
            if rest.startswith("MST"):
                return layout[:i], "MST", layout[i + 3 :]
        elif c == "0":
            if n >= i + 2 and "1" <= layout[i + 1] <= "6":
                return layout[:i], _STD0X[int(layout[i + 1]) - 1], layout[i + 2 :]
            if rest.startswith("002"):
                return layout[:i], "002", layout[i + 3 :]
        elif c == "1":
            if rest.startswith("15"):
                return layout[:i], "15", layout[i + 2 :]
            return layout[:i], "1", layout[i + 1 :]
        elif c == "2":
            if rest.startswith("2006"):
                return layout[:i], "2006", layout[i + 4 :]
            return layout[:i], "2", layout[i + 1 :]
        elif c == "_":
            if n >= i + 2 and layout[i + 1] == "2":
                if layout[i + 1 : i + 5] == "2006":  # _2006 is a literal _ then 2006
                    return layout[: i + 1], "2006", layout[i + 5 :]
                return layout[:i], "_2", layout[i + 2 :]
            if rest.startswith("__2"):
                return layout[:i], "__2", layout[i + 3 :]
        elif c in "345":
            return layout[:i], c, layout[i + 1 :]
        elif c == "P" and rest.startswith("PM"):
            return layout[:i], "PM", layout[i + 2 :]
        elif c == "p" and rest.startswith("pm"):
            return layout[:i], "pm", layout[i + 2 :]
        elif c in "-Z":
            for tok in ("070000", "07:00:00", "0700", "07:00", "07"):
                if rest.startswith(c + tok):
                    return layout[:i], c + tok, layout[i + 1 + len(tok) :]
        elif c in ".," and i + 1 < n and layout[i + 1] in "09":
            ch = layout[i + 1]
            j = i + 1
            while j < n and layout[j] == ch:
                j += 1
            # The run of digits must end here: only a fractional second is all digits.
            if not (j < n and "0" <= layout[j] <= "9"):
                return layout[:i], c + layout[i + 1 : j], layout[j:]
        i += 1
    return layout, "", ""


def _pad(x: int, width: int) -> str:
    # appendInt: minus sign first, then zero padding of the digits.
    if x < 0:
        return "-" + str(-x).rjust(width, "0")
    return str(x).rjust(width, "0")


def _zone_text(std: str, offset: int) -> str:
    if offset == 0 and std.startswith("Z"):
        return "Z"
    zone = int(offset / 60)  # Go's integer division truncates toward zero
    absoffset = offset
    sign = "+"
    if zone < 0:
        sign = "-"
        zone = -zone
        absoffset = -absoffset
    out = sign + _pad(zone // 60, 2)
    body = std[1:]
    if ":" in body:
        out += ":"
    if body != "07":
        out += _pad(zone % 60, 2)
    if body in ("070000", "07:00:00"):
        if body == "07:00:00":
            out += ":"
        out += _pad(absoffset % 60, 2)
    return out


def format_time(t: GoTime, layout: str) -> str:
    """``t.Format(layout)`` with Go's reference-time layout language."""
    out: list[str] = []
    days, secs = t._local_days_secs()
    date: tuple[int, int, int] | None = None
    hour, minute, sec = secs // 3600, secs % 3600 // 60, secs % 60
    while layout:
        prefix, std, layout = _next_chunk(layout)
        if prefix:
            out.append(prefix)
        if not std:
            break
        if date is None:
            date = _civil(days)
        year, month, day = date
        if std == "06":
            out.append(_pad(abs(year) % 100, 2))
        elif std == "2006":
            out.append(_pad(year, 4))
        elif std == "Jan":
            out.append(_LONG_MONTHS[month - 1][:3])
        elif std == "January":
            out.append(_LONG_MONTHS[month - 1])
        elif std == "1":
            out.append(str(month))
        elif std == "01":
            out.append(_pad(month, 2))
        elif std == "Mon":
            out.append(_LONG_DAYS[(days + 4) % 7][:3])
        elif std == "Monday":
            out.append(_LONG_DAYS[(days + 4) % 7])
        elif std == "2":
            out.append(str(day))
        elif std == "_2":
            out.append(str(day).rjust(2))
        elif std == "02":
            out.append(_pad(day, 2))
        elif std == "__2":
            out.append(str(t._yday()).rjust(3))
        elif std == "002":
            out.append(_pad(t._yday(), 3))
        elif std == "15":
            out.append(_pad(hour, 2))
        elif std in ("3", "03"):
            hr = hour % 12 or 12  # noon is 12PM, midnight 12AM
            out.append(_pad(hr, len(std)) if std == "03" else str(hr))
        elif std == "4":
            out.append(str(minute))
        elif std == "04":
            out.append(_pad(minute, 2))
        elif std == "5":
            out.append(str(sec))
        elif std == "05":
            out.append(_pad(sec, 2))
        elif std == "PM":
            out.append("PM" if hour >= 12 else "AM")
        elif std == "pm":
            out.append("pm" if hour >= 12 else "am")
        elif std[0] in "-Z":
            out.append(_zone_text(std, t._offset))
        elif std == "MST":
            if t._zone:
                out.append(t._zone)
            else:
                zone = int(t._offset / 60)
                sign = "-" if zone < 0 else "+"
                zone = abs(zone)
                out.append(sign + _pad(zone // 60, 2) + _pad(zone % 60, 2))
        else:  # fractional second: separator then run of 0s or 9s
            n = min(len(std) - 1, 9)
            digits = f"{t._nsec:09d}"
            if std[1] == "9":
                digits = digits[:n].rstrip("0")
                if digits:
                    out.append(std[0] + digits)
            else:
                out.append(std[0] + digits[:n])
    return "".join(out)
