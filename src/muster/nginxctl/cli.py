"""``muster nginx-check`` and ``muster nginx-reload``: check_cmd and reload_cmd for nginx resources.

In a template resource::

    check_cmd  = "muster nginx-check --conf /etc/nginx/nginx.conf --replace {{.dest}} --with {{.src}}"
    reload_cmd = "muster nginx-reload --pid-file /run/nginx.pid"
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from muster.errors import Error
from muster.nginxctl.control import NGINX_BINARY, check_with_replacement
from muster.nginxctl.procs import reload

__all__ = ["nginx_check", "nginx_reload"]

_path = click.Path(path_type=Path)


@click.command("nginx-check")
@click.option("--conf", "conf", type=_path, required=True, help="nginx's main configuration file.")
@click.option("--replace", type=_path, required=True, help="The file the staged one will replace.")
@click.option("--with", "staged", type=_path, required=True, help="The staged file ({{.src}}).")
@click.option("--prefix", type=_path, default=None, help="nginx's -p prefix, when it runs with one.")
@click.option("--nginx", "binary", default=NGINX_BINARY, show_default=True, help="The nginx binary.")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds nginx -t may take.")
def nginx_check(
    conf: Path, replace: Path, staged: Path, prefix: Path | None, binary: str, timeout: float
) -> None:
    """Run ``nginx -t`` on the whole configuration with the staged file in place of the real one."""
    try:
        check_with_replacement(conf, replace, staged, binary=binary, prefix=prefix, timeout=timeout)
    except Error as exc:
        click.echo(f"muster nginx-check: {exc}", err=True)
        sys.exit(exc.exit_code)


@click.command("nginx-reload")
@click.option("--pid-file", type=_path, required=True, help="nginx's pid file (the master's pid).")
@click.option(
    "--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for the new workers."
)
def nginx_reload(pid_file: Path, timeout: float) -> None:
    """Signal nginx's master to reload and wait until its new configuration serves.

    Exits non-zero if nginx kept its old configuration.
    """
    try:
        reload(pid_file, timeout=timeout)
    except Error as exc:
        click.echo(f"muster nginx-reload: {exc}", err=True)
        sys.exit(exc.exit_code)
