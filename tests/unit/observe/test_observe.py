"""The dashboard's data: traffic counters parsed and turned into rates, events, the page model."""

from __future__ import annotations

import pytest

from muster.daemon.core import config_diff
from muster.daemon.observer import RegistryObserver
from muster.observe.dashboard import asset, build_dashboard
from muster.observe.events import EventLog
from muster.observe.metrics import reason_class
from muster.observe.traffic import IdleSeries, TrafficHistory, TrafficSnapshot, parse_traffic, quantile
from muster.status import Status

# What GET /muster/traffic answers: bounds, dropped, then "SERVICE\tSERVER\tFIELD VALUE" lines.
RAW = (
    "buckets 0.005 0.01 0.025\n"
    "dropped 3\n"
    "web\t10.0.0.1:80\t1 10\n"
    "web\t10.0.0.1:80\t3 9\n"
    "web\t10.0.0.1:80\t6 1\n"
    "web\t10.0.0.1:80\t7 2\n"
    "web\t10.0.0.1:80\t10 1234\n"
    "web\t10.0.0.1:80\t11 0.05\n"
    "web\t10.0.0.1:80\t12 6\n"
    "web\t10.0.0.1:80\t13 4\n"
)


def test_counters_parse_into_series() -> None:
    snap = parse_traffic(RAW, 100.0)
    t = snap.servers[("web", "10.0.0.1:80")]
    assert (t.requests, t.codes, t.errors, t.bytes) == (10, (0, 9, 0, 0, 1), 2, 1234)
    assert t.buckets == (6, 4, 0, 0) and t.latency_sum == 0.05 and snap.dropped == 3
    with pytest.raises(ValueError, match="line 3"):
        parse_traffic("buckets 1\ndropped 0\ngarbage\n", 0.0)


def test_quantiles_interpolate_like_prometheus() -> None:
    bounds = (0.01, 0.1, 1.0)
    assert quantile(0.5, bounds, [10, 0, 0, 0]) == pytest.approx(0.005)
    assert quantile(0.5, bounds, [0, 10, 0, 0]) == pytest.approx(0.055)
    assert quantile(0.95, bounds, [0, 0, 0, 5]) == 1.0, "in +Inf: the highest finite bound"
    assert quantile(0.5, bounds, [0, 0, 0, 0]) is None


def test_history_gives_rates_over_the_window_and_survives_a_reset() -> None:
    history = TrafficHistory(window=30)
    line = "web\t10.0.0.1:80\t"
    for second, count in ((0, 10), (2, 30), (4, 70)):
        history.add(
            parse_traffic(
                f"buckets 0.1\ndropped 0\n{line}1 {count}\n{line}3 {count}\n{line}12 {count}\n", second
            )
        )
    figures = history.figures()[("web", "10.0.0.1:80")]
    assert figures["rps"] == 15.0 and figures["spark"] == [10.0, 20.0]
    assert figures["p50"] == pytest.approx(0.05)
    # nginx restarted: its counters start again from zero, never a negative rate.
    history.add(parse_traffic(f"buckets 0.1\ndropped 0\n{line}1 5\n", 6))
    figures = history.figures()[("web", "10.0.0.1:80")]
    assert figures["spark"][-1] == 0.0 and figures["rps"] >= 0


def test_reason_labels_drop_the_values_they_quote() -> None:
    assert reason_class("invalid host 'x; include /etc/passwd': give an IP address") == "invalid host"
    assert reason_class("invalid port 99999: use a number from 1 to 65535") == "invalid port"
    assert reason_class("service name differs only in case from web, registered first") == (
        "service name differs only in case"
    )


def test_events_are_bounded_and_polled_by_sequence() -> None:
    log = EventLog(limit=3, clock=lambda: 1.0)
    for i in range(5):
        log.add("join", f"s{i}")
    assert [e.text for e in log] == ["s2", "s3", "s4"]
    assert [e.seq for e in log.since(4)] == [5]


async def test_observer_turns_snapshots_into_joins_leaves_and_rejects() -> None:
    log = EventLog()
    observer = RegistryObserver(log)
    await observer.apply({"/services/web/servers/a": '{"host": "10.0.0.1", "port": 80}'})
    await observer.apply(
        {
            "/services/web/servers/b": '{"host": "10.0.0.2", "port": 80, "weight": 3}',
            "/services/web/servers/evil": '{"host": "1.2.3.4; include /x", "port": 80}',
        }
    )
    texts = [(e.kind, e.text) for e in log]
    assert texts[0][0] == "start"
    assert ("join", "web: 10.0.0.2:80 weight 3 joined") in texts
    assert ("leave", "web: 10.0.0.1:80 left") in texts
    assert any(kind == "reject" and "servers/evil" in text for kind, text in texts)
    services, rejected = observer.snapshot()
    assert services == {"web": [("10.0.0.2", 80, 3)]} and list(rejected) == ["/services/web/servers/evil"]
    await observer.apply({"/services/web/servers/b": '{"host": "10.0.0.2", "port": 80, "weight": 3}'})
    assert log.since(len(texts))[-1].kind == "accept", "a rejected key that is gone is said so"


def test_dashboard_states() -> None:
    traffic = {
        ("web", "10.0.0.1:80"): {"requests": 5, "rps": 1.0, "error_rate": 0.0},
        ("web", "10.0.0.2:80"): {"requests": 5, "rps": 1.0, "error_rate": 0.5},
        ("web", "10.0.0.9:80"): {"requests": 5, "rps": 2.0, "error_rate": 0.0},  # left, still busy
        ("web", "10.0.0.8:80"): {"requests": 5, "rps": 0.0, "error_rate": 0.0},  # left, quiet
        ("web", "-"): {"requests": 1, "rps": 0.0},
    }
    data = build_dashboard(
        status={"ready": True, "reason": "ok", "revision": 9},
        services={"web": [("10.0.0.1", 80, 1), ("10.0.0.2", 80, 2)], "idle": []},
        rejected={"/services/web/servers/x": "value is not JSON"},
        held={},
        traffic=traffic,
        traffic_dropped=0,
        events=[],
        info={"backend": "etcdv3"},
        now=1.0,
    )
    web = next(s for s in data["services"] if s["name"] == "web")
    states = {s["addr"]: s["state"] for s in web["servers"]}
    assert states == {
        "10.0.0.1:80": "up",
        "10.0.0.2:80": "failing",
        "10.0.0.9:80": "draining",
        "-": "no server",
    }
    assert web["requests"] == 16 and data["rejected"] == [
        {"key": "/services/web/servers/x", "reason": "value is not JSON"}
    ]
    assert [s["name"] for s in data["services"]] == ["idle", "web"]


def test_page_assets_are_shipped_and_load_nothing_from_elsewhere() -> None:
    page = asset("index.html").decode()
    script = asset("dashboard.js").decode()
    assert "static/dashboard.js" in page and "static/dashboard.css" in page
    for text in (page, script, asset("dashboard.css").decode()):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert "innerHTML" not in script, "registry values go in as text, never as HTML"


def test_config_diff_is_a_short_unified_diff() -> None:
    assert config_diff(None, b"a\nb\n") == "first render in this daemon: 2 lines"
    diff = config_diff(b"a\nb\nc\n", b"a\nB\nc\n")
    assert "-b" in diff and "+B" in diff
    assert "too large" in config_diff(b"x" * 10, b"y" * 10, limit=5)


def test_series_of_servers_that_left_are_forgotten_once_idle() -> None:
    idle = IdleSeries(after=600)
    line = "web\t10.0.0.9:80\t1 "

    def snap(t: float, count: int) -> TrafficSnapshot:
        return parse_traffic(
            f"buckets 0.1\ndropped 0\n{line}{count}\nweb\t10.0.0.1:80\t1 5\nweb\t-\t1 2\n", t
        )

    registered = {("web", "10.0.0.1:80")}
    assert idle.update(snap(0, 10), registered) == []
    assert idle.update(snap(500, 12), registered) == [], "still taking requests: draining"
    assert idle.update(snap(1000, 12), registered) == [], "idle for 500 s only"
    assert idle.update(snap(1100, 12), registered) == [("web", "10.0.0.9:80")]
    # Registered servers and requests that reached none are never dropped, however idle.
    assert idle.update(snap(99_999, 12), registered | {("web", "10.0.0.9:80")}) == []


async def test_observer_given_only_the_changed_keys_tells_what_a_whole_snapshot_would() -> None:
    first = {"/services/web/servers/a": '{"host": "10.0.0.1", "port": 80}'}
    changes: dict[str, str | None] = {
        "/services/web/servers/a": None,
        "/services/web/servers/b": '{"host": "10.0.0.2", "port": 80, "weight": 3}',
        "/services/web/servers/evil": '{"host": "1.2.3.4; include /x", "port": 80}',
    }
    whole, partial = EventLog(), EventLog()
    by_snapshot, by_changes = RegistryObserver(whole), RegistryObserver(partial)
    await by_snapshot.apply(first)
    await by_snapshot.apply({k: v for k, v in changes.items() if v is not None})
    await by_changes.apply(first)
    await by_changes.apply_changes(changes)
    assert [(e.kind, e.text) for e in partial] == [(e.kind, e.text) for e in whole]
    assert by_changes.snapshot() == by_snapshot.snapshot()


async def test_status_forgets_only_the_idle_series_of_servers_that_left() -> None:
    now = [0.0]
    counters = (
        "buckets 0.1\ndropped 0\n"
        "web\t10.0.0.1:80\t1 5\nweb\t10.0.0.9:80\t1 7\nweb\t[fe80::1]:80\t1 3\n"
        "api\t10.0.0.1:80\t1 1\nweb\t-\t1 2\n"
    )
    forgotten: list[list[tuple[str, str]]] = []

    async def source() -> str:
        return counters

    async def forget(series: list[tuple[str, str]]) -> None:
        forgotten.append(series)

    registered = {"web": [("10.0.0.1", 80, 1), ("fe80::1", 80, 1)], "db": [("10.0.0.9", 80, 1)]}
    status = Status(clock=lambda: now[0])
    status.traffic_source, status.traffic_forget = source, forget
    status.membership = lambda: (registered, {})
    await status.sample_traffic()
    now[0] = 700.0
    await status.sample_traffic()
    # 10.0.0.9 serves db now, not web; api left; web's IPv6 server is still registered.
    assert forgotten == [[("api", "10.0.0.1:80"), ("web", "10.0.0.9:80")]]
