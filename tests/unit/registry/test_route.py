"""Route values: every field parsed, hostile values rejected as a whole naming field and reason."""

from __future__ import annotations

import json
import random
import string

import pytest

from muster.registry.index import index_services
from muster.registry.route import Route, RouteRejected, parse_route, route_json, route_problem
from muster.registry.routing import build_table, strip

FULL = {
    "hosts": ["API.example.com", "*.example.com"],
    "paths": ["/api/", "/v1"],
    "strip_prefix": False,
    "split": {"api-v2": 5, "api-v3": 0.5},
    "timeouts": {"connect": 1, "send": 2.5, "read": 30},
    "retries": 2,
    "retry_on": ["503", "error"],
    "max_body": "10m",
    "balance": "hash:cookie:sid",
    "websocket": True,
    "headers": {"request": {"X-Team": "a b"}, "response": {"X-Frame-Options": "DENY"}},
    "rate_limit": {"rate": 50, "burst": 20},
}


def test_every_field_parses_and_round_trips() -> None:
    route = parse_route("api", json.dumps(FULL))
    assert route.hosts == ("api.example.com", "*.example.com")
    assert route.paths == ("/api/", "/v1") and not route.strip_prefix
    assert route.split == (("api-v2", 5), ("api-v3", 0.5))
    assert (route.connect_timeout, route.send_timeout, route.read_timeout) == (1, 2.5, 30)
    assert route.retries == 2 and route.retry_on == ("error", "503")
    assert route.max_body == 10 << 20
    assert (route.balance, route.hash_on) == ("hash", "cookie:sid")
    assert route.websocket and route.request_headers == (("X-Team", "a b"),)
    assert (route.rate, route.burst) == (50, 20)
    assert parse_route("api", json.dumps(route_json(route))) == route


def test_an_empty_route_is_the_default() -> None:
    route = parse_route("api", "{}")
    assert route.is_default and route.prefixes == ("/api/",) and route.strip_prefix


HOSTILE = [
    ({"headers": {"request": {"X-A": "a\r\nX-Evil: 1"}}}, "headers.request.X-A"),
    ({"headers": {"response": {"X-A": "a; include /etc/passwd"}}}, "headers.response.X-A"),
    ({"headers": {"request": {"X-A": "$http_authorization"}}}, "headers.request.X-A"),
    ({"headers": {"request": {"X-A\n": "a"}}}, "headers.request"),
    ({"headers": {"request": {"Host": "evil"}}}, "headers.request.Host"),
    ({"hosts": ["a{b}.example.com"]}, "hosts[0]"),
    ({"hosts": ["*"]}, "hosts[0]"),
    ({"hosts": ["1.2.3.4"]}, "hosts[0]"),
    ({"paths": ["/a b/"]}, "paths[0]"),
    ({"paths": ["/a/../etc/"]}, "paths[0]"),
    ({"paths": ["api/"]}, "paths[0]"),
    ({"paths": ["/a;b/"]}, "paths[0]"),
    ({"paths": []}, "paths"),
    ({"split": {"api": 5}}, "split.api"),
    ({"split": {"b": 60, "c": 50}}, "split"),
    ({"split": {"b": 1e308}}, "split.b"),
    ({"timeouts": {"read": 1e9}}, "timeouts.read"),
    ({"timeouts": {"read": -1}}, "timeouts.read"),
    ({"timeouts": {"read": True}}, "timeouts.read"),
    ({"retries": 10**6}, "retries"),
    ({"retries": 1.5}, "retries"),
    ({"retry_on": ["everything"]}, "retry_on"),
    ({"max_body": "99999999999g"}, "max_body"),
    ({"balance": "hash:cookie:a-b"}, "balance"),
    ({"balance": "random"}, "balance"),
    ({"rate_limit": {"rate": 0}}, "rate_limit.rate"),
    ({"rate_limit": {"rate": 10, "burst": 10**9}}, "rate_limit.burst"),
    ({"websocket": "yes"}, "websocket"),
    ({"strip_prefix": 1}, "strip_prefix"),
    ({"hostz": ["a.example.com"]}, "hostz"),
]


@pytest.mark.parametrize(("value", "field"), HOSTILE)
def test_hostile_values_are_rejected_naming_the_field_not_the_value(
    value: dict[str, object], field: str
) -> None:
    with pytest.raises(RouteRejected) as info:
        parse_route("api", json.dumps(value))
    message = str(info.value)
    assert message.startswith(f"route {field}:"), message
    for secret in ("Evil", "passwd", "authorization", "{b}", "../", "a b", "1e+308", "everything"):
        assert secret not in message


def test_values_that_are_not_routes() -> None:
    assert route_problem("a", "[" * 5000 + "]" * 5000) == "route: value is nested too deeply"
    assert route_problem("a", "nope") == "route: value is not JSON"
    assert route_problem("a", "[]") == "route: value is not a JSON object"
    assert route_problem("a", " " * 70000) is not None


def test_generated_hostile_values_never_pass_nor_crash() -> None:
    rng = random.Random(12)
    bad = '\r\n\t\x00;{}$"\\' + "".join(chr(c) for c in (0x7F, 0x85, 0x2028, 0xE9))
    fields = ["hosts", "paths", "headers.request", "headers.response", "balance", "split"]
    for _ in range(2000):
        junk = "".join(rng.choice(string.ascii_letters + bad) for _ in range(rng.randint(3, 12)))
        junk = junk if any(c in bad for c in junk) else junk + rng.choice(bad)
        field = rng.choice(fields)
        value: dict[str, object]
        if field == "hosts":
            value = {"hosts": [junk + ".example.com"]}
        elif field == "paths":
            value = {"paths": ["/" + junk]}
        elif field == "balance":
            value = {"balance": "hash:header:" + junk}
        elif field == "split":
            value = {"split": {junk: 5}}
        else:
            kind = field.split(".")[1]
            value = (
                {"headers": {kind: {"X-A": junk}}} if rng.random() < 0.5 else {"headers": {kind: {junk: "v"}}}
            )
        problem = route_problem("api", json.dumps(value))
        assert problem is not None, value
        assert len(junk) < 3 or junk not in problem


def test_the_index_keeps_a_bad_route_out_and_the_servers_in() -> None:
    server = json.dumps({"host": "127.0.0.1", "port": 80})
    entries = [
        ("/services/api/servers/a", server),
        ("/services/api/route", json.dumps({"hosts": ["a{"]})),
        ("/services/web/servers/a", server),
        ("/services/web/route", json.dumps({"split": {"ghost": 5}})),
        ("/services/ok/servers/a", server),
        ("/services/ok/route", json.dumps({"paths": ["/"]})),
    ]
    index = index_services(entries, ["api", "web", "ok"])
    assert set(index.routes) == {"ok"}
    assert index.rejected["/services/api/route"].startswith("route hosts[0]:")
    assert index.rejected["/services/web/route"] == "route split: service ghost is not registered"
    assert all(index.services[name] for name in ("api", "web", "ok")), "servers keep flowing"


def table_of(routes: dict[str, dict[str, object]], services: list[str]):  # type: ignore[no-untyped-def]
    parsed = {name: parse_route(name, json.dumps(v)) for name, v in routes.items()}
    return build_table(services, parsed)


def test_exact_host_beats_wildcard_beats_any_and_the_longest_prefix_wins() -> None:
    table = table_of(
        {
            "exact": {"hosts": ["api.example.com"], "paths": ["/"]},
            "wild": {"hosts": ["*.example.com"], "paths": ["/", "/deep/"]},
            "deeper": {"hosts": ["*.b.example.com"], "paths": ["/x/"]},
            "any": {"paths": ["/any/", "/"]},
        },
        ["exact", "wild", "deeper", "any", "plain"],
    )

    def who(host: str, uri: str) -> str | None:
        entry = table.lookup(host, uri)
        return entry.service if entry else None

    assert who("api.example.com", "/deep/x") == "exact", "an exact host's / shadows the wildcard's /deep/"
    assert who("www.example.com", "/deep/x") == "wild"
    assert who("www.example.com", "/any/x") == "wild"
    assert who("a.b.example.com", "/x/1") == "deeper"
    assert who("a.b.example.com", "/y") == "wild", "a longer wildcard falls back to a shorter one"
    assert who("example.com", "/any/") == "any", "*.example.com does not cover example.com"
    assert who("other.org", "/plain/a") == "plain"
    assert who("other.org", "/zzz") == "any"


def test_strip() -> None:
    table = table_of(
        {"a": {"paths": ["/a/", "/b"]}, "c": {"paths": ["/c/"], "strip_prefix": False}}, ["a", "c"]
    )
    found = table.lookup("h", "/a/x?y")
    assert found is not None and strip(found, "/a/x") == "/x"
    b = table.lookup("h", "/bz")
    assert b is not None and strip(b, "/bz") == "/z" and strip(b, "/b") == "/"
    c = table.lookup("h", "/c/d")
    assert c is not None and strip(c, "/c/d") == "/c/d"


def test_a_registry_route_beats_a_default_one_for_the_same_prefix() -> None:
    table = table_of({"web": {"paths": ["/api/"]}}, ["api", "web"])
    entry = table.lookup("h", "/api/x")
    assert entry is not None and entry.service == "web"
    assert Route("api").is_default
