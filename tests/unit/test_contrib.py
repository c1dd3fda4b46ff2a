"""The shipped systemd units start commands that muster accepts."""

from __future__ import annotations

import shlex
from pathlib import Path

from muster.cli.confd import parse_go_flags
from muster.config import load

UNITS = Path(__file__).parents[2] / "contrib" / "systemd"


def exec_start(unit: str) -> list[str]:
    for line in (UNITS / unit).read_text().splitlines():
        if line.startswith("ExecStart="):
            return [a for a in shlex.split(line.removeprefix("ExecStart=")) if not a.startswith("$")]
    raise AssertionError(f"{unit} has no ExecStart")


def test_the_confd_unit_parses_and_validates(tmp_path: Path) -> None:
    argv = exec_start("muster-confd.service")
    assert argv[:2] == ["/usr/local/bin/muster", "confd"]
    flags, rest = parse_go_flags(argv[2:])
    assert rest == []
    config = load({**flags, "config_file": str(tmp_path / "none.toml")}, {})
    assert config.watch and config.status_addr == "127.0.0.1:9101"


def test_the_nginx_drop_in_keeps_the_admin_socket_private_and_clears_a_stale_one() -> None:
    text = (UNITS / "nginx.service.d" / "muster.conf").read_text()
    lines = [line for line in text.splitlines() if "=" in line and not line.startswith("#")]
    settings = dict(line.split("=", 1) for line in lines)
    assert settings["RuntimeDirectory"] == "muster"
    assert settings["RuntimeDirectoryMode"] == "0700"
    readme = (UNITS.parents[1] / "README.md").read_text()
    socket_path = "/run/muster/nginx-admin.sock"
    assert socket_path in readme and settings["ExecStartPre"] == f"/bin/rm -f {socket_path}"


def test_the_nginx_drop_in_restarts_a_dead_master_after_killing_its_orphaned_workers() -> None:
    text = (UNITS / "nginx.service.d" / "muster.conf").read_text()
    lines = [line for line in text.splitlines() if "=" in line and not line.startswith("#")]
    settings = dict(line.split("=", 1) for line in lines)
    # on-failure: a master killed by a signal (kill -9, a crash) or exiting non-zero.
    assert settings["Restart"] == "on-failure"
    assert settings["RestartSec"] == "1s"
    # mixed (or the default control-group) SIGKILLs what is left in the cgroup before the
    # restart; `process` would leave the orphaned workers holding the port.
    assert settings.get("KillMode", "control-group") in {"mixed", "control-group"}
    debian = Path("/lib/systemd/system/nginx.service")
    if debian.exists():  # the unit the drop-in extends, where the nginx package is installed
        unit = dict(
            line.split("=", 1) for line in debian.read_text().splitlines() if "=" in line and line[0] != "#"
        )
        assert "Restart" not in unit, "Debian's unit now restarts nginx itself: revisit the drop-in"
        assert unit.get("KillMode", "control-group") in {"mixed", "control-group"}
