"""``muster register``: keep a service registered in etcd while it is healthy, optionally as its parent."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import click
from click.core import ParameterSource

from muster.backends.options import BackendOptions
from muster.config import read_password_file
from muster.errors import ConfigError, Error, RegistrationError
from muster.log import configure, kv
from muster.redact import add_secret, add_url_secrets, redact
from muster.registration.api import Registration
from muster.registration.health import Check, CommandCheck, HttpCheck, TcpCheck, parse_host_port
from muster.registration.runner import serve, supervise
from muster.registration.validate import DEFAULT_PREFIX, RegistrationSpec

__all__ = ["register"]

logger = logging.getLogger(__name__)


def _parse_meta(pairs: tuple[str, ...]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--meta")
        if key in meta:
            raise click.BadParameter(f"key {key!r} given twice", param_hint="--meta")
        meta[key] = value
    return meta


def _password(ctx: click.Context, password: str, password_file: str) -> tuple[str, bool]:
    """The password and whether it came as ``--password``: the command line beats the
    environment; a literal and a file from the same one are an error."""
    ranks = {ParameterSource.COMMANDLINE: 2, ParameterSource.ENVIRONMENT: 1}
    literal = ranks.get(ctx.get_parameter_source("password") or ParameterSource.DEFAULT, 0)
    from_file = ranks.get(ctx.get_parameter_source("password_file") or ParameterSource.DEFAULT, 0)
    if literal and literal == from_file:
        given = "--password or --password-file" if literal == 2 else "MUSTER_PASSWORD or MUSTER_PASSWORD_FILE"
        raise click.UsageError(f"give {given}, not both")
    if from_file > literal:
        return read_password_file(password_file), False
    return password, literal == 2


def _build_check(
    http: str | None, tcp: str | None, cmd: str | None, no_check: bool, exec_mode: bool, host: str, port: int
) -> Check | None:
    given = [
        name for name, value in (("--check-http", http), ("--check-tcp", tcp), ("--check-cmd", cmd)) if value
    ]
    if len(given) > 1:
        raise click.UsageError(f"give at most one health check, not {' and '.join(given)}")
    if no_check and given:
        raise click.UsageError(f"--no-check contradicts {given[0]}")
    if http:
        return HttpCheck(http)
    if tcp:
        return TcpCheck(*parse_host_port(tcp))
    if cmd:
        return CommandCheck(cmd)
    if exec_mode and not no_check:
        # A child is announced only once it accepts connections (unless --no-check).
        return TcpCheck(host, port)
    return None


@click.command("register", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--service", required=True, help="Service name: letters, digits, '.', '_', '-'.")
@click.option("--host", required=True, help="Address clients reach the server at (IP or DNS name).")
@click.option("--port", required=True, type=int, help="Port clients reach the server at.")
@click.option("--id", "server_id", help="Server ID under the service.  [default: HOSTNAME-PORT]")
@click.option(
    "--ttl", type=int, default=10, show_default=True, help="Lease/TTL seconds; refreshed at a third."
)
@click.option(
    "--backend",
    type=click.Choice(["etcdv3", "etcd", "zookeeper", "redis"]),
    default="etcdv3",
    show_default=True,
    help="etcdv3 (leases), etcd (the v2 keys API with TTLs), zookeeper (an ephemeral znode) "
    "or redis (a key with EXPIRE, refreshed).",
)
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="URL",
    help="etcd endpoint, repeatable; failed over in order.  [default: http://127.0.0.1:2379]",
)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True, help="Key prefix.")
@click.option(
    "--meta", multiple=True, metavar="KEY=VALUE", help="Extra string field in the value; repeatable."
)
@click.option("--check-http", metavar="URL", help="Healthy while GET URL answers 2xx/3xx.")
@click.option("--check-tcp", metavar="HOST:PORT", help="Healthy while a TCP connection opens.")
@click.option("--check-cmd", metavar="CMD", help="Healthy while the shell command exits 0.")
@click.option("--no-check", is_flag=True, help="In exec mode, register without waiting for the port.")
@click.option("--check-interval", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True)
@click.option("--check-timeout", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True)
@click.option(
    "--rise",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Passing checks in a row before the key is written.",
)
@click.option(
    "--fall",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Failing checks in a row before the key is removed.",
)
@click.option(
    "--drain",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Exec mode: seconds between deregistering and signalling the child.",
)
@click.option(
    "--kill-timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Exec mode: seconds the child gets to exit before SIGKILL.",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds to keep retrying deregistration on shutdown if etcd is away.",
)
@click.option("--username", default="", help="etcd user.")
@click.option(
    "--password",
    default="",
    envvar="MUSTER_PASSWORD",
    help="etcd password; visible in ps, so prefer $MUSTER_PASSWORD or --password-file.",
)
@click.option(
    "--password-file",
    default="",
    envvar="MUSTER_PASSWORD_FILE",
    metavar="PATH",
    help="Read the etcd password from PATH (or $MUSTER_PASSWORD_FILE).",
)
@click.option("--client-cert", default="", help="TLS client certificate (PEM).")
@click.option("--client-key", default="", help="TLS client key (PEM).")
@click.option("--client-ca-keys", default="", help="CA bundle to verify etcd's certificate (PEM).")
@click.option("--client-insecure", is_flag=True, help="Do not verify etcd's certificate.")
@click.option("--separator", default="", help="redis: what stands for / in keys (the daemon's -separator).")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def register(
    service: str,
    host: str,
    port: int,
    server_id: str | None,
    ttl: int,
    backend: str,
    nodes: tuple[str, ...],
    prefix: str,
    meta: tuple[str, ...],
    check_http: str | None,
    check_tcp: str | None,
    check_cmd: str | None,
    no_check: bool,
    check_interval: float,
    check_timeout: float,
    rise: int,
    fall: int,
    drain: float,
    kill_timeout: float,
    stop_timeout: float,
    username: str,
    password: str,
    password_file: str,
    client_cert: str,
    client_key: str,
    client_ca_keys: str,
    client_insecure: bool,
    separator: str,
    log_level: str,
    command: tuple[str, ...],
) -> None:
    """Keep PREFIX/SERVICE/servers/ID = {"host": HOST, "port": PORT, ...} in etcd while healthy.

    With `-- COMMAND ARGS...` muster runs the service as its child: it registers it once
    healthy, forwards SIGHUP/SIGUSR1/SIGUSR2, and on SIGTERM/SIGINT deregisters first,
    waits --drain seconds, then stops the child. If the child dies, the key is removed at
    once and muster exits with the child's status. Without a command, SIGTERM/SIGINT
    remove the key and muster exits 0.
    """
    ctx = click.get_current_context()
    try:
        password, on_command_line = _password(ctx, password, password_file)
        spec = RegistrationSpec.create(
            service, host, port, server_id=server_id, ttl=ttl, prefix=prefix, meta=_parse_meta(meta)
        )
        check = _build_check(check_http, check_tcp, check_cmd, no_check, bool(command), spec.host, port)
        options = BackendOptions(
            nodes=nodes,
            username=username,
            password=password,
            client_cert=client_cert,
            client_key=client_key,
            client_ca_keys=client_ca_keys,
            client_insecure=client_insecure,
            separator=separator,
        )
        registration = Registration(
            spec,
            backend=backend,
            options=options,
            check=check,
            check_interval=check_interval,
            check_timeout=check_timeout,
            rise=rise,
            fall=fall,
            stop_timeout=stop_timeout,
        )
    except (RegistrationError, ConfigError) as exc:
        raise click.UsageError(str(exc)) from exc
    _hide_secrets(password, nodes)
    configure(log_level)
    if on_command_line:
        logger.warning(
            kv(
                "register.password.argv",
                note="--password is visible to every user in ps; use --password-file or MUSTER_PASSWORD",
            )
        )
    sys.exit(_run(registration, command, drain, kill_timeout))


def _hide_secrets(password: str, nodes: tuple[str, ...]) -> None:
    """Keep the password from the child and from every log line."""
    # The service run as a child and the health check commands do not need it.
    os.environ.pop("MUSTER_PASSWORD", None)
    if password:
        add_secret(password)
    for node in nodes:
        add_url_secrets(node)


def _run(registration: Registration, command: tuple[str, ...], drain: float, kill_timeout: float) -> int:
    """Register (supervising ``command`` if given) until told to stop; the exit status."""
    try:
        if command:
            return asyncio.run(supervise(registration, command, drain=drain, kill_timeout=kill_timeout))
        return asyncio.run(serve(registration))
    except Error as exc:
        click.echo(f"muster register: error: {redact(str(exc))}", err=True)
        return exc.exit_code
