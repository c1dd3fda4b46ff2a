"""GoTime: Go's time.Time layout language and methods, checked against Go 1.19 output."""

from __future__ import annotations

from typing import Any

import pytest

from muster.golang.time import Duration, GoTime, Month, Weekday, format_time
from muster.golang.values import go_type_name


def test_format_matches_go(go_golden: dict[str, Any]) -> None:
    mismatches = []
    for case in go_golden["timeFormat"]:
        t = GoTime(case["unix"], case["nsec"], case["zone"], case["offset"])
        out = t.Format(case["layout"])
        if out != case["out"]:
            mismatches.append((case, out))
    assert len(go_golden["timeFormat"]) > 1000
    assert mismatches == []


def test_fields() -> None:
    # 2023-11-14 22:13:20.123456789 UTC, a Tuesday; in CET (+1h) it is 23:13.
    t = GoTime(1_700_000_000, 123_456_789, "CET", 3600)
    assert (t.Year(), int(t.Month()), t.Day()) == (2023, 11, 14)
    assert (t.Hour(), t.Minute(), t.Second(), t.Nanosecond()) == (23, 13, 20, 123_456_789)
    assert t.Month().String() == "November" and go_type_name(t.Month()) == "time.Month"
    assert t.Weekday().String() == "Tuesday" and go_type_name(t.Weekday()) == "time.Weekday"
    assert t.YearDay() == 318
    assert t.Unix() == 1_700_000_000 and t.UnixNano() == 1_700_000_000_123_456_789
    assert t.UnixMilli() == 1_700_000_000_123
    assert t.UTC().Hour() == 22 and t.UTC().Format("MST") == "UTC"
    assert go_type_name(t) == "time.Time"
    assert Month(13).String() == "%!Month(13)" and Weekday(7).String() == "%!Weekday(7)"


def test_string_like_go() -> None:
    t = GoTime(1_700_000_000, 5_000, "CET", 3600)
    assert t.String() == "2023-11-14 23:13:20.000005 +0100 CET"
    assert GoTime(0, 0, "", -(5 * 3600 + 30 * 60)).String() == "1969-12-31 18:30:00 -0530 -0530"


def test_now_carries_a_monotonic_reading_that_utc_drops() -> None:
    now = GoTime.now()
    assert " m=+" in now.String()
    assert " m=" not in now.UTC().String() and " m=" not in now.Local().String()
    assert now.Local().Unix() == now.Unix()


def test_layout_edge_cases() -> None:
    t = GoTime(-62135596800 - 86400 * 366, 0, "UTC", 0)  # 0000-01-01: year 0 exists in Go
    assert format_time(t, "2006-01-02") == "0000-01-01"
    t = GoTime(1_700_000_000, 120_000_000, "UTC", 0)
    assert format_time(t, "05.999 05,000 .9") == "20.12 20,120 .1"
    assert format_time(t, "Month Mondays Janet") == "Month Tuesdays Janet"  # "Mon" then lower case: literal
    assert format_time(t, "_2006 __2 002") == "_2023 318 318"


def test_methods_through_the_engine() -> None:
    from muster.gotemplate import Template

    t = GoTime(1_700_000_000, 0, "UTC", 0)
    src = '{{.Format "2006-01-02"}} {{.Year}} {{printf "%d %T" .Month .Month}} {{eq .Month 11}} {{.UTC}}'
    out = Template("t").parse(src).execute(t)
    assert out == "2023-11-14 2023 11 time.Month true 2023-11-14 22:13:20 +0000 UTC"


def test_month_and_weekday_print_their_names_through_the_engine() -> None:
    from muster.gotemplate import Template

    out = Template("t").parse("{{.Month}} {{.Weekday}}").execute(GoTime(1_700_000_000, 0, "UTC", 0))
    assert out == "November Tuesday"


def test_duration_prints_as_go() -> None:
    # Goldens from Go 1.19's time.Duration.String.
    cases = {0: "0s", 1: "1ns", 999: "999ns", 1000: "1\u00b5s", 1500: "1.5\u00b5s", 1_000_000: "1ms"}
    cases |= {1_234_567: "1.234567ms", 10**9: "1s", 3_723_500_000_000: "1h2m3.5s", -90 * 10**9: "-1m30s"}
    cases |= {(1 << 63) - 1: "2562047h47m16.854775807s", -(1 << 63): "-2562047h47m16.854775808s"}
    assert {v: Duration(v).String() for v in cases} == cases


def test_arithmetic_and_rounding_match_go() -> None:
    # Goldens from Go 1.19 for time.Unix(1_700_000_000, 5).UTC().
    t = GoTime(1_700_000_000, 5, "UTC", 0)
    assert t.ISOWeek() == (2023, 46)
    assert t.AddDate(0, 1, 20).String() == "2024-01-03 22:13:20.000000005 +0000 UTC"
    assert t.AddDate(0, -11, 0).String() == "2022-12-14 22:13:20.000000005 +0000 UTC"
    assert t.Truncate(3600 * 10**9).String() == "2023-11-14 22:00:00 +0000 UTC"
    assert t.Round(3600 * 10**9).String() == "2023-11-14 22:00:00 +0000 UTC"
    assert t.Round(1800 * 10**9 - 1).Minute() == 59 and t.Truncate(0) == t and t.Round(-1) == t
    assert t.Sub(GoTime(0)).String() == "472222h13m20.000000005s"
    assert t.Add(-5).UnixNano() == 1_700_000_000 * 10**9 and t.Add(-5).Before(t) and t.After(t.Add(-1))
    assert t.Equal(t.In(t.Location())) and t.Location().String() == "UTC"
    assert t.Date() == (2023, 11, 14) and t.Clock() == (22, 13, 20) and t.Zone() == ("UTC", 0)
    assert GoTime(-62135596800).IsZero() and not t.IsZero()
    assert t.UnixMicro() == 1_700_000_000_000_000


def test_monotonic_readings_decide_comparisons() -> None:
    a = GoTime(100, 0, "UTC", 0, mono=5)
    b = GoTime(50, 0, "UTC", 0, mono=7)  # wall clock stepped back: monotonic still says later
    assert a.Before(b) and b.Sub(a) == 2 and a.Add(1)._mono == 6
    assert GoTime(0, 0, "UTC", 0, mono=(1 << 63) - 1).Add(1)._mono is None
    assert a.Sub(GoTime(-(1 << 62))) == (1 << 63) - 1  # saturates


def test_multi_result_methods_and_in_nil_fail_in_templates() -> None:
    from muster.errors import TemplateError
    from muster.gotemplate import Template

    t = GoTime(1_700_000_000, 0, "UTC", 0)
    for src, msg in [
        ("{{.Zone}}", 'can\'t call method/function "Zone" with 2 results'),
        ("{{.Date}}", 'can\'t call method/function "Date" with 3 results'),
        ("{{.In nil}}", "error calling In: time: missing Location in call to Time.In"),
    ]:
        with pytest.raises(TemplateError, match=msg):
            Template("t").parse(src).execute(t)
    out = (
        Template("t")
        .parse('{{.Truncate 3600000000000}} {{printf "%T" .Unix}} {{.Local.Location}}')
        .execute(t)
    )
    assert out == "2023-11-14 22:00:00 +0000 UTC int64 Local"


def test_duration_methods_match_go() -> None:
    # Goldens from Go 1.19 (Hours, Milliseconds, Truncate/Round to an hour, Abs, Round(7)).
    h = 3600 * 10**9
    rows = {
        -5_400_000_000_001: (-1.5000000000002778, -5400000, "-1h0m0s", "-2h0m0s", "1h30m0.000000001s"),
        1_799_999_999_999: (0.4999999999997222, 1799999, "0s", "0s", "29m59.999999999s"),
        -1_800_000_000_000: (-0.5, -1800000, "0s", "-1h0m0s", "30m0s"),
        -(1 << 63): (-2562047.7880152157, -9223372036854, "-2562047h0m0s", "-2562047h47m16.854775808s", ""),
        (1 << 63) - 1: (2562047.7880152157, 9223372036854, "2562047h0m0s", "2562047h47m16.854775807s", ""),
    }
    for v, (hours, millis, trunc, rnd, ab) in rows.items():
        d = Duration(v)
        got = (d.Hours(), d.Milliseconds(), d.Truncate(h).String(), d.Round(h).String())
        assert got == (hours, millis, trunc, rnd), v
        assert d.Abs().String() == (ab or "2562047h47m16.854775807s")
    assert Duration(-(1 << 63)).Round(7).String() == "-2562047h47m16.854775807s"
    assert Duration(-1).Minutes() == -1.6666666666666667e-11 and Duration(-1).Seconds() == -1e-09
    assert Duration(5).Truncate(0) == 5 and Duration(5).Round(-1) == 5 and Duration(1500).Microseconds() == 1
    assert Duration(7).Nanoseconds() == 7


def test_encodings_match_go() -> None:
    t = GoTime(1_700_000_000, 5, "X", 5 * 3600 + 30 * 60 + 7, loc="Local")
    assert list(t.MarshalBinary()) == [2, 0, 0, 0, 14, 220, 229, 232, 0, 0, 0, 0, 5, 1, 74, 7]
    assert list(t.UTC().GobEncode()) == [1, 0, 0, 0, 14, 220, 229, 232, 0, 0, 0, 0, 5, 255, 255]
    assert t.UTC().MarshalJSON() == b'"2023-11-14T22:13:20.000000005Z"'
    assert t.UTC().MarshalText() == b"2023-11-14T22:13:20.000000005Z"
    assert t.UTC().GoString() == "time.Date(2023, time.November, 14, 22, 13, 20, 5, time.UTC)"
    assert t.GoString().endswith("time.Local)") and not t.UTC().IsDST() and t.UTC().ZoneBounds()[0].IsZero()
    with pytest.raises(ValueError, match=r"Time.MarshalJSON: year outside of range \[0,9999\]"):
        GoTime(-62135596800 - 86400 * 400).MarshalJSON()
    with pytest.raises(ValueError, match="unexpected zone offset"):
        GoTime(0, 0, "Y", -60, loc="Local").MarshalBinary()


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Any:
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_local_times_follow_the_zone_like_go(berlin: Any) -> None:
    # Goldens from Go 1.19 with TZ=Europe/Berlin: AddDate into the spring gap moves
    # forward, into the autumn overlap takes the first (CET) reading... as Go does.
    t = GoTime(1679707800, 0, "CET", 3600, loc="Local")  # 2023-03-25 02:30 CET
    assert t.String() == "2023-03-25 02:30:00 +0100 CET" and not t.IsDST()
    assert t.AddDate(0, 0, 1).String() == "2023-03-26 03:30:00 +0200 CEST" and t.AddDate(0, 0, 1).IsDST()
    u = GoTime(1698453000, 0, "CEST", 7200, loc="Local")  # 2023-10-28 02:30 CEST
    assert u.AddDate(0, 0, 1).Unix() == 1698543000
    assert t.Add(24 * 3600 * 10**9).String() == "2023-03-26 03:30:00 +0200 CEST"
    assert t.Truncate(24 * 3600 * 10**9).String() == "2023-03-25 01:00:00 +0100 CET"
    assert t.UTC().In(t.Location()).String() == "2023-03-25 02:30:00 +0100 CET"
    assert t.Location().String() == "Europe/Berlin"


@pytest.mark.parametrize(
    ("tz", "name"),
    [(None, "Local"), ("", "UTC"), ("UTC", "UTC"), ("Europe/Berlin", "Europe/Berlin"), ("No/Such", "UTC")]
    + [
        (":/etc/localtime", "Local"),
        ("/usr/share/zoneinfo/Europe/Berlin", "/usr/share/zoneinfo/Europe/Berlin"),
    ]
    + [("/no/such/file", "UTC")],
)
def test_local_location_is_named_as_go_names_it(
    tz: str | None, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from muster.golang.time import local_location_name

    if tz is None:
        monkeypatch.delenv("TZ", raising=False)
        if not os.path.exists("/etc/localtime"):
            name = "UTC"
    else:
        monkeypatch.setenv("TZ", tz)
    assert local_location_name() == name


def test_instants_beyond_the_c_library_are_utc() -> None:
    far = GoTime(10**17, 0, "UTC", 0).Local()
    assert (far._zone, far._offset) == ("UTC", 0) and not GoTime(10**17, loc="Local").IsDST()
    assert repr(GoTime(5, 1)) == "GoTime(5, 1, 'UTC', 0)"


def test_layout_chunks_that_are_not_tokens_and_rounding_up() -> None:
    t = GoTime(1_700_000_000, 600_000_000, "UTC", 0)
    assert format_time(t, "07 _x Zx -x") == "07 _x Zx -x"  # a 0, _, Z or - that starts no token
    assert format_time(t, "x.01") == "x.11"  # a run of 0s followed by a digit is no fraction
    assert t.Round(10**9).Second() == 21 and hash(t) == hash(GoTime(1_700_000_000, 600_000_000, "X", 60))
    assert format_time(GoTime(-62135596800 - 86400 * 800), "2006") == "-0002"  # year -2, sign before zeros
