"""``muster nginx-lua-conf``: print what an existing nginx needs for the Lua data plane."""

from __future__ import annotations

from pathlib import Path

import click

from muster.dataplane.nginx.conf import LuaSettings, http_block, lua_available, main_block

__all__ = ["nginx_lua_conf"]


@click.command("nginx-lua-conf")
@click.option(
    "--admin-socket",
    type=click.Path(path_type=Path),
    default=Path("/run/muster/nginx-admin.sock"),
    show_default=True,
    help="Unix socket of the admin endpoint muster pushes membership to.",
)
@click.option("--max-fails", type=click.IntRange(1), default=1, show_default=True)
@click.option("--fail-timeout", type=click.IntRange(1), default=10, show_default=True, help="Seconds.")
@click.option("--max-tries", type=click.IntRange(1), default=3, show_default=True)
@click.option("--keepalive", type=click.IntRange(1), default=64, show_default=True)
@click.option(
    "--traffic/--no-traffic", default=True, show_default=True,
    help="Count requests per service and server (muster_traffic.lua in the log phase) for /metrics.",
)  # fmt: skip
@click.option("--traffic-dict-size", default="16m", show_default=True, help="Shared memory for the counters.")
@click.option("--main", "main_context", is_flag=True, help="Print the load_module lines instead.")
def nginx_lua_conf(
    admin_socket: Path,
    max_fails: int,
    fail_timeout: int,
    max_tries: int,
    keepalive: int,
    traffic: bool,
    traffic_dict_size: str,
    main_context: bool,
) -> None:
    """Print the http-context config for muster's Lua balancer and admin endpoint.

    Save it as e.g. /etc/nginx/conf.d/00-muster-lua.conf (inside http {}); Debian's
    libnginx-mod-http-lua already loads the module (--main prints the load_module lines
    for other layouts). Then run the daemon with -dataplane lua -dataplane-admin
    unix:SOCKET, and server changes reach nginx with no reload.
    """
    if not lua_available():
        click.echo("muster: warning: the nginx Lua module or lua-resty-core is not installed", err=True)
    if main_context:
        click.echo(main_block(), nl=False)
        return
    settings = LuaSettings(
        admin_socket=admin_socket,
        max_fails=max_fails,
        fail_timeout=fail_timeout,
        max_tries=max_tries,
        keepalive=keepalive,
        traffic=traffic,
        traffic_dict_size=traffic_dict_size,
    )
    click.echo(http_block(settings), nl=False)
