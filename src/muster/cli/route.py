"""``muster route set|get|rm NAME``: write a service's route to etcd, validated first.

A route is the JSON object at ``PREFIX/NAME/route`` (``muster.registry.route``). ``set``
builds it from flags (or takes ``--json``), checks it with the daemon's own rules, and
checks that each split target is registered, so nothing is written that the daemon would
reject; the route replaces the one before as a whole. Routes carry no lease: they stay
until ``rm``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from muster.backends.etcd.v3_client import EtcdV3Client
from muster.backends.options import BackendOptions
from muster.errors import Error
from muster.registry.route import RouteRejected, route_from, route_json
from muster.registry.schema import DEFAULT_ROOT, name_problem

__all__ = ["route"]


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint=flag)
        out[key] = value
    return out


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise click.BadParameter(f"{text!r} is not a number", param_hint="--split") from None


def _build(opts: dict[str, Any]) -> dict[str, Any]:
    """The route object the flags describe (only what was given)."""
    if opts["json_value"]:
        try:
            data = json.loads(opts["json_value"])
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--json") from None
        if not isinstance(data, dict):
            raise click.BadParameter("not a JSON object", param_hint="--json")
        return data
    out: dict[str, Any] = {}
    if opts["hosts"]:
        out["hosts"] = list(opts["hosts"])
    if opts["paths"]:
        out["paths"] = list(opts["paths"])
    if opts["no_strip_prefix"]:
        out["strip_prefix"] = False
    if opts["split"]:
        out["split"] = {k: _number(v) for k, v in _pairs(opts["split"], "--split").items()}
    timeouts = {
        k: opts[f"{k}_timeout"] for k in ("connect", "send", "read") if opts[f"{k}_timeout"] is not None
    }
    if timeouts:
        out["timeouts"] = timeouts
    if opts["retries"] is not None:
        out["retries"] = opts["retries"]
    if opts["retry_on"]:
        out["retry_on"] = list(opts["retry_on"])
    if opts["max_body"]:
        out["max_body"] = opts["max_body"]
    if opts["balance"]:
        out["balance"] = opts["balance"]
    if opts["websocket"]:
        out["websocket"] = True
    headers = {
        kind: _pairs(opts[f"{kind}_headers"], f"--{kind}-header")
        for kind in ("request", "response")
        if opts[f"{kind}_headers"]
    }
    if headers:
        out["headers"] = headers
    if opts["rate_limit"]:
        rate, _, burst = opts["rate_limit"].partition("/")
        if not rate.isdigit() or (burst and not burst.isdigit()):
            raise click.BadParameter(
                "use RATE or RATE/BURST (requests per second)", param_hint="--rate-limit"
            )
        out["rate_limit"] = {"rate": int(rate), **({"burst": int(burst)} if burst else {})}
    return out


def _client(nodes: tuple[str, ...]) -> EtcdV3Client:
    return EtcdV3Client(BackendOptions(nodes=nodes))


def _key(prefix: str, name: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="NAME")
    return f"{prefix.rstrip('/')}/{name}/route"


async def _registered(client: EtcdV3Client, prefix: str, name: str) -> bool:
    start = f"{prefix.rstrip('/')}/{name}/".encode()
    found = await client.range(start, start[:-1] + b"0", limit=1)
    return bool(found.kvs)


_common = [
    click.option("--node", "nodes", multiple=True, default=("http://127.0.0.1:2379",), show_default=True,
                 help="etcd endpoint (v3); repeat for a cluster."),
    click.option("--prefix", default=DEFAULT_ROOT, show_default=True, help="The registry's root."),
]  # fmt: skip


def _with_common(func: Any) -> Any:
    for option in reversed(_common):
        func = option(func)
    return func


@click.group()
def route() -> None:
    """Set, show or remove a service's route (host, paths, split, timeouts, policies)."""


@route.command("set")
@click.argument("name")
@_with_common
@click.option("--host", "hosts", multiple=True, help="Host name or *.wildcard; repeat. Default: any host.")
@click.option("--path", "paths", multiple=True, help="Path prefix; repeat. Default: /NAME/.")
@click.option("--no-strip-prefix", is_flag=True, help="Pass the path on with its prefix.")
@click.option("--split", multiple=True, metavar="SERVICE=PERCENT", help="Send a share of traffic elsewhere.")
@click.option("--connect-timeout", type=float, help="Seconds.")
@click.option("--send-timeout", type=float, help="Seconds.")
@click.option("--read-timeout", type=float, help="Seconds.")
@click.option("--retries", type=int, help="Further tries after the first (0-10).")
@click.option("--retry-on", multiple=True, help="error, timeout, 502, 503, 504, non_idempotent; repeat.")
@click.option("--max-body", help="Largest request body: bytes, or 10k / 5m / 1g.")
@click.option("--balance", help="round_robin, least_conn, hash:ip, hash:header:NAME or hash:cookie:NAME.")
@click.option("--websocket", is_flag=True, help="Pass websocket upgrades through (read timeout 1 h).")
@click.option("--request-header", "request_headers", multiple=True, metavar="NAME=VALUE")
@click.option("--response-header", "response_headers", multiple=True, metavar="NAME=VALUE")
@click.option("--rate-limit", metavar="RATE[/BURST]", help="Requests per second per client IP.")
@click.option("--json", "json_value", metavar="JSON", help="The whole route as a JSON object instead.")
def set_route(name: str, nodes: tuple[str, ...], prefix: str, **opts: Any) -> None:
    """Validate NAME's route and write it (replacing the one before)."""
    key = _key(prefix, name)
    data = _build(opts)
    try:
        parsed = route_from(name, data)
    except RouteRejected as exc:
        raise click.UsageError(f"{key}: {exc}") from None
    value = json.dumps(route_json(parsed), separators=(",", ":"))

    async def write() -> None:
        async with _client(nodes) as client:
            for target, _ in parsed.split:
                if not await _registered(client, prefix, target):
                    raise click.UsageError(f"{key}: route split: service {target} is not registered")
            await client.put(key.encode(), value.encode())

    _run(write())
    click.echo(f"{key} = {value}")


@route.command("get")
@click.argument("name")
@_with_common
def get_route(name: str, nodes: tuple[str, ...], prefix: str) -> None:
    """Print NAME's route as JSON (exit 1 if it has none)."""
    key = _key(prefix, name)

    async def read() -> bytes | None:
        async with _client(nodes) as client:
            found = await client.range(key.encode())
            return found.kvs[0][1] if found.kvs else None

    value = _run(read())
    if value is None:
        raise click.ClickException(f"{key}: no route (the service routes as /{name}/)")
    click.echo(json.dumps(json.loads(value), indent=2, sort_keys=True))


@route.command("rm")
@click.argument("name")
@_with_common
def rm_route(name: str, nodes: tuple[str, ...], prefix: str) -> None:
    """Remove NAME's route: the service routes as /NAME/ again."""
    key = _key(prefix, name)

    async def delete() -> int:
        async with _client(nodes) as client:
            return await client.delete_range(key.encode())

    click.echo(f"{key}: {'removed' if _run(delete()) else 'no route'}")


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except Error as exc:
        raise click.ClickException(str(exc)) from None
