"""Template resource TOML: confd's keys read strictly, errors and warnings name the file and the key."""

from __future__ import annotations

import grp
import io
import logging
import os
import pwd
from pathlib import Path

import pytest

from muster.cli.confd import main
from muster.errors import ConfigError
from muster.resources.spec import find_resource_files, go_clean, go_join, load_resource, load_resources


def resource(tmp_path: Path, body: str, name: str = "app.toml") -> Path:
    path = tmp_path / "conf.d" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


BASIC = '[template]\nsrc = "app.tmpl"\ndest = "/tmp/app.conf"\nkeys = ["/app"]\n'


def test_basic_resource(tmp_path: Path) -> None:
    spec = load_resource(resource(tmp_path, BASIC), tmp_path / "templates")
    assert spec.src == tmp_path / "templates" / "app.tmpl"
    assert spec.dest == Path("/tmp/app.conf")
    assert spec.keys == ("/app",)
    assert spec.prefix == "/"
    assert spec.prefixed_keys == ("/app",)
    assert (spec.mode, spec.uid, spec.gid, spec.check_cmd, spec.reload_cmd) == (None, None, None, "", "")


def test_all_keys(tmp_path: Path) -> None:
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    body = (
        '[template]\nsrc = "a.tmpl"\ndest = "/d"\nkeys = ["/x", "y"]\nprefix = "svc"\nmode = "0600"\n'
        f'owner = "{user}"\ngroup = "{group}"\ncheck_cmd = "true {{{{.src}}}}"\nreload_cmd = "true"\n'
        'check_timeout = "2s"\nreload_timeout = 7\n'
    )
    spec = load_resource(resource(tmp_path, body), tmp_path)
    assert spec.prefix == "/svc"
    assert spec.prefixed_keys == ("/svc/x", "/svc/y")
    assert spec.mode == 0o600
    assert (spec.uid, spec.gid) == (os.geteuid(), os.getegid())
    assert spec.check_cmd == "true {{.src}}"
    assert (spec.check_timeout, spec.reload_timeout) == (2.0, 7.0)


def test_global_prefix_replaces_resource_prefix(tmp_path: Path) -> None:
    path = resource(tmp_path, BASIC.replace("[template]\n", '[template]\nprefix = "/res"\n'))
    assert load_resource(path, tmp_path).prefix == "/res"
    assert load_resource(path, tmp_path, global_prefix="glob").prefix == "/glob"


@pytest.mark.parametrize(
    ("prefix", "key", "joined"),
    [
        ("/", "/", "/"),
        ("/", "/app", "/app"),
        ("/p", "/", "/p"),
        ("/p/", "a//b/", "/p/a/b"),
        ("/p", "../x", "/x"),
    ],
)
def test_prefixed_keys_use_go_path_join(tmp_path: Path, prefix: str, key: str, joined: str) -> None:
    assert go_join(prefix, key) == joined


def test_go_clean() -> None:
    assert go_clean("//a//b/./c/..") == "/a/b"
    assert go_clean("/..") == "/"
    assert go_clean("") == "."
    assert go_clean("a/../..") == ".."


def test_missing_template_table(tmp_path: Path) -> None:
    path = resource(tmp_path, 'src = "a"\ndest = "b"\n')
    with pytest.raises(ConfigError, match=rf"{path}: missing \[template\] table"):
        load_resource(path, tmp_path)


def test_empty_file_is_missing_template(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing \[template\] table"):
        load_resource(resource(tmp_path, ""), tmp_path)


def test_unknown_key_is_ignored_with_a_warning_naming_file_and_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = resource(tmp_path, BASIC + 'reload_command = "x"\n')
    with caplog.at_level(logging.WARNING, logger="muster.resources.spec"):
        spec = load_resource(path, tmp_path)
    assert spec.reload_cmd == ""
    assert caplog.messages == [
        f"resource.key.unknown file={path} key=reload_command table=template did_you_mean=reload_cmd "
        'action="ignored, as confd does"'
    ]


def test_extra_top_level_table_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # confd decodes only [template] and never looks at the rest of the file.
    path = resource(tmp_path, BASIC + "[other]\na = 1\n")
    with caplog.at_level(logging.WARNING, logger="muster.resources.spec"):
        spec = load_resource(path, tmp_path)
    assert spec.keys == ("/app",)
    assert caplog.messages == [f'resource.key.unknown file={path} key=other action="ignored, as confd does"']


def test_a_confd_resource_with_interval_loads_and_renders(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real confd resources carry keys confd's decoder skips, such as interval = 1.
    dest = tmp_path / "out.conf"
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "app.tmpl").write_text('name {{getv "/app/name"}}\n')
    path = resource(
        tmp_path, f'[template]\nsrc = "app.tmpl"\ndest = "{dest}"\nkeys = ["/app"]\ninterval = 1\n'
    )
    monkeypatch.setenv("APP_NAME", "shop")
    args = ["-onetime", "-backend", "env", "-confdir", str(tmp_path), "-config-file", str(tmp_path / "none")]
    err = io.StringIO()
    with caplog.at_level(logging.WARNING, logger="muster"):
        assert main([*args, "-log-level", "warning"], stderr=err) == 0, err.getvalue()
    assert dest.read_text() == "name shop\n"
    warnings = [r.getMessage() for r in caplog.records if r.name == "muster.resources.spec"]
    assert warnings == [
        f'resource.key.unknown file={path} key=interval table=template action="ignored, as confd does"'
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('src = ""', "src is required"),
        ("dest = 3", "dest must be a string"),
        ('keys = "/a"', "keys must be an array of strings"),
        ('uid = "root"', "uid must be a non-negative integer"),
        ('mode = "0999"', "mode '0999' is not an octal file mode"),
        ('mode = "rw-r--r--"', "is not an octal file mode"),
        ('mode = "0o17777"', "out of range"),
        ('check_timeout = "soon"', "check_timeout must be a duration"),
        ("reload_timeout = 0", "reload_timeout must be a positive duration"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, line: str, message: str) -> None:
    key = line.split(" ", 1)[0]
    body = "\n".join(x for x in BASIC.splitlines() if not x.startswith(key + " ")) + "\n" + line + "\n"
    with pytest.raises(ConfigError, match=message):
        load_resource(resource(tmp_path, body), tmp_path)


def test_unknown_owner_is_ignored_with_a_warning_as_confd_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The seed post's resource has owner = "nginx"; confd ignored it, so it must not break here.
    with caplog.at_level(logging.WARNING, logger="muster.resources.spec"):
        spec = load_resource(resource(tmp_path, BASIC + 'owner = "no-such-user-muster"\n'), tmp_path)
    assert spec.uid is None
    assert "resource.owner.unknown" in caplog.text and "no-such-user-muster" in caplog.text


def test_owner_contradicting_uid_is_an_error(tmp_path: Path) -> None:
    user = pwd.getpwuid(os.geteuid()).pw_name
    with pytest.raises(ConfigError, match="contradicts uid"):
        load_resource(resource(tmp_path, BASIC + f'owner = "{user}"\nuid = {os.geteuid() + 1}\n'), tmp_path)


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    path = resource(tmp_path, "[template\n")
    with pytest.raises(ConfigError, match=rf"{path}: invalid TOML"):
        load_resource(path, tmp_path)


def test_mode_without_leading_zero_is_octal_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="muster.resources.spec"):
        spec = load_resource(resource(tmp_path, BASIC + 'mode = "644"\n'), tmp_path)
    assert spec.mode == 0o644
    assert "resource.mode.octal" in caplog.text


@pytest.mark.parametrize(("text", "mode"), [("0644", 0o644), ("0o755", 0o755), ("0600", 0o600), ("0", 0)])
def test_mode_forms(tmp_path: Path, text: str, mode: int) -> None:
    assert load_resource(resource(tmp_path, BASIC + f'mode = "{text}"\n'), tmp_path).mode == mode


def test_toml_keys_are_case_insensitive_like_burntsushi(tmp_path: Path) -> None:
    spec = load_resource(resource(tmp_path, '[Template]\nSrc = "a"\nDEST = "/b"\n'), tmp_path)
    assert (spec.src.name, spec.dest) == ("a", Path("/b"))


def test_absolute_src_stays_under_templates(tmp_path: Path) -> None:
    spec = load_resource(resource(tmp_path, '[template]\nsrc = "/x/a.tmpl"\ndest = "/b"\n'), tmp_path / "t")
    assert spec.src == tmp_path / "t" / "x" / "a.tmpl"


def test_recursive_discovery_and_errors_do_not_stop_others(tmp_path: Path) -> None:
    resource(tmp_path, BASIC, "b.toml")
    resource(tmp_path, BASIC, "sub/dir/a.toml")
    resource(tmp_path, "[template]\n", "sub/broken.toml")
    resource(tmp_path, "not toml at all", "README.md")
    files = find_resource_files(tmp_path / "conf.d")
    assert [f.relative_to(tmp_path / "conf.d").as_posix() for f in files] == [
        "b.toml",
        "sub/broken.toml",
        "sub/dir/a.toml",
    ]
    specs, errors = load_resources(tmp_path / "conf.d", tmp_path / "templates")
    assert [s.name for s in specs] == ["b.toml", "sub/dir/a.toml"]
    assert len(errors) == 1 and "broken.toml" in str(errors[0])


def test_missing_conf_d(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        load_resources(tmp_path / "conf.d", tmp_path)


def test_confd_fork_timeout_names_are_accepted(tmp_path: Path) -> None:
    spec = load_resource(
        resource(tmp_path, BASIC + 'check_cmd_timeout = "5s"\nreload_cmd_timeout = "1m"\n'), tmp_path
    )
    assert (spec.check_timeout, spec.reload_timeout) == (5.0, 60.0)
    with pytest.raises(ConfigError, match="both check_timeout and its alias"):
        load_resource(resource(tmp_path, BASIC + 'check_cmd_timeout = "5s"\ncheck_timeout = 3\n'), tmp_path)
