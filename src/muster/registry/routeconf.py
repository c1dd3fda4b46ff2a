"""nginx config for the route table (reload data plane): maps, split_clients, locations.

Only validated values reach this module (``muster.registry.route``), and each is pasted
in a form nginx reads literally: prefixes in anchored regexes with ``.``/``*``/``+``
escaped (the path alphabet has no other regex character), header values inside ``"..."``
(their alphabet has no quote, backslash or ``$``). The layout:

* http level: ``map $host $muster_host`` (nginx's own exact / wildcard / default host
  order) and ``map "$muster_host $uri" $muster_route``, whose regexes are tried in order,
  longest prefix first, so the first match is the table's answer (``RouteTable.lookup``);
  a ``split_clients`` per split and a ``limit_req_zone`` per rate limit.
* server level: a request with a route is rewritten to ``/.muster/e<ID>/<uri>``, an
  internal location per entry that holds the route's policies, strips the prefix and
  proxies. Requests no route knows reach the server block's own locations.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from muster.registry.route import RETRY_ON, Route
from muster.registry.routing import RouteTable

__all__ = ["BASE_HEADERS", "balance_directive", "http_conf", "server_conf"]

#: The stock template's request headers; a location that sets any must repeat them all.
BASE_HEADERS = (
    ("Host", "$host"),
    ("X-Real-IP", "$remote_addr"),
    ("X-Forwarded-For", "$proxy_add_x_forwarded_for"),
    ("X-Forwarded-Proto", "$scheme"),
)


def _regex(prefix: str) -> str:
    return "".join("\\" + c if c in ".*+" else c for c in prefix)


def _tag(service: str) -> str:
    # A service's zone and variable names: nginx names take no '.' or '-', and a name that
    # stays the same as services come and go keeps a zone's state across reloads.
    return f"{zlib.crc32(service.encode()):08x}"


def _quoted(value: str) -> str:
    # Values muster writes start with $ or are quoted already; a route's are quoted here.
    return value if value[:1] in ("$", '"') else f'"{value}"'


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def balance_directive(route: Route) -> str:
    """The upstream block's balancing line for ``route`` ("" for round robin)."""
    if route.balance == "least_conn":
        return "least_conn;"
    if route.balance == "hash":
        kind, _, name = route.hash_on.partition(":")
        var = {
            "ip": "$remote_addr",
            "header": f"$http_{name.replace('-', '_')}",
            "cookie": f"$cookie_{name}",
        }[kind]
        return f"hash {var} consistent;"
    return ""


def http_conf(table: RouteTable, has_servers: Callable[[str], bool]) -> str:
    """The http-level lines: host and route maps, splits, rate-limit zones."""
    keys = sorted(table.hosts, key=lambda k: (k == "", k))
    token = {key: f"h{i}" for i, key in enumerate(keys)}
    lines = ["map $host $muster_host {", "    hostnames;", "    default h_;"]
    lines += [f"    {key} {token[key]};" for key in keys if key]
    lines += ["}", 'map "$muster_host $uri" $muster_route {', '    default "";']
    for key in keys:
        tok = token[key] if key else "h_"
        lines += [f'    "~^{tok} {_regex(e.prefix)}" e{e.id};' for e in table.hosts[key]]
    lines += ["}", "map $http_upgrade $muster_ws_connection {", "    default upgrade;", '    "" "";', "}"]
    for route in table.routes.values():
        tag = _tag(route.service)
        targets = [(t, pct) for t, pct in route.split if has_servers(t)]
        if targets and has_servers(route.service):
            lines.append(f'split_clients "$request_id" $muster_split_{tag} {{')
            lines += [f"    {pct:g}% svc_{t};" for t, pct in targets]
            lines += [f"    * svc_{route.service};", "}"]
        if route.rate is not None:
            lines.append(f"limit_req_zone $binary_remote_addr zone=muster_rl_{tag}:1m rate={route.rate}r/s;")
    return "\n".join(lines) + "\n"


def _location(entry_id: int, prefix: str, strip: bool, route: Route, live: bool, split: bool) -> list[str]:
    loc = f"/.muster/e{entry_id}"
    out = [f"    location ^~ {loc}/ {{", "        internal;"]
    if strip:
        out.append(f"        rewrite ^{_regex(loc)}{_regex(prefix.rstrip('/'))}/?(.*)$ /$1 break;")
    else:
        out.append(f"        rewrite ^{_regex(loc)}(/.*)$ $1 break;")
    if not live:
        return [*out, "        default_type text/plain;",
                f'        return 503 "no server of {route.service} is available\\n";', "    }"]  # fmt: skip
    if route.rate is not None:
        out += [
            f"        limit_req zone=muster_rl_{_tag(route.service)} burst={route.burst - 1} nodelay;",
            "        limit_req_status 429;",
        ]
    if route.max_body is not None:
        out.append(f"        client_max_body_size {route.max_body};")
    timeouts = (
        ("connect", route.connect_timeout),
        ("send", route.send_timeout),
        ("read", route.websocket_read_timeout),
    )
    for kind, seconds in timeouts:
        if seconds is not None:
            out.append(f"        proxy_{kind}_timeout {_ms(seconds)};")
    if route.retry_on:
        out.append(f"        proxy_next_upstream {' '.join(RETRY_ON[c] for c in route.retry_on)};")
    if route.retries is not None:
        out.append(f"        proxy_next_upstream_tries {route.retries + 1};")
    if route.request_headers or route.websocket:
        headers = [*BASE_HEADERS, *route.request_headers]
        if route.websocket:
            headers += [("Upgrade", "$http_upgrade"), ("Connection", "$muster_ws_connection")]
        else:
            headers.append(("Connection", '""'))
        out += [f"        proxy_set_header {n} {_quoted(v)};" for n, v in headers]
    for name, value in route.response_headers:
        out += [f"        proxy_hide_header {name};", f'        add_header {name} "{value}" always;']
    target = f"$muster_split_{_tag(route.service)}" if split else f"svc_{route.service}"
    return [*out, f"        proxy_pass http://{target};", "    }"]


def server_conf(table: RouteTable, has_servers: Callable[[str], bool]) -> str:
    """The server-level lines: the rewrite to a route's location, and those locations."""
    lines = ["    if ($muster_route) {", "        rewrite ^(.*)$ /.muster/$muster_route$1 last;", "    }"]
    for entry in table.entries:
        route = table.routes[entry.service]
        live = has_servers(entry.service)
        split = live and any(has_servers(t) for t, _ in route.split)
        lines += _location(entry.id, entry.prefix, entry.strip, route, live, split)
    return "\n".join(lines) + "\n"
