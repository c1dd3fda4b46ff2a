from __future__ import annotations

from pathlib import Path

import pytest

from muster.nginxctl.__main__ import _parse, main


def test_parse_check() -> None:
    command, opts = _parse(["check", "--conf", "a", "--replace", "b", "--with", "c", "--prefix", "p"])
    assert command == "check"
    assert opts == {"--conf": "a", "--replace": "b", "--with": "c", "--prefix": "p"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "usage"),
        (["stop"], "usage"),
        (["reload"], "missing --pid-file"),
        (["reload", "--pid-file"], "missing value"),
        (["reload", "--pid-file", "x", "--bogus", "1"], "unknown option"),
        (["confirm", "--pid-file", "x"], "missing --before"),
    ],
)
def test_parse_errors(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        _parse(argv)


def test_reload_of_a_missing_pid_file_fails_with_the_error_tree_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reload", "--pid-file", str(tmp_path / "nginx.pid")]) == 1
    assert "cannot read nginx's pid" in capsys.readouterr().err


def test_confirm_of_a_dead_master_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text("999999999\n")
    assert main(["confirm", "--pid-file", str(pid_file), "--before", "1 2"]) == 1
    assert "not running" in capsys.readouterr().err
