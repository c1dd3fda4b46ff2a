"""The shipped systemd units start commands that muster accepts."""

from __future__ import annotations

import shlex
from pathlib import Path

from muster.confd_cmd import parse_go_flags
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
