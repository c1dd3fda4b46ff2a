"""The etcd password: as text or a file, from flags, CONFD_*, confd.toml; which wins; where it never shows."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.core import ParameterSource

from muster import redact as redact_mod
from muster.cli.confd import main
from muster.cli.register import _password, register
from muster.config import load, read_password_file
from muster.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fresh secrets for ``redact``, and the ``muster`` logger as it was."""
    monkeypatch.setattr(redact_mod, "_secrets", set())
    monkeypatch.setattr(redact_mod, "_ordered", [])
    logger = logging.getLogger("muster")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def secret_file(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_each_layer_may_give_it_as_text_or_as_a_file(tmp_path: Path) -> None:
    none = str(tmp_path / "none.toml")
    pw_file = secret_file(tmp_path / "pw", "from-file\n")
    # The highest layer giving either wins: flags > CONFD_* > confd.toml.
    cfg = load({"config_file": none, "password_file": pw_file}, {"CONFD_PASSWORD": "from-env"})
    assert (cfg.password, cfg.password_file) == ("from-file", pw_file)
    cfg = load({"config_file": none, "password": "from-flag"}, {"CONFD_PASSWORD_FILE": pw_file})
    assert (cfg.password, cfg.password_file) == ("from-flag", "")
    toml = tmp_path / "confd.toml"
    toml.write_text('password = "from-toml"\n')
    cfg = load({"config_file": str(toml)}, {"CONFD_PASSWORD_FILE": pw_file})
    assert cfg.password == "from-file"
    toml.write_text(f'password_file = "{pw_file}"\n')
    assert load({"config_file": str(toml)}, {"CONFD_PASSWORD": "from-env"}).password == "from-env"
    assert load({"config_file": str(toml)}, {}).password == "from-file"
    assert "from-file" not in repr(load({"config_file": str(toml)}, {}))


def test_text_and_file_in_one_layer_is_an_error(tmp_path: Path) -> None:
    pw_file = secret_file(tmp_path / "pw", "x" * 8)
    with pytest.raises(ConfigError, match="password or password-file, not both \\(from environment\\)"):
        load(
            {"config_file": str(tmp_path / "none.toml")},
            {"CONFD_PASSWORD": "hunter22", "CONFD_PASSWORD_FILE": pw_file},
        )


def test_the_file_is_read_strictly_and_never_quoted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert read_password_file(secret_file(tmp_path / "a", "s3cret\r\n\n")) == "s3cret"
    assert read_password_file(secret_file(tmp_path / "b", " spaced pw ")) == " spaced pw "
    with pytest.raises(ConfigError, match="password-file .*/c is empty \\(from flags\\)"):
        read_password_file(secret_file(tmp_path / "c", "\n"), "flags")
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        read_password_file(str(tmp_path / "missing"))
    (tmp_path / "d").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_password_file(str(tmp_path / "d"))
    assert not caplog.records
    assert read_password_file(secret_file(tmp_path / "e", "s3cret", 0o644)) == "s3cret"
    assert "config.password_file.readable" in caplog.text and "s3cret" not in caplog.text


def test_a_bad_password_in_toml_is_not_quoted(tmp_path: Path) -> None:
    toml = tmp_path / "confd.toml"
    toml.write_text("password = 12345678\n")
    with pytest.raises(ConfigError, match="invalid value \\(hidden\\) for 'password'") as info:
        load({"config_file": str(toml)}, {})
    assert "12345678" not in str(info.value)


def confd_args(tmp_path: Path, *extra: str) -> list[str]:
    (tmp_path / "conf.d").mkdir(exist_ok=True)
    return [
        "-onetime", "-backend", "env", "-confdir", str(tmp_path),
        "-config-file", str(tmp_path / "none.toml"), *extra,
    ]  # fmt: skip


def test_a_password_on_the_command_line_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(confd_args(tmp_path, "-password", "hunter22"), environ={}) == 0
    err = capsys.readouterr().err
    assert "config.password.argv" in err and "use -password-file or CONFD_PASSWORD" in err
    assert "hunter22" not in err
    pw_file = secret_file(tmp_path / "pw", "hunter22\n")
    assert main(confd_args(tmp_path, "-password-file", pw_file), environ={}) == 0
    assert "config.password" not in capsys.readouterr().err


def test_confd_password_is_not_passed_on_to_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONFD_PASSWORD", "hunter22")
    assert main(confd_args(tmp_path)) == 0
    assert "CONFD_PASSWORD" not in os.environ
    assert "config.password" not in capsys.readouterr().err


def test_the_password_and_node_userinfo_are_masked_from_then_on(tmp_path: Path) -> None:
    err = io.StringIO()
    code = main(
        ["-onetime", "-node", "http://root:urlsecret@127.0.0.1:9", "-password", "hunter22",
         "-confdir", str(tmp_path / "nope"), "-config-file", str(tmp_path / "none.toml"),
         "-log-level", "error"],
        stderr=err, environ={},
    )  # fmt: skip
    assert code == 2
    assert "urlsecret" not in err.getvalue() and "hunter22" not in err.getvalue()
    assert redact_mod.redact("token hunter22 for root:urlsecret") == "token *** for root:***"


def register_context(
    password: ParameterSource | None, password_file: ParameterSource | None
) -> click.Context:
    ctx = click.Context(register)
    for name, source in (("password", password), ("password_file", password_file)):
        if source is not None:
            ctx.set_parameter_source(name, source)
    return ctx


CMD, ENV = ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT


def test_register_command_line_beats_environment(tmp_path: Path) -> None:
    pw_file = secret_file(tmp_path / "pw", "from-file\n")
    assert _password(register_context(CMD, ENV), "from-flag", pw_file) == ("from-flag", True)
    assert _password(register_context(ENV, CMD), "from-env", pw_file) == ("from-file", False)
    assert _password(register_context(ENV, None), "from-env", "") == ("from-env", False)
    assert _password(register_context(None, ENV), "", pw_file) == ("from-file", False)
    assert _password(register_context(None, None), "", "") == ("", False)
    with pytest.raises(click.UsageError, match="give --password or --password-file, not both"):
        _password(register_context(CMD, CMD), "x", pw_file)
    with pytest.raises(click.UsageError, match="MUSTER_PASSWORD or MUSTER_PASSWORD_FILE, not both"):
        _password(register_context(ENV, ENV), "x", pw_file)


def test_register_reports_an_unreadable_password_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from muster.cli.main import main as cli_main

    result = CliRunner().invoke(
        cli_main,
        ["register", "--service", "web", "--host", "10.0.0.5", "--port", "8080",
         "--password-file", str(tmp_path / "missing")],
    )  # fmt: skip
    assert result.exit_code == 2 and "password-file" in result.output and "cannot read" in result.output
