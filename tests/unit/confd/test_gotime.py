"""GoTime: Go's time.Time layout language and methods, checked against Go 1.19 output."""

from __future__ import annotations

from typing import Any

from muster.gotemplate.gotime import GoTime, Month, Weekday, format_time
from muster.gotemplate.values import go_type_name


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
