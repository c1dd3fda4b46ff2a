"""The route table as the Lua data plane reads it (``muster_routes.lua``): pure, line based.

nginx's Lua has no JSON decoder here (Debian ships no lua-cjson), so the table travels as
tab-separated lines, every free-text value percent-encoded::

    E <id> <service> <prefix> <strip 0|1> <fast 0|1> <extra 0|1>   an entry (service, prefix)
    H <host key | *> <id,id,...>                     a host key's entries, longest prefix first
    M <service>                                      a service whose /NAME/ is not its route
    P <service> <key=value>...                       a route's policies

A *fast* entry routes exactly as the stock ``location /NAME/`` would, and its policies
(timeouts, hash balancing) are all the balancer's: the per-request lookup answers it with
"" and no further Lua runs for it. Only values ``muster.registry.route`` accepted are
encoded, and the admin endpoint checks the lines' shape again.
"""

from __future__ import annotations

import urllib.parse

from muster.registry.route import Route
from muster.registry.routing import RouteTable

__all__ = ["encode_routes", "is_fast"]


def _q(text: str) -> str:
    # "," and "=" separate the items of a policy field: never literal in a value.
    return urllib.parse.quote(text, safe="/-._~:@!*+")


def _ms(seconds: float | None) -> str:
    return str(round(seconds * 1000)) if seconds is not None else ""


def is_fast(route: Route) -> bool:
    """Whether the stock ``location /NAME/`` and the balancer alone serve ``route``."""
    return (
        not route.hosts
        and not route.paths
        and route.strip_prefix
        and not route.split
        and route.retries is None
        and not route.retry_on
        and route.max_body is None
        and route.balance != "least_conn"
        and not route.websocket
        and not route.request_headers
        and not route.response_headers
        and route.rate is None
    )


def _policy(route: Route) -> str:
    fields: list[tuple[str, str]] = [
        ("ct", _ms(route.connect_timeout)),
        ("st", _ms(route.send_timeout)),
        ("rt", _ms(route.websocket_read_timeout)),
        ("tries", str(route.retries + 1) if route.retries is not None else ""),
        ("on", ",".join(route.retry_on)),
        ("body", str(route.max_body) if route.max_body is not None else ""),
        ("bal", {"round_robin": "", "least_conn": "lc", "hash": "hash"}[route.balance]),
        ("hk", route.hash_on.replace("header:", "h:").replace("cookie:", "c:")),
        ("ws", "1" if route.websocket else ""),
        ("rate", str(route.rate) if route.rate is not None else ""),
        ("burst", str(route.burst) if route.rate is not None else ""),
        # Hundredths of a percent, so Lua compares integers.
        ("split", ",".join(f"{t}:{round(pct * 100)}" for t, pct in route.split)),
        ("rq", ",".join(f"{_q(n)}={_q(v)}" for n, v in route.request_headers)),
        ("rs", ",".join(f"{_q(n)}={_q(v)}" for n, v in route.response_headers)),
    ]
    return "\t".join(f"{k}={v}" for k, v in fields if v)


def encode_routes(table: RouteTable) -> bytes:
    """The admin endpoint's body for ``table``; equal tables encode equally."""
    lines: list[str] = []
    for entry in table.entries:
        fast = is_fast(table.routes[entry.service])
        route = table.routes[entry.service]
        # Its own location with a header filter and log phase (costly in Lua) only if needed.
        extra = bool(route.response_headers or route.split) or route.balance == "least_conn"
        lines.append(
            f"E\t{entry.id}\t{entry.service}\t{_q(entry.prefix)}\t{int(entry.strip)}\t{int(fast)}\t{int(extra)}"
        )
    for key in sorted(table.hosts):
        ids = ",".join(str(e.id) for e in table.hosts[key])
        lines.append(f"H\t{key or '*'}\t{ids}")
    for name, route in table.routes.items():
        if route.hosts or route.paths:
            lines.append(f"M\t{name}")
        if not route.is_default:
            lines.append(f"P\t{name}\t{_policy(route)}".rstrip("\t"))
    return "".join(line + "\n" for line in lines).encode("ascii")
