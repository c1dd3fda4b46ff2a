"""The systemd units' commented credential lines, once uncommented, hand muster its etcd password."""

from __future__ import annotations

from pathlib import Path

from muster.cli.register import register
from muster.config import load

UNITS = Path(__file__).parents[2] / "contrib" / "systemd"


def credential_lines(unit: str) -> tuple[str, str, str]:
    """(credential name, its source file, the variable naming ``%d/NAME``) from the commented lines."""
    lines = (UNITS / unit).read_text().splitlines()
    load_cred = next(line for line in lines if line.startswith("#LoadCredential="))
    name, source = load_cred.removeprefix("#LoadCredential=").split(":", 1)
    env = next(line for line in lines if line.startswith("#Environment=") and "%d/" in line)
    variable, value = env.removeprefix("#Environment=").split("=", 1)
    assert value == f"%d/{name}", "the variable points at the credential systemd loads"
    assert "PASSWORD=" not in (UNITS / unit).read_text(), "no literal password variable in the unit"
    return name, source, variable


def test_the_confd_unit_reads_the_password_from_its_credential(tmp_path: Path) -> None:
    name, source, variable = credential_lines("muster-confd.service")
    assert source == "/etc/muster/etcd-password" and variable == "CONFD_PASSWORD_FILE"
    (tmp_path / name).write_text("hunter22\n")
    (tmp_path / name).chmod(0o400)  # as systemd leaves it
    cfg = load({"config_file": str(tmp_path / "none.toml")}, {variable: str(tmp_path / name)})
    assert cfg.password == "hunter22"


def test_the_register_unit_names_the_variable_register_reads() -> None:
    _, source, variable = credential_lines("muster-register@.service")
    assert source == "/etc/muster/register/etcd-password"
    envvars = {p.name: getattr(p, "envvar", None) for p in register.params}
    assert envvars["password_file"] == variable
