from __future__ import annotations

import json

from muster.stack.local import _member_ports
from muster.stack.up import _show_changes


def feed(values: dict[str, str], shown: dict[str, str]) -> list[str]:
    lines: list[str] = []
    _show_changes(values, shown, lines.append)
    return [line.split("  ", 1)[1] for line in lines]  # drop the time stamp


def test_feed_shows_arrivals_departures_and_rejections_once() -> None:
    shown: dict[str, str] = {}
    a = json.dumps({"host": "127.0.0.1", "port": 9000})
    b = json.dumps({"host": "10.0.0.2", "port": 80, "weight": 3})
    assert feed({"/services/api/servers/a": a}, shown) == ["+ api/a -> 127.0.0.1:9000"]
    assert feed({"/services/api/servers/a": a}, shown) == []  # nothing changed
    values = {"/services/api/servers/a": a, "/services/api/servers/b": b, "/services/api/servers/c": "x"}
    assert feed(values, shown) == [
        "+ api/b -> 10.0.0.2:80 weight=3",
        "! /services/api/servers/c left out: value is not JSON",
    ]
    assert feed({"/services/api/servers/b": b}, shown) == ["- api/a"]


def test_feed_escapes_hostile_keys() -> None:
    lines = feed({"/services/a\nb/servers/x": "{}"}, {})
    assert lines == ["! /services/a\\nb left out: service name is not [A-Za-z0-9._-]"]


def test_member_ports_follow_etcds_convention() -> None:
    assert _member_ports(2379, 1) == [2379]
    assert _member_ports(2379, 3) == [2379, 12379, 22379]
    ports = _member_ports(60000, 3)
    assert ports[0] == 60000 and len(set(ports)) == 3
