"""Install muster's stock nginx template resource into a confdir, pointed at a given nginx.

The stock resource ships in ``muster/templates/nginx/`` with production paths
(``/etc/nginx``, ``/run/nginx.pid``); ``write_resource`` writes the same template with a
resource file whose dest, check and reload commands point at a local ``NginxProcess``
(or any nginx described by its paths), so ``muster up`` and the tests run exactly the
template users deploy.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from muster.stack.nginx import NginxProcess, python_helper

__all__ = [
    "NginxPaths",
    "STOCK_TEMPLATE",
    "commands",
    "stock_dir",
    "write_resource",
    "write_resource_for",
    "write_resource_general",
]

STOCK_TEMPLATE = "services.conf.tmpl"


def stock_dir() -> Path:
    """Where the shipped ``nginx`` resource lives (``conf.d/``, ``templates/``, ``muster/``)."""
    return Path(str(resources.files("muster") / "templates" / "nginx"))


@dataclass(frozen=True, slots=True)
class NginxPaths:
    """How to reach one nginx: its main config, the file muster owns, its pid file."""

    conf: Path
    dest: Path
    pid_file: Path
    prefix: Path | None = None


def commands(nginx: NginxPaths, *, reload_timeout: float = 10.0) -> tuple[str, str]:
    """The general ``check_cmd`` and ``reload_cmd`` for any nginx (``{{.src}}``/``{{.dest}}`` left in).

    The check builds a shadow of nginx's whole configuration on every run; an nginx that
    muster configures itself (``NginxProcess``) has faster commands of its own.
    """
    check = ["--conf", str(nginx.conf)]
    if nginx.prefix is not None:
        check += ["--prefix", str(nginx.prefix)]
    args = " ".join(map(shlex.quote, check))
    check_cmd = f"{python_helper()} check {args} --replace {{{{.dest}}}} --with {{{{.src}}}}"
    reload = ["--pid-file", str(nginx.pid_file), "--timeout", f"{reload_timeout:g}"]
    return check_cmd, f"{python_helper()} reload {' '.join(map(shlex.quote, reload))}"


def _toml(value: str) -> str:
    # A JSON string is a valid TOML basic string (same escapes).
    return json.dumps(value, ensure_ascii=False)


def write_resource(
    confdir: Path,
    dest: Path,
    check_cmd: str,
    reload_cmd: str,
    *,
    keys: tuple[str, ...] = ("/services",),
) -> Path:
    """Write ``conf.d/services.toml`` and the stock template under ``confdir``; return the toml path."""
    (confdir / "conf.d").mkdir(parents=True, exist_ok=True)
    (confdir / "templates").mkdir(parents=True, exist_ok=True)
    source = (stock_dir() / "templates" / STOCK_TEMPLATE).read_text()
    (confdir / "templates" / STOCK_TEMPLATE).write_text(source)
    toml = f"""\
# Written by muster.stack.stock: the stock resource, pointed at a local nginx.
[template]
src = {_toml(STOCK_TEMPLATE)}
dest = {_toml(str(dest))}
keys = [{", ".join(_toml(k) for k in keys)}]
mode = "0644"
check_cmd = {_toml(check_cmd)}
reload_cmd = {_toml(reload_cmd)}
check_timeout = "30s"
reload_timeout = "20s"
"""
    path = confdir / "conf.d" / "services.toml"
    path.write_text(toml)
    return path


def write_resource_for(confdir: Path, nginx: NginxProcess) -> Path:
    """The stock resource for an nginx that muster runs, with that nginx's fast commands."""
    return write_resource(confdir, nginx.dest, nginx.check_cmd(), nginx.reload_cmd())


def write_resource_general(confdir: Path, nginx: NginxPaths) -> Path:
    """The stock resource for any nginx, checked and reloaded by ``python -m muster.nginxctl``."""
    check_cmd, reload_cmd = commands(nginx)
    return write_resource(confdir, nginx.dest, check_cmd, reload_cmd)
