"""A service's route, ``/services/NAME/route``: parsed and validated as untrusted input.

The value is a JSON object; every field is optional and a missing one means today's
behaviour (``location /NAME/``, prefix stripped, round robin)::

    {"hosts": ["api.example.com", "*.example.com"], "paths": ["/api/"], "strip_prefix": true,
     "split": {"api-v2": 5}, "timeouts": {"connect": 2, "send": 10, "read": 30},
     "retries": 2, "retry_on": ["error", "timeout", "502", "503", "504", "non_idempotent"],
     "max_body": "10m", "balance": "hash:cookie:sid", "websocket": true,
     "headers": {"request": {"X-Team": "a"}, "response": {"X-Frame-Options": "DENY"}},
     "rate_limit": {"rate": 50, "burst": 50}}

Both data planes paste these values into nginx's config or shared memory, so each is
checked against a narrow alphabet rather than escaped: a value that fails any check
rejects the whole route (``RouteRejected`` names the field and why, never the value) and
the service keeps its default route. Whether a split target exists is the index's to
check (``muster.registry.index``); everything else is decided here, without I/O.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from muster.registry.schema import MAX_VALUE_BYTES, valid_name

__all__ = [
    "BALANCES",
    "MAX_HOSTS",
    "MAX_PATHS",
    "MAX_RETRIES",
    "RESERVED_HEADERS",
    "RETRY_ON",
    "Route",
    "RouteRejected",
    "default_route",
    "parse_route",
    "route_from",
    "route_json",
    "route_problem",
]

MAX_HOSTS = 32
MAX_PATHS = 32
MAX_HEADERS = 20
MAX_RETRIES = 10
MAX_TIMEOUT = 3600.0  # seconds
MAX_BODY = 1 << 30  # 1 GiB
MAX_RATE = 100_000  # requests per second
BALANCES = ("round_robin", "least_conn", "hash")
#: nginx ``proxy_next_upstream`` conditions a route may ask for, by their route names.
RETRY_ON = {
    "error": "error",
    "timeout": "timeout",
    "502": "http_502",
    "503": "http_503",
    "504": "http_504",
    "non_idempotent": "non_idempotent",
}
#: Headers muster sets itself (or that frame the HTTP message): a route may not set them.
RESERVED_HEADERS = frozenset(
    {
        "host", "connection", "upgrade", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "content-length", "x-real-ip", "x-forwarded-for", "x-forwarded-proto",
    }
)  # fmt: skip
_FIELDS = frozenset(
    {
        "hosts", "paths", "strip_prefix", "split", "timeouts", "retries", "retry_on", "max_body",
        "balance", "websocket", "headers", "rate_limit",
    }
)  # fmt: skip

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z", re.ASCII)
# Path prefixes: the RFC 3986 path characters nginx and Lua treat literally, nothing that
# a regex, nginx's parser or a shell gives meaning to (no space, quote, ;, {, }, $, \, %).
_PATH = re.compile(r"/[A-Za-z0-9._~/!*+,=:@-]{0,255}\Z", re.ASCII)
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}\Z", re.ASCII)
# Header values are pasted inside "..." in nginx's config: no quote, backslash, $ (a variable),
# ; { } (the hostile set), nor any control character (CR/LF split the header).
_HEADER_VALUE = re.compile(r"[ !#%&'()*+,./0-9:<=>?@A-Z\[\]^_`a-z|~-]{0,1024}\Z", re.ASCII)
_COOKIE = re.compile(r"[A-Za-z0-9_]{1,64}\Z", re.ASCII)  # $cookie_NAME: nginx variable characters
_SIZE = re.compile(r"([0-9]{1,10})([kKmMgG]?)\Z", re.ASCII)


class RouteRejected(ValueError):
    """Why a route value was left out: ``field: reason`` (never the value)."""


@dataclass(frozen=True, slots=True)
class Route:
    """One service's valid route; defaults are today's stock template's behaviour."""

    service: str
    hosts: tuple[str, ...] = ()  # lower case; "*.example.com" wildcards; () = any host
    paths: tuple[str, ...] = ()  # () = ("/NAME/",)
    strip_prefix: bool = True
    split: tuple[tuple[str, float], ...] = ()  # (service, percent), sorted by name
    connect_timeout: float | None = None  # seconds; None = the server block's
    send_timeout: float | None = None
    read_timeout: float | None = None
    retries: int | None = None  # further tries after the first; None = stock (2)
    retry_on: tuple[str, ...] = ()  # RETRY_ON keys; () = stock ("error", "timeout")
    max_body: int | None = None  # bytes
    balance: str = "round_robin"
    hash_on: str = ""  # "ip", "header:NAME" or "cookie:NAME" when balance is "hash"
    websocket: bool = False
    request_headers: tuple[tuple[str, str], ...] = ()
    response_headers: tuple[tuple[str, str], ...] = ()
    rate: int | None = None  # requests per second per client IP
    burst: int = 0  # requests one client may send at once (>= 1 when rate is set)

    @property
    def prefixes(self) -> tuple[str, ...]:
        """The path prefixes this route serves."""
        return self.paths or (f"/{self.service}/",)

    @property
    def is_default(self) -> bool:
        """Whether this route routes exactly as a service without one."""
        return self == Route(self.service)

    @property
    def websocket_read_timeout(self) -> float | None:
        """The read timeout to apply: a websocket idles for long, so it defaults to an hour."""
        if self.read_timeout is None and self.websocket:
            return MAX_TIMEOUT
        return self.read_timeout


def default_route(service: str) -> Route:
    """The route of a service that has none (or whose route was rejected)."""
    return Route(service)


def _fail(field: str, reason: str) -> RouteRejected:
    return RouteRejected(f"route {field}: {reason}")


def _host(value: object, field: str) -> str:
    if not isinstance(value, str) or len(value) > 253:
        raise _fail(field, "not a host name")
    host = value.lower()
    name = host[2:] if host.startswith("*.") else host
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise _fail(field, "not a host name or *.wildcard (letters, digits, '-', '.')")
    if host.startswith("*.") and len(labels) < 2:
        raise _fail(field, "a wildcard needs at least two labels after '*.'")
    return host


def _path(value: object, field: str) -> str:
    if not isinstance(value, str) or not _PATH.match(value):
        raise _fail(field, "not a path prefix (starts with '/'; letters, digits and -._~/!*+,=:@)")
    if any(part in (".", "..") for part in value.split("/")) or "//" in value:
        raise _fail(field, "has '.', '..' or '//' segments")
    return value


def _number(value: object, field: str, low: float, high: float, *, integer: bool = False) -> float:
    # bool is an int in Python, never a number in a route; NaN and inf fail the range check.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (integer and not isinstance(value, int))
    ):
        raise _fail(field, "not an integer" if integer else "not a number")
    if not (math.isfinite(value) and low <= value <= high):
        raise _fail(field, f"out of range {low:g}-{high:g}")
    return value


def _object(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(field, "not a JSON object")
    return value


def _list(value: object, field: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(field, "not a JSON list")
    if not value or len(value) > limit:
        raise _fail(field, f"give 1 to {limit} items")
    return value


def _size(value: object) -> int:
    if isinstance(value, str) and (m := _SIZE.match(value)):
        scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
        value = int(m.group(1)) * scale
    return int(_number(value, "max_body", 0, MAX_BODY, integer=True))


def _headers(value: object, field: str) -> tuple[tuple[str, str], ...]:
    items = _object(value, field)
    if len(items) > MAX_HEADERS:
        raise _fail(field, f"more than {MAX_HEADERS} headers")
    out: dict[str, tuple[str, str]] = {}
    for name, text in items.items():
        if not _HEADER_NAME.match(name):
            raise _fail(field, "a header name is not letters, digits and '-'")
        if name.lower() in RESERVED_HEADERS:
            raise _fail(f"{field}.{name}", "is set by muster itself")
        if name.lower() in out:
            raise _fail(f"{field}.{name}", "given twice (names ignore case)")
        if not isinstance(text, str) or not _HEADER_VALUE.match(text):
            raise _fail(
                f"{field}.{name}",
                "value must be printable ASCII (at most 1024 characters) without"
                ' " \\ $ ; { } or control characters',
            )
        out[name.lower()] = (name, text)
    return tuple(sorted(out.values(), key=lambda item: item[0].lower()))


def _balance(value: object) -> tuple[str, str]:
    if value in ("round_robin", "least_conn"):
        return str(value), ""
    if isinstance(value, str) and value.startswith("hash:"):
        on = value[5:]
        if on == "ip":
            return "hash", on
        kind, _, name = on.partition(":")
        if kind == "header" and _HEADER_NAME.match(name):
            return "hash", f"header:{name.lower()}"
        if kind == "cookie" and _COOKIE.match(name):
            return "hash", f"cookie:{name}"
    raise _fail("balance", "use round_robin, least_conn, hash:ip, hash:header:NAME or hash:cookie:NAME")


def parse_route(service: str, value: str) -> Route:
    """Parse the JSON ``value`` of ``/services/SERVICE/route``; raise ``RouteRejected``."""
    if len(value) > MAX_VALUE_BYTES:
        raise RouteRejected(f"route: value larger than {MAX_VALUE_BYTES} bytes")
    try:
        data = json.loads(value)
    except ValueError:
        raise RouteRejected("route: value is not JSON") from None
    except RecursionError:
        raise RouteRejected("route: value is nested too deeply") from None
    return route_from(service, data)


def route_from(service: str, data: object) -> Route:
    """``parse_route`` for decoded JSON."""
    if not isinstance(data, dict):
        raise RouteRejected("route: value is not a JSON object")
    unknown = sorted(k for k in data if k not in _FIELDS)
    if unknown:
        # A name we do not know may be a typo of one we do: say which, as it is a key.
        shown = unknown[0] if valid_name(unknown[0]) else "(not printable)"
        raise _fail(shown, "unknown field")
    kw: dict[str, Any] = {}
    if "hosts" in data:
        hosts = [_host(h, f"hosts[{i}]") for i, h in enumerate(_list(data["hosts"], "hosts", MAX_HOSTS))]
        kw["hosts"] = tuple(dict.fromkeys(hosts))
    if "paths" in data:
        paths = [_path(p, f"paths[{i}]") for i, p in enumerate(_list(data["paths"], "paths", MAX_PATHS))]
        kw["paths"] = tuple(dict.fromkeys(paths))
    if "strip_prefix" in data:
        if not isinstance(data["strip_prefix"], bool):
            raise _fail("strip_prefix", "not true or false")
        kw["strip_prefix"] = data["strip_prefix"]
    if "split" in data:
        kw["split"] = _split(data["split"], service)
    if "timeouts" in data:
        kw.update(_timeouts(data["timeouts"]))
    if "retries" in data:
        kw["retries"] = int(_number(data["retries"], "retries", 0, MAX_RETRIES, integer=True))
    if "retry_on" in data:
        conditions = _list(data["retry_on"], "retry_on", len(RETRY_ON))
        if not all(isinstance(c, str) and c in RETRY_ON for c in conditions):
            raise _fail("retry_on", f"use {', '.join(RETRY_ON)}")
        kw["retry_on"] = tuple(sorted(set(conditions), key=list(RETRY_ON).index))
    if "max_body" in data:
        kw["max_body"] = _size(data["max_body"])
    if "balance" in data:
        kw["balance"], kw["hash_on"] = _balance(data["balance"])
    if "websocket" in data:
        if not isinstance(data["websocket"], bool):
            raise _fail("websocket", "not true or false")
        kw["websocket"] = data["websocket"]
    if "headers" in data:
        kw.update(_header_sets(data["headers"]))
    if "rate_limit" in data:
        kw["rate"], kw["burst"] = _rate_limit(data["rate_limit"])
    return Route(service, **kw)


def _split(value: object, service: str) -> tuple[tuple[str, float], ...]:
    split = _object(value, "split")
    if not split or len(split) > 8:
        raise _fail("split", "give 1 to 8 services")
    shares: list[tuple[str, float]] = []
    for name, share in split.items():
        if not valid_name(name):
            raise _fail("split", "a service name is not [A-Za-z0-9._-]")
        if name == service:
            raise _fail(f"split.{name}", "is this service itself")
        # Hundredths of a percent: what nginx's split_clients and the Lua plane both honour.
        pct = _number(share, f"split.{name}", 0.01, 100)
        if round(pct, 2) != pct:
            raise _fail(f"split.{name}", "more than two decimals")
        shares.append((name, pct))
    if sum(p for _, p in shares) > 100:
        raise _fail("split", "shares add up to more than 100")
    return tuple(sorted(shares))


def _timeouts(value: object) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, item in _object(value, "timeouts").items():
        if key not in ("connect", "send", "read"):
            raise _fail("timeouts", "use connect, send and read")
        # Milliseconds are what nginx and ngx.balancer take.
        seconds = _number(item, f"timeouts.{key}", 0.001, MAX_TIMEOUT)
        out[f"{key}_timeout"] = round(seconds, 3)
    return out


def _header_sets(value: object) -> dict[str, tuple[tuple[str, str], ...]]:
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for key, item in _object(value, "headers").items():
        if key not in ("request", "response"):
            raise _fail("headers", "use request and response")
        out[f"{key}_headers"] = _headers(item, f"headers.{key}")
    return out


def _rate_limit(value: object) -> tuple[int, int]:
    limit = _object(value, "rate_limit")
    if set(limit) - {"rate", "burst"} or "rate" not in limit:
        raise _fail("rate_limit", "give rate (and optionally burst)")
    rate = int(_number(limit["rate"], "rate_limit.rate", 1, MAX_RATE, integer=True))
    burst = int(_number(limit.get("burst", rate), "rate_limit.burst", 1, MAX_RATE, integer=True))
    return rate, burst


def route_problem(service: str, value: str) -> str | None:
    """Why ``value`` is no valid route for ``service``, or None: for writers (``muster route``)."""
    try:
        parse_route(service, value)
    except RouteRejected as exc:
        return str(exc)
    return None


def route_json(route: Route) -> dict[str, Any]:
    """The JSON object that parses back to ``route`` (its non-default fields only)."""
    out: dict[str, Any] = {}
    if route.hosts:
        out["hosts"] = list(route.hosts)
    if route.paths:
        out["paths"] = list(route.paths)
    if not route.strip_prefix:
        out["strip_prefix"] = False
    if route.split:
        out["split"] = dict(route.split)
    timeouts = {
        k: v
        for k, v in (
            ("connect", route.connect_timeout),
            ("send", route.send_timeout),
            ("read", route.read_timeout),
        )
        if v is not None
    }
    if timeouts:
        out["timeouts"] = timeouts
    if route.retries is not None:
        out["retries"] = route.retries
    if route.retry_on:
        out["retry_on"] = list(route.retry_on)
    if route.max_body is not None:
        out["max_body"] = route.max_body
    if route.balance != "round_robin":
        out["balance"] = route.balance if route.balance != "hash" else f"hash:{route.hash_on}"
    if route.websocket:
        out["websocket"] = True
    headers = {
        k: dict(v) for k, v in (("request", route.request_headers), ("response", route.response_headers)) if v
    }
    if headers:
        out["headers"] = headers
    if route.rate is not None:
        out["rate_limit"] = {"rate": route.rate, "burst": route.burst}
    return out
