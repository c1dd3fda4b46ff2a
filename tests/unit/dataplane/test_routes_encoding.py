"""The route table as pushed to the Lua plane, and the membership index's routes."""

from __future__ import annotations

import json
import zlib

from muster.dataplane.membership import MembershipIndex
from muster.dataplane.routes import encode_routes, is_fast
from muster.registry.route import parse_route
from muster.registry.routeconf import http_conf, server_conf
from muster.registry.routing import build_table

SERVER = json.dumps({"host": "127.0.0.1", "port": 80})


def test_the_encoding_is_printable_lines_of_known_kinds() -> None:
    routes = {
        "api": parse_route(
            "api",
            json.dumps(
                {
                    "hosts": ["api.example.com"],
                    "paths": ["/v1/"],
                    "split": {"web": 5},
                    "headers": {"request": {"X-A": "a b, c=d"}},
                }
            ),
        ),  # fmt: skip
        "web": parse_route("web", json.dumps({"timeouts": {"read": 2.5}, "balance": "hash:cookie:sid"})),
    }
    body = encode_routes(build_table(["api", "web", "plain"], routes)).decode("ascii")
    lines = body.splitlines()
    assert body.endswith("\n") and all(line[:2] in ("E\t", "H\t", "M\t", "P\t") for line in lines)
    assert all(c == "\t" or " " <= c <= "~" for c in body.replace("\n", ""))
    assert "P\tapi\t" in body and "split=web:500" in body and "rq=X-A=a%20b%2C%20c%3Dd" in body
    assert "P\tweb\trt=2500\tbal=hash\thk=c:sid" in body
    assert "M\tapi" in lines and "M\tweb" not in lines
    assert not is_fast(routes["api"]) and is_fast(routes["web"])
    assert encode_routes(build_table(["api", "web", "plain"], routes)).decode() == body, "stable"


def test_the_membership_index_keeps_valid_routes_and_checks_splits_against_every_service() -> None:
    index = MembershipIndex()
    values = {
        "/services/api/servers/a": SERVER,
        "/services/api/route": json.dumps({"split": {"canary": 5}}),
    }
    index.update(values)
    assert index.routes == {}
    assert "split: service canary is not registered" in index.rejected()["/services/api/route"]
    values = {**values, "/services/canary/servers/a": SERVER}
    index.update(values)
    assert set(index.routes) == {"api"} and "/services/api/route" not in index.rejected()
    values = {**values, "/services/api/route": json.dumps({"hosts": ["a{"]})}
    index.update(values)
    assert index.routes == {} and index.services["api"], "a bad route keeps the servers"


def test_the_reload_plane_answers_503_for_a_route_without_servers_and_folds_empty_splits() -> None:
    routes = {"api": parse_route("api", json.dumps({"split": {"v2": 10}, "rate_limit": {"rate": 5}}))}
    table = build_table(["api", "v2"], routes)
    live = {"api"}
    http = http_conf(table, live.__contains__)
    assert "split_clients" not in http, "a target with no server gives its share back"
    tag = f"{zlib.crc32(b'api'):08x}"
    assert f"limit_req_zone $binary_remote_addr zone=muster_rl_{tag}:1m rate=5r/s;" in http
    server = server_conf(table, live.__contains__)
    assert f"limit_req zone=muster_rl_{tag} burst=4 nodelay;" in server
    assert "proxy_pass http://svc_api;" in server
    assert 'return 503 "no server of v2 is available\\n";' in server
