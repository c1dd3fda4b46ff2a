"""``muster confd ARGS``: a drop-in for the confd binary, parsing flags exactly as Go's ``flag`` does.

click cannot parse Go's flag syntax (``-onetime``, ``-node a -node b``, ``--flag=x``), so this
module carries a small parser with Go's rules: ``-flag`` and ``--flag`` are the same, a value
comes as ``-flag=value`` or ``-flag value``, a bool flag takes a value only as ``-flag=false``,
parsing stops at the first non-flag or after ``--``, and an unknown flag prints the error and
the usage and exits 2 (``-h``/``-help`` print the usage and exit 0). ``muster run`` offers the
same daemon with click options.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import click

from muster import __version__, config as config_mod, daemon
from muster.config import OPTIONS, Config, Option, convert
from muster.errors import ConfigError, Error, FlagError
from muster.log import configure, kv
from muster.redact import add_secret, add_url_secrets, redact

__all__ = [
    "FlagError",
    "HelpRequested",
    "confd_command",
    "hide_credentials",
    "main",
    "parse_go_flags",
    "raise_nofile_limit",
    "run_command",
    "usage",
]

# The flags confd defines that are not settings of the daemon.
VERSION_FLAG = Option(None, "version", None, "bool", "print version and exit")
FLAGS: dict[str, Option] = {o.flag: o for o in OPTIONS if o.flag} | {"version": VERSION_FLAG}
logger = logging.getLogger(__name__)

_GO_TYPE = {"str": "string", "int": "int", "duration": "duration", "list": "value", "bool": ""}


class HelpRequested(Exception):
    """``-h`` or ``-help`` was given."""


def parse_go_flags(
    args: Sequence[str], flags: Mapping[str, Option] = FLAGS
) -> tuple[dict[str, Any], list[str]]:
    """Parse ``args`` as ``flag.Parse`` would: (option name -> value of flags given, the rest).

    Only flags actually present appear in the result, so they can override lower layers.
    List flags (``-node``, ``-file``) collect every occurrence.
    """
    values: dict[str, Any] = {}
    rest = list(args)
    while rest:
        arg = rest[0]
        if len(arg) < 2 or arg[0] != "-":
            break
        minuses = 2 if arg[1] == "-" else 1
        if arg == "--":
            rest.pop(0)
            break
        name = arg[minuses:]
        if not name or name[0] in "-=":
            raise FlagError(f"bad flag syntax: {arg}")
        rest.pop(0)
        has_value, value = False, ""
        if "=" in name[1:]:
            eq = name.index("=", 1)
            name, value, has_value = name[:eq], name[eq + 1 :], True
        option = flags.get(name)
        if option is None:
            if name in ("help", "h"):
                raise HelpRequested
            raise FlagError(f"flag provided but not defined: -{name}")
        if option.kind == "bool":
            if not has_value:
                value = "true"
            try:
                parsed: Any = convert(option, value)
            except ValueError:
                raise FlagError(f'invalid boolean value "{value}" for -{name}: parse error') from None
        else:
            if not has_value:
                if not rest:
                    raise FlagError(f"flag needs an argument: -{name}")
                value = rest.pop(0)
            try:
                parsed = convert(option, value) if option.kind != "list" else value
            except ValueError as exc:
                raise FlagError(f'invalid value "{value}" for flag -{name}: {exc}') from None
        key = option.flag if option is VERSION_FLAG else option.name
        assert key is not None
        if option.kind == "list":
            values[key] = (*values.get(key, ()), parsed)
        else:
            values[key] = parsed
    return values, rest


def usage(prog: str = "muster confd") -> str:
    """Go's ``flag.PrintDefaults`` layout, with muster's defaults."""
    defaults = Config()
    lines = [f"Usage of {prog}:"]
    for name in sorted(FLAGS):
        option = FLAGS[name]
        typename = _GO_TYPE[option.kind]
        head = f"  -{name}" + (f" {typename}" if typename else "")
        lines.append(head)
        text = option.help
        default = getattr(defaults, option.field, None) if option.field else None
        if default not in (None, "", False, 0, ()) and option.kind != "list":
            shown = (
                f'"{default}"'
                if option.kind == "str"
                else (_go_duration(default) if option.kind == "duration" else str(default))
            )
            text += f" (default {shown})"
        lines.append("    \t" + text)
    return "\n".join(lines) + "\n"


def _go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` for the round values used as defaults."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{secs:g}s"
    if minutes or hours:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return text


def main(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run ``muster confd`` with ``argv`` (without the program name); return the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        flags, _positional = parse_go_flags(argv)
    except HelpRequested:
        err.write(usage())
        return 0
    except FlagError as exc:
        err.write(f"{exc}\n{usage()}")
        return 2
    if flags.pop("version", False):
        out.write(f"muster {__version__} (confd 0.17.0-dev compatible)\n")
        return 0
    return _run(flags, environ, out, err)


def _run(flags: Mapping[str, Any], environ: Mapping[str, str] | None, out: TextIO, err: TextIO) -> int:

    try:
        cfg = config_mod.load(flags, os.environ if environ is None else environ)
    except ConfigError as exc:
        err.write(f"muster confd: {redact(str(exc))}\n")
        return exc.exit_code
    hide_credentials(cfg)
    if environ is None:
        # Not for the commands the daemon runs, nor for templates under -backend env.
        os.environ.pop("CONFD_PASSWORD", None)
    configure(cfg.log_level or "info")
    if "password" in flags:
        logger.warning(
            kv(
                "config.password.argv",
                note="-password is visible to every user in ps; use -password-file or CONFD_PASSWORD",
            )
        )
    raise_nofile_limit()
    try:
        return asyncio.run(daemon.run(cfg, diff_out=out))
    except Error as exc:
        err.write(f"muster confd: {redact(str(exc))}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def hide_credentials(cfg: Config) -> None:
    """Have every log line, error message and ``/status`` mask the password and node userinfo."""
    if cfg.password:
        add_secret(cfg.password)
    for node in cfg.nodes:
        add_url_secrets(node)


def raise_nofile_limit() -> None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit, as Go's runtime does at start.

    Most service managers start a process with a soft limit of 1024; the daemon holds
    connections to etcd, nginx's admin socket, the status server's clients and the
    commands it runs, and a busy moment should not cost a batch to ``EMFILE``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return
    # An unlimited hard limit cannot be a soft one everywhere; nr_open is the kernel's cap.
    target = hard if hard != resource.RLIM_INFINITY else _nr_open()
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        logger.debug(kv("daemon.nofile.unchanged", soft=soft, hard=hard, error=exc))
        return
    logger.debug(kv("daemon.nofile.raised", soft=target, was=soft))


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 1 << 20


class _RawArgs(click.Command):
    """Hands every argument, unparsed, to the Go-style parser."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["muster.raw_args"] = list(args)
        return []


@click.command("confd", cls=_RawArgs, add_help_option=False)
@click.pass_context
def confd_command(ctx: click.Context) -> None:
    """Run as a drop-in confd: confd's flags (-onetime, -watch, -node ...), confd.toml, CONFD_*."""
    ctx.exit(main(ctx.meta["muster.raw_args"]))


@click.command("run")
@click.option("--backend", "-b", help="etcdv3 (default), etcd (v2 API), file or env.")
@click.option("--node", "-n", "nodes", multiple=True, help="Backend endpoint; repeat for a cluster.")
@click.option("--confdir", type=click.Path(file_okay=False), help="Directory with conf.d/ and templates/.")
@click.option("--config-file", type=click.Path(dir_okay=False), help="confd.toml to read.")
@click.option("--prefix", help="Global key prefix (replaces each resource's prefix, as in confd).")
@click.option("--file", "files", multiple=True, help="YAML file for the file backend; repeatable.")
@click.option(
    "--mode",
    type=click.Choice(["watch", "interval", "once"]),
    default="watch",
    show_default=True,
    help="watch the backend, re-read every --interval, or run once and exit.",
)
@click.option("--interval", type=int, help="Seconds between full re-reads in interval mode.")
@click.option("--noop", is_flag=True, default=None, help="Print a diff of what would change; touch nothing.")
@click.option("--sync-only", is_flag=True, default=None, help="Write files but run no check or reload.")
@click.option("--debounce-window", help="Quiet window that folds bursts of changes (default 200ms).")
@click.option("--debounce-max", help="Longest a pending change may wait (default 2s).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
def run_command(**params: Any) -> None:
    """Keep config files in step with the registry (the confd daemon, with muster's option names)."""
    mode = params.pop("mode")
    flags: dict[str, Any] = {}
    if mode == "watch":
        flags["watch"] = True
    elif mode == "once":
        flags["onetime"] = True
    by_field = {o.field: o for o in OPTIONS if o.field}
    for name, value in params.items():
        if value is None or value == ():
            continue
        option = by_field[name]
        try:
            flags[name] = value if isinstance(value, bool | int | tuple) else convert(option, value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=f"--{name.replace('_', '-')}") from None
    raise SystemExit(_run(flags, None, sys.stdout, sys.stderr))
