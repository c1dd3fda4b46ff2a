"""The ``muster`` command line: a click group whose subcommands live in their own modules.

Each subcommand is registered lazily by name (``module:attr``) so that ``muster render``
never imports aiohttp, and so each command's module stays owned by its concept.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from muster import __version__

__all__ = ["main"]

# name -> "module:click_command". Add a line here when a command lands.
COMMANDS: dict[str, str] = {
    "confd": "muster.cli.confd:confd_command",
    "nginx-check": "muster.nginxctl.cli:nginx_check",
    "nginx-lua-conf": "muster.cli.nginx_lua_conf:nginx_lua_conf",
    "nginx-reload": "muster.nginxctl.cli:nginx_reload",
    "up": "muster.stack.up:up",
    "register": "muster.cli.register:register",
    "render": "muster.cli.render:render",
    "route": "muster.cli.route:route",
    "run": "muster.cli.confd:run_command",
    "status": "muster.cli.status:status",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command: Any = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="muster")
def main() -> None:
    """Keep nginx (or any config file) in step with a service registry in etcd."""
