"""Routes as data (/services/NAME/route) through real nginx, in both data planes.

One table of requests runs through the reload plane (rendered maps and locations) and the
Lua plane (route table in shared memory), so both route every request the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest
from route_helpers import Backends, base, fetch, route_stack, settle, wait_for

from muster.registry.route import parse_route
from muster.registry.routing import build_table, strip
from muster.stack.etcd import etcd_available
from muster.stack.local import Stack
from muster.stack.nginx import nginx_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd"),
]


ROUTES = {
    "exact": {"hosts": ["api.example.com"], "paths": ["/"]},
    "wild": {"hosts": ["*.example.com"], "paths": ["/", "/deep/"], "strip_prefix": False},
    "deeper": {"hosts": ["*.b.example.com"], "paths": ["/x/"]},
    "anyhost": {"paths": ["/any/", "/any/longer/"]},
    "longer": {"paths": ["/any/longer/still/"], "strip_prefix": False},
}
PLAIN = ["plain"]

# (host, path, backend, path the backend gets); "" = no route: nginx's own 404.
REQUESTS = [
    ("api.example.com", "/deep/x?q=1", "exact", "/deep/x?q=1"),
    ("api.example.com", "/", "exact", "/"),
    ("www.example.com", "/deep/x", "wild", "/deep/x"),
    ("www.example.com", "/other", "wild", "/other"),
    ("a.b.example.com", "/x/1", "deeper", "/1"),
    ("a.b.example.com", "/y", "wild", "/y"),
    ("example.com", "/any/a", "anyhost", "/a"),
    ("other.org", "/any/longer/b", "anyhost", "/b"),
    ("other.org", "/any/longer/still/c", "longer", "/any/longer/still/c"),
    ("other.org", "/plain/p", "plain", "/p"),
    ("other.org", "/exact/", "", ""),
    ("other.org", "/nothing/", "", ""),
]


async def test_one_table_of_requests_routes_the_same_in_both_planes(stack: Stack, backends: Backends) -> None:
    for name in [*ROUTES, *PLAIN]:
        stack.put(f"/services/{name}/servers/a", backends.add(name).server_value())
    for name, route in ROUTES.items():
        stack.put(f"/services/{name}/route", json.dumps(route))
    url = base(stack)
    await wait_for(url, "other.org", "/any/longer/still/c", "longer")
    await wait_for(url, "a.b.example.com", "/x/1", "deeper")
    await settle(stack)
    # The pure table agrees with what nginx does, request by request.
    table = build_table([*ROUTES, *PLAIN], {n: parse_route(n, json.dumps(r)) for n, r in ROUTES.items()})
    async with aiohttp.ClientSession() as session:
        for host, path, ident, upstream_path in REQUESTS:
            answer = await fetch(session, url, host, path)
            entry = table.lookup(host, path.split("?")[0])
            assert (entry.service if entry else "") == ident, (host, path)
            if entry:
                assert strip(entry, path.split("?")[0]) == upstream_path.split("?")[0]
            assert (answer.ident, answer.path) == (ident, upstream_path), (host, path, answer)
            assert answer.status == (200 if ident else 404), (host, path)


async def test_a_hostile_route_keeps_the_default_route(stack: Stack, backends: Backends) -> None:
    stack.put("/services/web/servers/a", backends.add("web").server_value())
    stack.put("/services/other/servers/a", backends.add("other").server_value())
    url = base(stack)
    await wait_for(url, "h", "/web/", "web")
    hostile = [
        {"headers": {"request": {"X-A": "a\r\nX-Evil: 1"}}, "paths": ["/evil/"]},
        {"headers": {"response": {"X-A": "a; return 200"}}, "paths": ["/evil/"]},
        {"hosts": ["a{b.example.com"], "paths": ["/evil/"]},
        {"paths": ["/evil path/"]},
        {"paths": ["/evil/../"]},
        {"split": {"ghost": 5}, "paths": ["/evil/"]},
        {"timeouts": {"read": 1e12}, "paths": ["/evil/"]},
        {"rate_limit": {"rate": 10**12}, "paths": ["/evil/"]},
    ]
    for value in hostile:
        stack.put("/services/web/route", json.dumps(value))
        # A good change behind it still flows: the bad route froze nothing.
        stack.put("/services/other/route", json.dumps({"paths": [f"/o{hostile.index(value)}/"]}))
        await wait_for(url, "h", f"/o{hostile.index(value)}/", "other")
        await settle(stack)
        answer = await wait_for(url, "h", "/web/x", "web")
        assert answer.path == "/x"
        assert (await wait_for(url, "h", "/evil/", "")).status == 404
    log = (stack.state / "logs" / "muster.log").read_text()
    for reason in ("headers.request.X-A", "headers.response.X-A", "hosts[0]", "paths[0]",
                   "split: service ghost is not registered", "timeouts.read", "rate_limit.rate"):  # fmt: skip
        assert re.search(
            rf"services.entry.rejected key=/services/web/route reason=.*{re.escape(reason)}", log
        ), reason
    assert "X-Evil" not in log and "return 200" not in log and "1e+12" not in log


async def test_the_admin_endpoint_refuses_malformed_route_tables(plane: str, tmp_path: Path) -> None:
    if plane != "lua":
        pytest.skip("the route table is pushed to the Lua plane only")
    from muster.dataplane import AdminError, LuaAdmin

    bad = [b"Z\tx\n", b"E\t0\tapi\t/a\x01/\t1\t0\t0\n", b"E\t0\tapi\t/a\xc3\xa9/\t1\t0\t0\n", b"E\t0"]
    with route_stack(tmp_path, plane) as stack:
        async with LuaAdmin(f"unix:{stack.admin_socket}") as admin:
            for body in bad:
                with pytest.raises(AdminError, match="400"):
                    await admin.put_routes(body)
            before = (await admin.state()).routes_digest
            await admin.put_routes(b"E\t0\tapi\t/a/\t1\t0\t0\nH\t*\t0\n")
            assert (await admin.state()).routes_digest != before
